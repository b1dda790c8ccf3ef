"""Issue 23: one dead letter per rejected input record, however many of its fields or events were refused, each
naming its record and line and listing every problem; the good records published; dead-lettering bounded. The
planner with real adapters (prepare) and real AES-GCM keys in memory, no Kafka (the service test is
tests/integration/test_deadletter_per_record.py)."""

from __future__ import annotations

import json

import orjson

from adapters.kit.interface import AdaptContext, Rejection
from broker.bench.records import BY_NAME
from broker.pipeline.deadletter import (
    INPUT_KIND,
    MAX_PROBLEMS_PER_RECORD,
    MAX_REJECTION_RECORDS,
    bounded,
    deadletter_record,
    per_record,
)
from broker.pipeline.intake import prepare
from broker.pipeline.intake_plan import ErasureFacts, IntakeParams, IntakeRequest, plan_intake, resolve_intake
from broker.pipeline.messages import decode
from broker.pipeline.resolve import Known
from tests.unit.test_intake_plan import KEY, MemoryKeys

AT = "2026-11-23T10:00:00Z"
LONG = "Q" * 3000  # fictitious; longer than the canonical schema allows a name


def ten_patients_three_bad() -> tuple[bytes, list[int]]:
    """A pretty-printed Bundle of 10 Patients: entry 2 has two fields the canonical schema refuses (one event, two
    problems), entry 5 a date the adapter refuses, entry 8 both kinds; and each entry's first line."""
    patients = [orjson.loads(BY_NAME["health.fhir"].make(n)) for n in range(1, 11)]
    name = patients[2]["name"][0]
    patients[2]["name"] = [{**name, "family": LONG, "given": [LONG]}]
    patients[5]["birthDate"] = "2015-02-31"
    patients[8] = {**patients[8], "birthDate": "2015-02-31", "gender": "not-a-code"}
    body = json.dumps({"resourceType": "Bundle", "type": "collection",
                       "entry": [{"resource": p} for p in patients]}, indent=2)
    return body.encode(), [n for n, line in enumerate(body.splitlines(), start=1) if line == "    {"]


def _plan(body: bytes, agency: str = "health", content_type: str = "application/fhir+json"):
    ctx = AdaptContext(source="request", received_at=AT)
    prepared = prepare(agency, body, ctx, KEY, content_type=content_type)
    request = IntakeRequest(agency, body, AT, f"intake:{agency}", None, content_type)
    return plan_intake(request, prepared, resolve_intake(prepared, Known()), ErasureFacts(), MemoryKeys(),
                                IntakeParams("sg.events", "sg.deadletter"))


def test_ten_records_three_bad_make_three_dead_letters() -> None:
    body, starts = ten_patients_three_bad()
    plan = _plan(body)
    assert len(plan.result.event_ids) == 7  # the good ones published
    assert len(plan.result.rejections) >= 4  # the answer lists every problem
    letters = [decode(m.value) for m in plan.messages if m.topic == "sg.deadletter"]
    kept = [m for m in letters if m.get("kind") == INPUT_KIND]
    records = [m for m in letters if "deadletter_id" in m]
    assert len(kept) == 1 and len(records) == 3 == len(plan.result.deadletter_ids)
    records.sort(key=lambda r: r["rejection"]["line"])  # the adapter's refusals come before the schema's
    assert [(r["rejection"]["record"], r["rejection"]["line"]) for r in records] == [
        ("Bundle.entry[2]", starts[2]), ("Bundle.entry[5]", starts[5]), ("Bundle.entry[8]", starts[8])]
    two_fields = records[0]["problems"]
    assert sorted(p["field"] for p in two_fields) == ["subject.child.family_name", "subject.child.given_names[0]"]
    assert all(p["line"] == starts[2] for p in two_fields)
    assert len(records[2]["problems"]) >= 1 and LONG not in json.dumps(letters)
    # the audit log: one rejection and one dead letter per record, each at its record and line, saying how many
    # problems the record had
    rejected = {a["position"]: a for a in plan.audits if a["kind"] == "record_rejected"}
    assert set(rejected) == {f"Bundle.entry[{i}], line {starts[i]}" for i in (2, 5, 8)}
    assert "(and 1 more problem(s) in this record" in rejected[f"Bundle.entry[2], line {starts[2]}"]["reason"]
    assert len([a for a in plan.audits if a["kind"] == "deadlettered"]) == 3


def test_a_cin_child_with_several_refused_events_is_one_dead_letter() -> None:
    text = BY_NAME["social_care.cin"].make(1, 2, 3).decode()
    second = text.index("<Child>", text.index("<Child>") + 1)
    child = (text[second:].replace("<S47ActualStartDate>2000-01-13", "<S47ActualStartDate>2000-02-30", 1)
             .replace("<CPPstartDate>2000-01-31", "<CPPstartDate>2030-01-31", 1))
    plan = _plan((text[:second] + child).encode(), "social_care", "application/xml")
    assert len(plan.result.rejections) == 2
    records = [decode(m.value) for m in plan.messages if m.topic == "sg.deadletter"][1:]
    assert [r["rejection"]["record"] for r in records] == ["Message/Children/Child[2]"]
    assert len(records[0]["problems"]) == 2


def test_dead_lettering_stays_bounded() -> None:
    """Records beyond MAX_REJECTION_RECORDS are one summary; problems beyond MAX_PROBLEMS_PER_RECORD are counted."""
    many = [Rejection("request", f"record {i}", "f", "bad") for i in range(MAX_REJECTION_RECORDS + 7)]
    listed, summary = bounded(per_record(many), "request")
    assert len(listed) == MAX_REJECTION_RECORDS
    assert summary is not None and summary.reason.startswith("7 further rejected record(s)")
    one_record = [Rejection("request", "record 1", f"field{i}", "bad", 3) for i in range(MAX_PROBLEMS_PER_RECORD + 5)]
    assert len(per_record(one_record)) == 1
    record = deadletter_record(one_record[0], agency="health", system=None, content_type=None, received_at=AT,
                               content_sha256="0" * 64, problems=one_record)
    assert len(record["problems"]) == MAX_PROBLEMS_PER_RECORD and record["problems_not_listed"] == 5
