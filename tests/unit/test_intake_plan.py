"""The intake planner with no Kafka, HTTP or database: what a request publishes, in what order, under which key;
what the registers learn and only after what; what an erased child's resend, a key outage, a bad record and an input
too large to keep as a dead letter do. Keys are held in memory (real AES-256-GCM, the KeyProvider contract)."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from adapters.kit.events import new_event
from adapters.kit.interface import AdaptContext, Rejection
from broker.bench.records import fhir_patient
from broker.crypto.envelope import reveal_event
from broker.crypto.errors import ErasedData, KeyShredded, KeyUnavailable
from broker.crypto.provider import DataKey
from broker.crypto.split_seal import open_split
from broker.pipeline.deadletter import INPUT_KIND, input_key
from broker.pipeline.erasure import ERASED_RESEND
from broker.pipeline.identify import LinkageKey, complete_identified
from broker.pipeline.intake import Prepared, prepare
from broker.pipeline.intake_plan import (
    UNRECORDABLE,
    ErasureFacts,
    IntakeParams,
    IntakeRequest,
    erasure_tokens,
    plan_intake,
    resolve_intake,
)
from broker.pipeline.messages import decode, header
from broker.pipeline.resolve import JOINED, Known
from broker.schema.validate import validate_event

KEY = LinkageKey(1, b"intake-plan-test-linkage-key-001")
PARAMS = IntakeParams("sg.events", "sg.deadletter")
AT = "2026-11-23T10:00:00Z"
# Fictitious: NHS numbers from the 999 range, which is never issued; UPNs with a serial of zeros.
NHS_A = "9990000018"
UPN_A = "X201000000010"


class MemoryKeys:
    """The KeyProvider contract in memory: a real data key per (scope, classification), no store behind it.
    `erased_events` are refused like the keystore refuses an erased child's old events; `down` is a KMS outage."""

    def __init__(self, erased_events: Iterable[str] = (), down: bool = False) -> None:
        self.keys: dict[str, tuple[str, bytes | None]] = {}  # key id -> (scope, key; None once shredded)
        self.erased_events, self.down = set(erased_events), down

    def encryption_key(self, scope: str, classification: str) -> DataKey:
        return self.encryption_keys(scope, [classification])[classification]

    def encryption_keys(self, scope: str, classifications: Iterable[str], *,
                        event_id: str | None = None) -> dict[str, DataKey]:
        if self.down:
            raise KeyUnavailable("KMS unreachable")
        if event_id in self.erased_events:
            raise ErasedData(event_id)
        out = {}
        for classification in classifications:
            key_id = f"k{len(self.keys)}"
            self.keys[key_id] = (scope, os.urandom(32))
            out[classification] = DataKey(key_id, self.keys[key_id][1])
        return out

    def decryption_key(self, key_id: str, reason: str = "") -> bytes:
        _, key = self.keys[key_id]
        if key is None:
            raise KeyShredded(key_id)
        return key

    def shred(self, scope: str) -> None:
        self.keys = {k: (s, None if s == scope else v) for k, (s, v) in self.keys.items()}


def _event(child: dict, *, record: str = "r1", system: str = "LA201", agency: str = "social_care",
           event_type: str = "person.identified", payload: dict | None = None) -> tuple:
    draft = new_event(event_type=event_type, agency=agency, system=system, record_id=record,
                      record_version="1", fmt="test", occurred_at="2026-01-01", child=child,
                      payload=payload or {"record_kind": "Test"})
    event, ids = complete_identified(draft, KEY, AT)
    assert validate_event(event) == []
    return event, ids


def _prepared(*pairs: tuple, rejections: Iterable[Rejection] = (), rejected_tokens: Iterable[str] = ()) -> Prepared:
    return Prepared(adapter="test", events=[e for e, _ in pairs], identities=[i for _, i in pairs],
                    rejections=list(rejections), rejected_tokens=list(rejected_tokens))


def _request(data: bytes = b"{}") -> IntakeRequest:
    return IntakeRequest("social_care", data, AT, "intake:social_care", "LA201", "application/json")


def _plan(prepared: Prepared, known: Known | None = None, erasure: ErasureFacts | None = None,
          keys: MemoryKeys | None = None, params: IntakeParams = PARAMS, data: bytes = b"{}"):
    resolved = resolve_intake(prepared, known or Known())
    return plan_intake(_request(data), prepared, resolved, erasure or ErasureFacts(), keys or MemoryKeys(), params)


def fits_size(message) -> int:
    return DefaultRecordBatchBuilder.estimate_size_in_bytes(message.key, message.value, list(message.headers))


def _token(event: dict) -> str:
    return event["subject"]["linkage"]["token"]


def _kinds(plan) -> list[str]:
    return [a["kind"] for a in plan.audits]


