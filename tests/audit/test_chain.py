"""Hash chain, signed checkpoints and verification: every kind of tampering is caught and named."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.audit import audit_record
from broker.audit.chain import GENESIS, canonical, chain_entry, extend, link_hash, record_digest, tombstone
from broker.audit.checkpoint import checkpoint_signature_ok, key_id, parse_public_key, public_key_b64, sign_checkpoint
from broker.audit.verify import verify
from tests.audit.conftest import seed_records

T = "2026-03-05T00:00:00.000Z"


def chain(n: int = 12) -> list[dict[str, Any]]:
    records = (seed_records() * 2)[:n]
    return extend(0, GENESIS, [{**r, "record_id": f"{i:08d}-0000-4000-8000-000000000000"}
                               for i, r in enumerate(records)])


def signed(key: Ed25519PrivateKey, entries: list[dict], at: list[int], purpose: str = "periodic") -> list[dict]:
    return [sign_checkpoint(key, s, entries[s - 1]["hash"], T, purpose) for s in at]


def test_canonical_encoding_is_sorted_compact_utf8() -> None:
    assert canonical({"b": 1, "a": ["x", {"d": None, "c": "é"}]}) == '{"a":["x",{"c":"é","d":null}],"b":1}'.encode()
    with pytest.raises(ValueError):
        canonical({"a": float("nan")})


def test_entries_link_by_hash() -> None:
    entries = chain(3)
    assert entries[0]["prev_hash"] == GENESIS
    for before, after in itertools.pairwise(entries):
        assert after["prev_hash"] == before["hash"] and after["seq"] == before["seq"] + 1
    e = entries[1]
    assert e["record_sha256"] == record_digest(e["record"])
    assert e["hash"] == link_hash(2, e["prev_hash"], e["record_sha256"])


def test_intact_chain_verifies(signing_key: Ed25519PrivateKey) -> None:
    entries = chain()
    result = verify(entries, signed(signing_key, entries, [5, 10]), signing_key.public_key())
    assert result.ok and result.checked == 12 and result.first_bad_seq is None
    assert result.checkpoints == 2 and result.last_checkpoint_seq == 10 and result.unsigned_tail == 2
    assert result.head_hash == entries[-1]["hash"]


def test_empty_chain_verifies(signing_key: Ed25519PrivateKey) -> None:
    cp = sign_checkpoint(signing_key, 0, GENESIS, T, "on_demand")
    assert verify([], [cp], signing_key.public_key()).ok


def test_checkpoint_signature_and_key_round_trip(signing_key: Ed25519PrivateKey) -> None:
    pub = signing_key.public_key()
    cp = sign_checkpoint(signing_key, 3, "ab" * 32, T)
    assert checkpoint_signature_ok(cp, pub)
    assert key_id(parse_public_key(public_key_b64(pub))) == cp["key_id"]
    assert not checkpoint_signature_ok({**cp, "seq": 4}, pub)
    assert not checkpoint_signature_ok({**cp, "hash": "cd" * 32}, pub)
    assert not checkpoint_signature_ok(cp, Ed25519PrivateKey.generate().public_key())


# --- tampering -------------------------------------------------------------------------------------------------------
def check(entries: list[dict], cps: list[dict], key: Ed25519PrivateKey, bad_seq: int, words: str,
          **options: Any) -> Any:
    result = verify(entries, cps, key.public_key(), **options)
    assert not result.ok
    assert result.first_bad_seq == bad_seq, result.reason
    assert words in result.reason
    return result


def test_edited_record_is_named(signing_key: Ed25519PrivateKey) -> None:
    entries = chain()
    cps = signed(signing_key, entries, [10])
    entries[6]["record"]["subscriber"] = "police-ppu"
    check(entries, cps, signing_key, 7, "does not match its digest")


def test_edited_digest_is_named(signing_key: Ed25519PrivateKey) -> None:
    entries = chain()
    entries[4]["record"]["actor"] = "admin"
    entries[4]["record_sha256"] = record_digest(entries[4]["record"])
    check(entries, [], signing_key, 5, "does not match its hash")


def test_edited_and_rehashed_record_is_named(signing_key: Ed25519PrivateKey) -> None:
    entries = chain()
    entries[4] = chain_entry(5, entries[4]["prev_hash"], {**entries[4]["record"], "actor": "admin"})
    check(entries, [], signing_key, 5, "altered and rehashed")


def test_deleted_record_is_named(signing_key: Ed25519PrivateKey) -> None:
    entries = chain()
    del entries[3]
    check(entries, [], signing_key, 4, "record 4 is missing")


def test_inserted_record_is_caught(signing_key: Ed25519PrivateKey) -> None:
    entries = chain()
    forged = chain_entry(4, entries[2]["hash"], seed_records()[6])
    entries.insert(3, forged)  # a plausible entry 4 wedged in before the real one
    check(entries, [], signing_key, 5, "inserted, repeated or reordered")


def test_inserted_and_renumbered_chain_is_caught(signing_key: Ed25519PrivateKey) -> None:
    entries = chain()
    cps = signed(signing_key, entries, [12])
    forged = chain_entry(4, entries[2]["hash"], seed_records()[6])
    renumbered = entries[:3] + [forged] + [{**e, "seq": e["seq"] + 1} for e in entries[3:]]
    check(renumbered, cps, signing_key, 5, "does not match its hash")


def test_reordered_records_are_caught(signing_key: Ed25519PrivateKey) -> None:
    entries = chain()
    entries[2], entries[3] = entries[3], entries[2]
    check(entries, [], signing_key, 3, "record 3 is missing or out of order")


def test_truncation_is_caught_by_the_last_checkpoint(signing_key: Ed25519PrivateKey) -> None:
    entries = chain()
    cps = signed(signing_key, entries, [5, 12])
    check(entries[:9], cps, signing_key, 10, "truncated")


def test_rewritten_chain_is_caught_by_a_checkpoint(signing_key: Ed25519PrivateKey) -> None:
    entries = chain()
    cps = signed(signing_key, entries, [4, 10])
    records = [e["record"] for e in entries]
    records[6] = {**records[6], "actor": "admin"}
    rewritten = extend(0, GENESIS, records)  # every hash recomputed: self-consistent, but not what was signed
    assert verify(rewritten, [], signing_key.public_key()).ok
    check(rewritten, cps, signing_key, 5, "between seq 5 and 10 was rewritten")


def test_forged_checkpoint_is_caught(signing_key: Ed25519PrivateKey) -> None:
    entries = chain()
    cps = signed(signing_key, entries, [5])
    forged = copy.deepcopy(cps[0])
    forged["seq"], forged["hash"] = 9, entries[8]["hash"]
    check(entries, [*cps, forged], signing_key, 9, "signature invalid")
    other = Ed25519PrivateKey.generate()
    by_other = signed(other, entries, [12])
    check(entries, by_other, signing_key, 12, "not made by this key")


def pruned_chain(seqs: tuple[int, ...] = (2, 3, 7), before: str = "2026-04-01T00:00:00.000Z",
                 logged: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
    """chain() with `seqs` made tombstones at T and, after them, one audit.prune record per kind naming the
    cut-off, the range and how many (of `logged`, default `seqs`) it pruned: what AuditStore.prune writes."""
    entries = chain()
    counted = [e["record"]["kind"] for e in entries if e["seq"] in (seqs if logged is None else logged)]
    prunes = [audit_record("admin_action", time=T, actor="cli:uid1000", action="audit.prune", target=kind,
                           before=before, through_seq=len(entries), count=counted.count(kind))
              for kind in dict.fromkeys(counted)]
    entries += extend(len(entries), entries[-1]["hash"], prunes)
    return [tombstone(e, T) if e["seq"] in seqs else e for e in entries]


def test_tombstones_keep_the_chain_verifiable(signing_key: Ed25519PrivateKey) -> None:
    pruned = pruned_chain()
    cps = signed(signing_key, pruned, [6, 12])
    assert "record" not in pruned[1] and pruned[1]["pruned"]["kind"] == chain()[1]["record"]["kind"]
    assert verify(pruned, cps, signing_key.public_key()).ok


def test_a_tombstone_no_logged_prune_covers_is_caught(signing_key: Ed25519PrivateKey) -> None:
    """Removing a body (a disclosure, a read) and calling it pruned is tampering unless a chained prune says so."""
    entries = chain()
    forged = [tombstone(e, T) if e["seq"] == 4 else e for e in entries]
    check(forged, signed(signing_key, entries, [12]), signing_key, 4, "no logged prune covers")
    # beside a real prune: a forged tombstone of a kind the prune did not name, or one more than it recorded
    check(pruned_chain(seqs=(2, 3, 4, 7), logged=(2, 3, 7)), [], signing_key, 4, "no logged prune covers")
    check(pruned_chain(seqs=(2, 3, 7, 8), logged=(2, 3, 7)), [], signing_key, 13, "which recorded 1")


def test_a_tombstone_inside_its_prunes_retention_period_is_caught(signing_key: Ed25519PrivateKey) -> None:
    """A forged tombstone dressed as one of a real prune's kind, but younger than that prune's cut-off."""
    check(pruned_chain(before="2026-03-02T08:00:00.000Z"), [], signing_key, 2, "inside the retention period")


def test_index_columns_are_checked_against_the_body(signing_key: Ed25519PrivateKey) -> None:
    """The store's query columns are a copy of the body: a copy that differs (a subject moved, a kind renamed)
    is named by seq and column, never by value."""
    from broker.audit.chain import index_of

    entries = [{**e, "index": {**index_of(e["record"]), "pruned_at": None}} for e in chain()]
    assert verify(entries, [], signing_key.public_key()).ok
    entries[3]["index"]["subject"] = None
    result = check(entries, [], signing_key, 4, "its subject column does not match")
    assert str(chain()[3]["record"]["subject"]) not in result.reason


def test_the_head_must_name_the_last_entry(signing_key: Ed25519PrivateKey) -> None:
    entries = chain()
    assert verify(entries, [], signing_key.public_key(), head=(12, entries[-1]["hash"])).ok
    result = verify(entries[:-1], [], signing_key.public_key(), head=(12, entries[-1]["hash"]))
    assert not result.ok and result.first_bad_seq == 12 and "truncated" in result.reason


def test_a_missing_periodic_checkpoint_is_an_error(signing_key: Ed25519PrivateKey) -> None:
    entries = chain()
    assert verify(entries, signed(signing_key, entries, [5, 10]), signing_key.public_key(), checkpoint_every=5).ok
    check(entries, [], signing_key, 5, "no signed checkpoint at seq 5", checkpoint_every=5)
    check(entries, signed(signing_key, entries, [5]), signing_key, 10, "no signed checkpoint at seq 10",
          checkpoint_every=5)
    # a compacted chain is expected to hold them from its start only
    anchor = signed(signing_key, entries, [7], "prune")
    assert verify(entries[7:], [*anchor, *signed(signing_key, entries, [10])], signing_key.public_key(),
                  checkpoint_every=5).ok


def test_a_store_from_before_exact_multiples_still_verifies(signing_key: Ed25519PrivateKey) -> None:
    """Stores written before checkpoints were signed at the multiples themselves signed at the head of the batch that
    crossed one (seq 7 for 5, 12 for 10): they verify; a multiple with no checkpoint before the next is still caught."""
    entries = chain()
    assert verify(entries, signed(signing_key, entries, [7, 12]), signing_key.public_key(), checkpoint_every=5).ok
    check(entries, signed(signing_key, entries, [12]), signing_key, 5, "no signed checkpoint at seq 5",
          checkpoint_every=5)


def test_compacted_chain_needs_a_signed_prune_anchor(signing_key: Ed25519PrivateKey) -> None:
    entries = chain()
    cps = signed(signing_key, entries, [12])
    anchor = signed(signing_key, entries, [4], "prune")
    assert verify(entries[4:], [*anchor, *cps], signing_key.public_key()).ok
    # a periodic checkpoint at the same place is no licence to drop the records before it
    check(entries[4:], [*signed(signing_key, entries, [4]), *cps], signing_key, 1, "earlier records are missing")
    check(entries[4:], cps, signing_key, 1, "earlier records are missing")


def test_deleting_after_a_prune_anchor_is_caught(signing_key: Ed25519PrivateKey) -> None:
    entries = chain()
    anchor = signed(signing_key, entries, [4], "prune")
    check(entries[6:], anchor, signing_key, 1, "earlier records are missing")


def test_canonical_encoding_is_sorted_compact_utf8_json() -> None:
    """An outside auditor re-implements `canonical` with any JSON library: it must be exactly these bytes."""
    import json

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from broker.audit.chain import canonical

    values = st.recursive(st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
                          lambda c: st.lists(c) | st.dictionaries(st.text(), c), max_leaves=20)

    @settings(max_examples=300, deadline=None)
    @given(values)
    def same(value: object) -> None:
        assert canonical(value) == json.dumps(value, sort_keys=True, separators=(",", ":"),
                                              ensure_ascii=False).encode()

    same()
