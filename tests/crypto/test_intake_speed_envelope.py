"""Old against new for protect_event (issue 24, session 12).

Old: two walks of the event, one for the classifications it needs keys for, then a copy sealing each leaf as it
went. New: one walk that copies and lists the leaves to seal, then the keys, then the sealing. Kept here, small,
is the old way (`reference_protect`, over the envelope's own `_map_leaves`, which reveal still uses). What must
not change, on any shape and on the bench's whole mix: every copy's structure and operational values, which
leaves are sealed, under which key id, at which length (the same padding), the associated data (each new
ciphertext opens under the old path's AAD, and only there), and what the key provider is asked (scope,
classifications, event id: one counted use each), also for an event with nothing to seal (the erasure refusal
must still be asked).
"""

from __future__ import annotations

import binascii
import os
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.bench.intake_mix import PARAMS, Body, comparable, intake_mix, plan_with_store, read_bodies
from broker.bench.records import usable_formats
from broker.crypto import KeyStore, open_key_provider, protect_event, reveal_event
from broker.crypto.envelope import (
    _PAD,
    _PADDING,
    _UNKNOWN,
    PREFIX,
    _copy_collecting,
    _envelope_header,
    _map_leaves,
    _Node,
    _schema_tree,
)
from broker.crypto.errors import ErasedData
from broker.crypto.keystore import ENCRYPTING
from broker.crypto.provider import DataKey, KeyPreparer
from broker.crypto.split_seal import open_split
from broker.pipeline import intake_plan
from broker.pipeline.erasure import ERASED_RESEND
from broker.pipeline.intake_plan import ErasureFacts, IntakeParams, IntakePlan, Resolved, plan_intake, resolve_intake
from tests.crypto.test_keystore_prepare import _names, _rows


def reference_classifications(value: Any, schema: _Node, found: set[str]) -> set[str]:
    """HEAD's first pass: the classifications of the non-operational leaves."""
    t = type(value)
    if t is dict or (t is not list and isinstance(value, dict)):
        for k, v in value.items():
            reference_classifications(v, schema.children.get(k, _UNKNOWN), found)
    elif t is list or isinstance(value, list):
        for v in value:
            reference_classifications(v, schema.children.get("[]", _UNKNOWN), found)
    elif schema.label != "operational":
        found.add(schema.label)
    return found


def reference_protect(event: Mapping[str, Any], keys: Any, *, scope: str | None = None) -> dict[str, Any]:
    """HEAD's protect_event (its nonce stream replaced by os.urandom per leaf: nonces are random either way)."""
    token, aad_head, tree = _envelope_header(event)
    sealers = {c: (dk.aead.encrypt, f"{PREFIX}{dk.key_id}:", f"\x1f{dk.key_id}")
               for c, dk in keys.encryption_keys(scope or token, sorted(reference_classifications(event, tree, set())),
                                                 event_id=event["event_id"]).items()}

    def encrypt(value: Any, path: str, classification: str) -> Any:
        seal, head, tail = sealers[classification]
        nonce = os.urandom(12)
        text = orjson.dumps(value)
        sealed = seal(nonce, text + _PADDING[len(text) % _PAD], f"{aad_head}{path}{tail}".encode())
        return head + binascii.b2a_base64(nonce + sealed, newline=False).decode()

    protected: dict[str, Any] = _map_leaves(event, tree, encrypt)
    return protected