def test_a_clean_record_is_published_protected_under_its_childs_token_and_its_link_written_after():
    pair = _event({"nhs_number": NHS_A})
    keys = MemoryKeys()
    plan = _plan(_prepared(pair), keys=keys)
    [message] = plan.messages
    assert message.topic == "sg.events" and message.key == _token(pair[0]).encode()
    assert header(message.headers, "event_id") == pair[0]["event_id"]
    assert NHS_A.encode() not in message.value  # the child's data never goes to Kafka in the clear
    assert reveal_event(decode(message.value), keys).event == pair[0]
    assert plan.result.event_ids == [pair[0]["event_id"]] and plan.result.rejections == []
    assert _kinds(plan) == ["record_received", "record_adapted", "event_published"]
    assert [r.token for r in plan.links] == [_token(pair[0])]  # the register learns the new child's identifier
    assert plan.refusal is None and plan.consent_folds == () and plan.result.deadletter_ids == []


def test_a_merge_announces_person_linked_first_on_the_same_key_folds_consent_and_leaves_known_unchanged():
    school, school_ids = _event({"upn": UPN_A}, agency="education", system="S1", record="pupil-1")
    care, care_ids = _event({"la_child_id": "C1"}, record="episode-1")
    known = Known()
    for ids, child in ((school_ids, _token(school)), (care_ids, _token(care))):  # two children, as the register has
        for identity in ids:
            known.child_of[identity.token] = child
            known.members.setdefault(child, {})[identity.kind] = identity.token
    before = copy.deepcopy(known)
    header_record = _event({"upn": UPN_A, "la_child_id": "C1"}, record="header-1")
    plan = _plan(_prepared(header_record), known)
    linked, event = [decode(m.value) for m in plan.messages]
    assert [header(m.headers, "event_type") for m in plan.messages] == ["person.linked", "person.identified"]
    assert {m.key for m in plan.messages} == {_token(school).encode()}  # one partition: the link comes first
    assert linked["payload"]["superseded_token"] == _token(care)
    assert plan.consent_folds == ((_token(care), _token(school)),)
    [resolution] = plan.links
    assert resolution.merged == (_token(care),)
    assert [a["reason"] for a in plan.audits if a["kind"] == "identity_linked"] == [JOINED]
    assert (known.child_of, known.members) == (before.child_of, before.members)  # the snapshot is not changed
    assert event["event_id"] == header_record[0]["event_id"]


def test_two_records_of_one_request_about_one_child_share_its_token_and_link_once():
    first = _event({"upn": UPN_A, "la_child_id": "C1"}, record="header-1")
    second = _event({"la_child_id": "C1"}, record="episode-1")
    assert _token(first[0]) != _token(second[0])  # without the request's own links they would never meet
    plan = _plan(_prepared(first, second))
    assert {m.key for m in plan.messages} == {_token(first[0]).encode()}
    assert [len(r.links) for r in plan.links] == [2, 0]  # the second record finds what the first one tied


def test_the_same_record_twice_in_one_request_keeps_one_event_id_and_writes_its_link_once():
    pair = _event({"nhs_number": NHS_A})
    plan = _plan(_prepared(pair, pair))
    assert plan.result.event_ids == [pair[0]["event_id"]] * 2  # deterministic ids: dropped downstream as one
    assert [len(r.links) for r in plan.links] == [1, 0]


def test_an_erased_childs_old_record_is_refused_and_its_input_not_kept_while_others_publish():
    old = _event({"nhs_number": NHS_A}, record="old-1")
    other = _event({"la_child_id": "C9"}, record="other-1")
    erasure = ErasureFacts({_token(old[0]): "2026-11-20T00:00:00Z"}, frozenset({old[0]["event_id"]}))
    plan = _plan(_prepared(old, other), erasure=erasure)
    events = [m for m in plan.messages if m.topic == "sg.events"]
    assert [header(m.headers, "event_id") for m in events] == [other[0]["event_id"]]
    assert [r.reason for r in plan.result.rejections] == [ERASED_RESEND]
    assert plan.result.rejections[0].record == "event 0 (person.identified)"
    [record] = [decode(m.value) for m in plan.messages if m.topic == "sg.deadletter"]
    assert record["input"] == "" and "input_ref" not in record  # the input holds old data: not kept at all
    assert [r.token for r in plan.links] == [_token(other[0])]  # nothing learned from the refused record


def test_the_keystores_own_refusal_of_an_erased_event_is_a_rejection_not_an_outage():
    pair = _event({"nhs_number": NHS_A})
    plan = _plan(_prepared(pair), keys=MemoryKeys(erased_events={pair[0]["event_id"]}))
    assert [m.topic for m in plan.messages] == ["sg.deadletter"]
    assert [r.reason for r in plan.result.rejections] == [ERASED_RESEND] and plan.links == ()


def test_keys_unavailable_raise_and_plan_nothing():
    with pytest.raises(KeyUnavailable):
        _plan(_prepared(_event({"nhs_number": NHS_A})), keys=MemoryKeys(down=True))


