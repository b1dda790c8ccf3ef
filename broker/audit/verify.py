"""Verifying a chain and its checkpoints: a pure function an outside auditor can run on an export.

Checks, in order: every checkpoint's signature; where the chain starts (seq 1 from GENESIS, or a later seq anchored
by a signed prune checkpoint); every entry's seq, record digest, hash and link to the one before; then that every
checkpoint's hash matches the chain at its seq and that no checkpoint lies beyond the last entry (truncation).
The result names the first record that is wrong, or the first that can no longer be trusted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.audit.chain import GENESIS, link_hash, record_digest
from broker.audit.checkpoint import checkpoint_signature_ok


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int  # entries walked
    first_bad_seq: int | None
    reason: str
    head_seq: int = 0
    head_hash: str = GENESIS
    checkpoints: int = 0  # signed checkpoints checked against the chain
    last_checkpoint_seq: int | None = None
    unsigned_tail: int = 0  # entries after the last checkpoint: protected by the chain only until the next one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Fault:
    seq: int
    reason: str


def _walk(entries: Iterable[Mapping[str, Any]], start_seq: int, start_prev: str,
          wanted: set[int]) -> tuple[int, int, str, dict[int, str], _Fault | None]:
    """(checked, head seq, head hash, hashes at wanted seqs, first fault)."""
    expected_seq, expected_prev, checked = start_seq, start_prev, 0
    seen: dict[int, str] = {}
    for entry in entries:
        seq = entry.get("seq")
        if not isinstance(seq, int) or seq != expected_seq:
            if isinstance(seq, int) and seq > expected_seq:
                why = f"record {expected_seq} is missing or out of order (seq {seq} stands in its place)"
            else:
                why = (f"an entry with seq {seq} stands where seq {expected_seq} belongs "
                       "(inserted, repeated or reordered)")
            return checked, expected_seq - 1, expected_prev, seen, _Fault(expected_seq, why)
        record = entry.get("record")
        digest = entry.get("record_sha256")
        if record is not None:
            if not isinstance(record, Mapping) or record_digest(record) != digest:
                return checked, seq - 1, expected_prev, seen, _Fault(seq, f"record {seq} does not match its digest "
                                                                             "(edited)")
        elif not entry.get("pruned"):
            return checked, seq - 1, expected_prev, seen, _Fault(seq, f"record {seq} has no body and is no tombstone")
        if not isinstance(digest, str) or link_hash(seq, str(entry.get("prev_hash")), digest) != entry.get("hash"):
            return checked, seq - 1, expected_prev, seen, _Fault(seq, f"record {seq} does not match its hash (edited)")
        if entry.get("prev_hash") != expected_prev:
            bad = seq - 1 if seq > start_seq else seq
            why = (f"record {seq} links to a hash other than record {seq - 1}'s: record {bad} was altered and "
                   f"rehashed, or record {seq} replaced")
            return checked, seq - 1, expected_prev, seen, _Fault(bad, why)
        checked += 1
        expected_seq, expected_prev = seq + 1, entry["hash"]
        if seq in wanted:
            seen[seq] = expected_prev
    return checked, expected_seq - 1, expected_prev, seen, None


def verify(entries: Iterable[Mapping[str, Any]], checkpoints: Sequence[Mapping[str, Any]],
           public_key: Ed25519PublicKey) -> VerifyResult:
    """Check the entries (in the order given) against the signed checkpoints."""
    cps = sorted(checkpoints, key=lambda c: int(c.get("seq", -1)) if isinstance(c.get("seq"), int) else -1)
    for cp in cps:
        if not checkpoint_signature_ok(cp, public_key):
            return VerifyResult(False, 0, cp.get("seq") if isinstance(cp.get("seq"), int) else None,
                                f"checkpoint at seq {cp.get('seq')}: signature invalid or not made by this key")

    iterator = iter(entries)
    first = next(iterator, None)
    start_seq, start_prev = 1, GENESIS
    if first is not None and first.get("seq") != 1:
        if not isinstance(first.get("seq"), int):
            return VerifyResult(False, 0, 1, "the first entry has no sequence number")
        anchor = next((c for c in cps if c["purpose"] == "prune" and c["seq"] == first["seq"] - 1
                       and c["hash"] == first.get("prev_hash")), None)
        if anchor is None:
            return VerifyResult(False, 0, 1, f"the chain starts at seq {first.get('seq')} with no signed prune "
                                             "checkpoint anchoring it: earlier records are missing")
        start_seq, start_prev = int(first["seq"]), str(first["prev_hash"])

    def chained() -> Iterable[Mapping[str, Any]]:
        if first is not None:
            yield first
            yield from iterator

    wanted = {int(c["seq"]) for c in cps}
    checked, head_seq, head_hash, seen, fault = _walk(chained(), start_seq, start_prev, wanted)
    seen[start_seq - 1] = start_prev

    faults = [fault] if fault else []
    good_cp = start_seq - 1
    matched, last_cp = 0, None
    for cp in cps:
        seq = int(cp["seq"])
        if seq < start_seq - 1:
            continue  # before the retention horizon: nothing left to compare with
        if fault is not None and seq > head_seq:
            break  # the walk stopped early; the fault already names the place
        if seq > head_seq:
            faults.append(_Fault(head_seq + 1, f"records after seq {head_seq} are missing: a signed checkpoint "
                                               f"covers seq {seq} (truncated)"))
            break
        if seen.get(seq) != cp["hash"]:
            faults.append(_Fault(good_cp + 1, f"the chain between seq {good_cp + 1} and {seq} was rewritten: it does "
                                              f"not match the signed checkpoint at seq {seq}"))
            break
        good_cp, matched, last_cp = seq, matched + 1, seq

    if faults:
        worst = min(faults, key=lambda f: f.seq)
        return VerifyResult(False, checked, worst.seq, worst.reason, head_seq, head_hash, matched, last_cp)
    tail = head_seq - (last_cp if last_cp is not None else start_seq - 1)
    reason = f"{checked} records verified; {matched} signed checkpoint(s) match"
    if tail:
        reason += f"; {tail} records after the last checkpoint are protected by the chain only"
    return VerifyResult(True, checked, None, reason, head_seq, head_hash, matched, last_cp, tail)