class Recording:
    """A key provider that hands out fixed keys and records every request (the calls must match, in order)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...], str | None]] = []
        self.keys = {c: DataKey(f"dk_test_{c}", bytes([i + 1]) * 32) for i, c in enumerate(ENCRYPTING)}

    def encryption_keys(self, scope: str, classifications: Iterable[str], *,
                        event_id: str | None = None) -> dict[str, DataKey]:
        wanted = tuple(classifications)
        self.calls.append((scope, wanted, event_id))
        return {c: self.keys[c] for c in wanted}

    def encryption_key(self, scope: str, classification: str) -> DataKey:
        return self.encryption_keys(scope, [classification])[classification]

    def decryption_key(self, key_id: str, reason: str = "") -> bytes:
        return next(k.key for k in self.keys.values() if k.key_id == key_id)


def _shape(protected: Any) -> Any:
    """The protected copy with each ciphertext reduced to (key id, length): what old and new must share exactly."""
    if isinstance(protected, dict):
        return {k: _shape(v) for k, v in protected.items()}
    if isinstance(protected, list):
        return [_shape(v) for v in protected]
    if isinstance(protected, str) and protected.startswith(PREFIX):
        return ("sealed", protected[len(PREFIX):].partition(":")[0], len(protected))
    return protected


def _opens_under_the_old_aad(new: Any, original: Any, aad_head: str, keys: Any, path: str = "") -> int:
    """Every new ciphertext opens under the associated data the old path bound at its place (HEAD's format:
    head, concrete path, key id), to the original value padded with spaces to a multiple of 16, and fails at any
    other path. Returns how many were opened."""
    if isinstance(new, dict):
        return sum(_opens_under_the_old_aad(v, original[k], aad_head, keys, f"{path}.{k}" if path else k)
                   for k, v in new.items())
    if isinstance(new, list):
        return sum(_opens_under_the_old_aad(v, original[i], aad_head, keys, f"{path}[{i}]")
                   for i, v in enumerate(new))
    if not (isinstance(new, str) and new.startswith(PREFIX)):
        return 0
    key_id, _, body = new[len(PREFIX):].partition(":")
    raw = binascii.a2b_base64(body)
    cipher = AESGCM(keys.decryption_key(key_id))
    plain = cipher.decrypt(raw[:12], raw[12:], f"{aad_head}{path}\x1f{key_id}".encode())
    assert len(plain) % _PAD == 0 and plain.rstrip(b" ") == orjson.dumps(original)
    with pytest.raises(InvalidTag):
        cipher.decrypt(raw[:12], raw[12:], f"{aad_head}{path}.moved\x1f{key_id}".encode())
    return 1


def _sealed(shape: Any) -> int:
    if isinstance(shape, dict):
        return sum(_sealed(v) for v in shape.values())
    if isinstance(shape, list):
        return sum(_sealed(v) for v in shape)
    return int(isinstance(shape, tuple))


# --- any shape ------------------------------------------------------------------------------------------------------
class Items(list[Any]):
    pass


names = st.sampled_from(["subject", "child", "given_names", "addresses", "lines", "payload", "event_id", "", "zz",
                         "risk", "level", "consent"])
leaves = st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False) \
    | st.sampled_from(["", "Testchild", "Fictitious Lane"])
shapes = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=3) | st.lists(inner, max_size=2).map(Items)
    | st.dictionaries(names, inner, max_size=4) | st.dictionaries(names, inner, max_size=2).map(OrderedDict),
    max_leaves=30)
event_types = st.sampled_from(["health.admission", "police.incident_child_present", "person.updated",
                               "social_care.child_protection_plan", "education.attendance_concern", "no.such_type"])


@settings(max_examples=300, deadline=None)
@given(shapes, event_types)
def test_one_walk_lists_the_leaves_the_old_walk_sealed_with_their_paths_and_labels(value: Any,
                                                                                   event_type: str) -> None:
    tree = _schema_tree(event_type)
    seen: list[tuple[str, str, str]] = []

    def tagged(v: Any, path: str, label: str) -> str:
        seen.append((repr(v), path, label))
        return f"<{path}|{label}>"

    old = _map_leaves(value, tree, tagged)
    box, pending = _copy_collecting(value, tree)
    assert [(repr(v), path, label) for _, _, v, path, label in pending] == seen  # same leaves, same order
    assert {p[4] for p in pending} == reference_classifications(value, tree, set())
    for out, where, _, path, label in pending:
        out[where] = f"<{path}|{label}>"
    assert repr(box[0]) == repr(old) and type(box[0]) is type(old)
    if isinstance(value, (dict, list)):
        assert box[0] is not value  # a copy: the input is never written


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(names, shapes, max_size=4), event_types)
def test_protect_asks_the_same_keys_and_seals_the_same_leaves_as_the_old_way(extra: dict[str, Any],
                                                                             event_type: str) -> None:
    event = {**extra, "event_id": "00000000-0000-4000-8000-000000000001", "schema_version": "1.5.0",
             "event_type": event_type, "subject": {"linkage": {"token": "lt1_fictitious"}}}
    before = orjson.dumps(event)
    old_keys, new_keys = Recording(), Recording()
    old, new = reference_protect(event, old_keys), protect_event(event, new_keys)
    assert orjson.dumps(event) == before  # the input is not changed
    assert new_keys.calls == old_keys.calls  # one counted use per classification, asked the same way
    assert _shape(new) == _shape(old)
    _, aad_head, _ = _envelope_header(event)
    assert _opens_under_the_old_aad(new, event, aad_head, new_keys) == _sealed(_shape(old))


def test_an_event_with_nothing_to_seal_still_asks_the_provider_so_an_erased_resend_is_refused() -> None:
    event = {"event_id": "00000000-0000-4000-8000-000000000002", "schema_version": "1.5.0",
             "event_type": "health.admission", "subject": {"linkage": {"token": "lt1_fictitious"}}}
    keys = Recording()
    assert protect_event(event, keys) == event
    assert keys.calls == [("lt1_fictitious", (), event["event_id"])]

    class Refusing(Recording):
        def encryption_keys(self, scope: str, classifications: Iterable[str], *,
                            event_id: str | None = None) -> dict[str, DataKey]:
            raise ErasedData(event_id or "")

    with pytest.raises(ErasedData):
        protect_event(event, Refusing())


# --- the bench's mix, real keys -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mix_events() -> list[dict[str, Any]]:
    formats, _, _ = usable_formats()
    events = [e for b in read_bodies(formats, 40, 5) for e in b.prepared.events]
    assert len({e["event_type"] for e in events}) >= 7  # every format of the mix is in it
    return events


def test_over_the_mix_new_and_old_agree_on_keys_lengths_aad_and_what_reveals(tmp_path: Path,
                                                                             mix_events: list[dict[str, Any]]) -> None:
    keys: KeyStore = open_key_provider(tmp_path / "data", create=True)
    try:
        sealed = 0
        for event in mix_events:
            old, new = reference_protect(event, keys), protect_event(event, keys)
            assert _shape(new) == _shape(old)  # same key ids (same child, same classification) and lengths
            assert new != old  # fresh nonces: never the same ciphertext twice
            assert reveal_event(new, keys).event == reveal_event(old, keys).event == event
            _, aad_head, _ = _envelope_header(event)
            assert _opens_under_the_old_aad(new, event, aad_head, keys) == _sealed(_shape(old))
            sealed += _sealed(_shape(new))
        assert sealed > 10 * len(mix_events)  # the mix's events carry many sealed fields: this compared them
    finally:
        keys.close()


# --- plan_intake: HEAD's loop against the new one, two key stores ---------------------------------------------------
class OneByOne:
    """The key store as HEAD's plan_intake used it: its KeyProvider calls only, so not a KeyPreparer (each event asks
    for its own keys, and a new child's are made in a transaction of their own)."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store

    def encryption_key(self, scope: str, classification: str) -> DataKey:
        return self.store.encryption_key(scope, classification)

    def encryption_keys(self, scope: str, classifications: Iterable[str], *,
                        event_id: str | None = None) -> dict[str, DataKey]:
        return self.store.encryption_keys(scope, classifications, event_id=event_id)

    def decryption_key(self, key_id: str, reason: str = "") -> bytes:
        return self.store.decryption_key(key_id, reason)