def test_a_rejected_record_seals_the_input_once_with_no_share_for_an_erased_child():
    good = _event({"nhs_number": NHS_A})
    bad = Rejection("request", "record 2", "child.birthDate", "not a date")
    erased_token = "lt1_erasedchildtokenfictitious00000000"
    data = b'{"fictitious": "Testchild Example"}'
    prepared = _prepared(good, rejections=[bad], rejected_tokens=[erased_token])
    assert erasure_tokens(prepared, resolve_intake(prepared, Known())) == {_token(good[0]), erased_token}
    keys = MemoryKeys()
    plan = _plan(prepared, erasure=ErasureFacts({erased_token: "2026-11-20T00:00:00Z"}), keys=keys, data=data)
    topics = [m.topic for m in plan.messages]
    assert topics == ["sg.events", "sg.deadletter", "sg.deadletter"]  # events, then the input, then its records
    kept, record = (decode(m.value) for m in plan.messages[1:])
    assert plan.messages[1].key == input_key(_request(data).content_sha256)
    assert kept["kind"] == INPUT_KIND and kept["tokens"] == sorted({_token(good[0]), erased_token})
    assert {s["scope"] for s in kept["sealed"]["shares"]} >= {_token(good[0])}
    assert erased_token not in {s["scope"] for s in kept["sealed"]["shares"]}
    assert b"Testchild" not in plan.messages[1].value
    assert open_split(kept["sealed"], f"deadletter:{kept['content_sha256']}", keys) == data
    keys.shred(_token(good[0]))  # erasing the child its event names makes the kept input unreadable
    with pytest.raises(KeyShredded):
        open_split(kept["sealed"], f"deadletter:{kept['content_sha256']}", keys)
    assert record["input_ref"] == kept["content_sha256"] and record["rejection"]["reason"] == "not a date"
    assert plan.result.deadletter_ids == [record["deadletter_id"]]
    assert _kinds(plan) == ["record_received", "record_adapted", "event_published", "record_rejected",
                            "deadlettered"]


def test_an_input_too_large_to_keep_is_refused_whole_with_only_its_audit():
    bad = Rejection("request", "record 1", "", "not a date")
    data = b"x" * 50_000
    plan = _plan(_prepared(_event({"nhs_number": NHS_A}), rejections=[bad]),
                 params=IntakeParams("sg.events", "sg.deadletter", message_limit=20_000), data=data)
    assert plan.refusal is not None and "20000-byte message limit" in plan.refusal
    assert plan.messages == () and plan.links == ()
    assert _kinds(plan) == ["record_received", "record_rejected"]
    assert [r.reason for r in plan.result.rejections] == ["not a date", plan.refusal]


def test_an_event_over_the_message_limit_is_rejected_alone():
    small = _event({"nhs_number": NHS_A}, record="small")
    large = _event({"la_child_id": "C1"}, record="large", agency="police", system="Y99901",
                   event_type="police.incident_child_present",
                   payload={"incident_reference": "999001", "summary": "Fictitious summary. " * 400})
    sizes = [fits_size(m) for m in _plan(_prepared(small, large)).messages]
    assert sizes[0] < sizes[1], sizes
    limit = (sizes[0] + sizes[1]) // 2
    plan = _plan(_prepared(small, large), params=IntakeParams("sg.events", "sg.deadletter", message_limit=limit))
    assert plan.result.event_ids == [small[0]["event_id"]]
    assert [r.reason for r in plan.result.rejections] == [f"canonical event larger than Kafka's {limit}-byte message "
                                                          "limit"]
    assert [r.token for r in plan.links] == [_token(small[0])]  # the refused one's link is not written


def test_a_rejection_the_audit_log_cannot_hold_becomes_value_free():
    leaky = Rejection("request", "record 1", "", "value 'Testchild Example' is not a date\n")
    plan = _plan(_prepared(rejections=[leaky]))
    assert [r.reason for r in plan.result.rejections] == [UNRECORDABLE]
    assert all("Testchild" not in str(a) for a in plan.audits)
    assert all(b"Testchild" not in m.value for m in plan.messages if m.topic == "sg.deadletter" and
               decode(m.value).get("kind") != INPUT_KIND)


def test_a_real_adapters_output_plans_with_nothing_but_data():
    ctx = AdaptContext(source="request", received_at=AT, system="Y99901")
    prepared = prepare("health", fhir_patient(1), ctx, KEY, content_type="application/fhir+json")
    assert prepared.rejections == [] and prepared.events
    plan = _plan(prepared)
    assert plan.result.event_ids == [e["event_id"] for e in prepared.events]
    assert [m.topic for m in plan.messages] == ["sg.events"] * len(prepared.events)
    assert len(prepared.rejections) == 0  # the planner does not change what it was given