@dataclass(frozen=True, slots=True)
class _Whole:
    event: Mapping[str, Any]


def head_plan(keys: KeyStore, body: Body, resolved: Resolved, erasure: ErasureFacts,
              params: IntakeParams = PARAMS) -> IntakePlan:
    """HEAD's plan_intake. Its loop differed from today's only in protecting each event whole, with
    `protect_event(event, keys)`, and in asking no key in advance: so today's loop, its two halves put back to
    HEAD's protect_event (`reference_protect`), with a key handle that cannot prepare."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(intake_plan, "unsealed", lambda event, *, scope=None: _Whole(event))
        patch.setattr(intake_plan, "seal", lambda todo, keys: reference_protect(todo.event, keys))
        return plan_intake(body.request, body.prepared, resolved, erasure, OneByOne(keys), params)


def _named(plan: IntakePlan, keys: KeyStore, store_file: Path) -> dict[str, Any]:
    """What the plan would publish (`comparable`: every event decrypted, every leaf's key id and ciphertext length,
    the dead letters, the audit records), with each key id replaced by its name in its own store (scope,
    classification, how many keys that pair had before), and each sealed dead-letter input opened."""
    names = _names(store_file)
    out = comparable(plan, keys)
    for entry, message in zip(out["messages"], plan.messages, strict=True):
        if "protected" in entry:
            entry["protected"] = {path: (names[key_id], size) for path, (key_id, size) in entry["protected"].items()}
        value = orjson.loads(message.value)
        if "sealed" in value:  # the dead-letter input: its shares' keys by name, and what it opens to
            shares = value["sealed"]["shares"]
            entry["shares"] = [(s["scope"], names[s["share"][len(PREFIX):].partition(":")[0]]) for s in shares]
            entry["opened"] = open_split(value["sealed"], f"deadletter:{value['content_sha256']}", keys)
    return out


def test_over_the_mix_old_and_new_plans_publish_the_same_with_shreds_and_resends(tmp_path: Path) -> None:
    """Two stores seeded the same way (fresh, then the same requests), one planned as HEAD planned, the other as
    today, request by request over the bench's mix in files of 20: records 0-199 (200 children), a third of those
    children shredded with their events, then records 200-399 (the same children: new events, so a shredded
    child's get new keys) with resends of earlier files (a shredded child's old events: refused by the key store).
    Each request's plans must agree on everything they would publish and record; the stores on every key row."""
    formats, _, _ = usable_formats()
    bodies = read_bodies(formats, 20, 20)
    with intake_mix(tmp_path / "old", count=0) as old, intake_mix(tmp_path / "new", count=0) as new:
        assert isinstance(new.keys, KeyPreparer) and not isinstance(OneByOne(old.keys), KeyPreparer)
        files = {id(old): tmp_path / "old" / "data" / "keys" / "datakeys.sqlite",
                 id(new): tmp_path / "new" / "data" / "keys" / "datakeys.sqlite"}
        commits: Counter[int] = Counter()

        def counting(at: int) -> Callable[[str], None]:
            def traced(sql: str) -> None:
                commits[at] += sql.startswith("COMMIT")
            return traced

        for side in (old, new):
            side.keys._db.set_trace_callback(counting(id(side)))
        published: dict[str, list[str]] = {}  # token -> its published event ids
        erased_resends = new_after_shred = 0
        shredded: set[str] = set()

        def plan_both(body: Body) -> IntakePlan:
            plans = []
            for side, planner in ((old, head_plan), (new, plan_with_store)):
                known = side.identities.known(i.token for ids in body.prepared.identities for i in ids)
                resolved = resolve_intake(body.prepared, known)
                plans.append(planner(side.keys, body, resolved, ErasureFacts(), PARAMS))
                if plans[-1].links:
                    side.identities.apply(plans[-1].links, body.request.received_at)
            named = _named(plans[1], new.keys, files[id(new)])
            assert _named(plans[0], old.keys, files[id(old)]) == named
            # and not only alike: each published message is its own event, whole (the loop is shared by both ways)
            by_id = {e["event_id"]: e for e in resolved.events}
            events = [m["event"] for m in named["messages"] if "event" in m]
            assert events == [by_id[i] for i in plans[1].result.event_ids]
            return plans[1]

        for body in bodies[:10]:
            plan = plan_both(body)
            for audit in plan.audits:
                if audit["kind"] == "event_published":
                    published.setdefault(audit["subject"], []).append(audit["event_id"])
        assert len(published) > 150
        for token in sorted(published)[::3]:
            assert old.keys.shred_with_report(token, published[token]).data_keys == \
                new.keys.shred_with_report(token, published[token]).data_keys > 0
            shredded.add(token)
        for body in [bodies[10], bodies[0], *bodies[11:15], bodies[3], *bodies[15:], bodies[7]]:
            plan = plan_both(body)
            erased_resends += sum(r.reason == ERASED_RESEND for r in plan.result.rejections)
            new_after_shred += sum(a["kind"] == "event_published" and a["subject"] in shredded for a in plan.audits)
        assert erased_resends > 10 and new_after_shred > 10  # both ways of meeting a shredded child were compared
        assert commits[id(new)] * 2 < commits[id(old)]  # and a file's new keys were made together, not event by event
    assert _rows(files[id(old)], use_counts=True, times=False) == _rows(files[id(new)], use_counts=True, times=False)
