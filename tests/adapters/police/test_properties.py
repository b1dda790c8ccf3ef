"""Property tests: whatever the bytes, `adapt` returns AdapterOutput or raises AdapterInputError, nothing else;
every event it does emit is canonical; no rejection or warning repeats a value from the input."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.kit.interface import AdaptContext, AdapterInputError, AdapterOutput
from adapters.police.pole import ADAPTER
from tests.adapters.fuzzing import mutated
from tests.adapters.police.builders import as_json, as_jsonl, child, mother, record, submission, suspect
from tests.conftest import assert_canonical

SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MARKER = "Zqxv9Marker"  # a value that must never reach a message

SEED_RECORDS = [
    record(),
    record("domestic_abuse", "DA-1", vulnerability={"concerns": ["child_concern", "fgm"], "grading": "high"},
           objects=[{"kind": "vehicle", "vehicle_registration": "AB12 CDE"}]),
    record("public_protection_notice", "PPN-1", persons=[mother(), child(person_id="C1", roles=["witness"]),
                                                         suspect()], subject_person_id="C1"),
]
BYTE_SEEDS = [as_json(submission(*SEED_RECORDS)), as_jsonl(*SEED_RECORDS)]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.floats(allow_nan=False,
                    allow_infinity=False), st.text(max_size=30), st.just(MARKER),
                    st.sampled_from(["2024-02-30", "2024-03-01", "subject_child", "victim", "high", "LS1 4HR",
                                     "99/0000001Z", "9990000019", "P1", "public_protection_notice", ""]))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["a", "code", "roles", "start", "kind"]), inner,
                                                 max_size=4)), max_leaves=12)


def _holds(data: bytes) -> AdapterOutput | None:
    try:
        out = ADAPTER.adapt(data, AdaptContext(source="fuzz"))
    except AdapterInputError as exc:
        assert MARKER not in str(exc)
        return None
    assert isinstance(out, AdapterOutput)
    assert_canonical(out.events)
    for rejection in out.rejections:
        assert MARKER not in str(rejection)
    for event in out.events:
        assert all(MARKER not in w["message"] and MARKER not in w["field"] for w in event["data_quality"])
    return out


def _paths(value: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*path, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*path, i)))
    return out


@st.composite
def mutated_records(draw) -> dict[str, Any]:
    """A valid record with a few of its fields replaced by arbitrary JSON, deleted, or joined by a new one."""
    rec = copy.deepcopy(draw(st.sampled_from(SEED_RECORDS)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(rec)[1:]))
        parent = rec
        for step in path[:-1]:
            parent = parent[step]
        op = draw(st.sampled_from(["replace", "delete", "add"]))
        if op == "replace":
            parent[path[-1]] = draw(json_values)
        elif op == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "end", "grading", "pnc_id", "address"]))] = draw(json_values)
        else:
            parent.append(draw(json_values))
        if not _paths(rec)[1:]:
            break
    return rec


INSERTS = [b"{", b"}", b"[", b"]", b'"', b",", b":", b"\n", b"null", b"\x00",
                                                  b"\xff", b"[[[[[[[[[[[[[[[[[[", b"99999999999999999999999"]


@SETTINGS
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data: bytes) -> None:
    _holds(data)


@SETTINGS
@given(st.binary(max_size=300).map(lambda b: b'{"force_code": "99", "records": [' + b))
def test_arbitrary_bytes_inside_a_submission(data: bytes) -> None:
    _holds(data)


@SETTINGS
@given(mutated(BYTE_SEEDS, INSERTS))
def test_mutated_bytes(data: bytes) -> None:
    _holds(data)


@SETTINGS
@given(st.lists(mutated_records(), min_size=1, max_size=3), st.booleans())
def test_mutated_records(records: list[dict[str, Any]], as_lines: bool) -> None:
    data = as_jsonl(*records) if as_lines else as_json(submission(*records))
    out = _holds(data)
    if out is not None:
        # every record is accounted for: it produced events or exactly one rejection
        rejected = {r.record for r in out.rejections}
        assert len(rejected) == len(out.rejections)
        assert len(rejected) <= len(records)


@SETTINGS
@given(json_values)
def test_arbitrary_json_values(value: Any) -> None:
    _holds(orjson.dumps(value))
    _holds(orjson.dumps({"force_code": "99", "records": [value]}))


# Schema-valid records with arbitrary values: the mapping must turn each into canonical events or a precise rejection.
ROLES = ["subject_child", "child_present", "victim", "witness", "suspect", "offender", "reported_missing", "parent",
         "guardian", "parent_or_guardian", "carer", "sibling", "household_member", "reporting_person", "other"]
CONCERNS = ["child_concern", "child_sexual_exploitation", "child_criminal_exploitation", "county_lines",
            "missing_person", "domestic_abuse", "honour_based_abuse", "fgm", "trafficking", "radicalisation",
            "online_harm", "mental_health", "self_harm", "substance_misuse", "other"]
short_text = st.text(min_size=1, max_size=12)


def ascii_id(size: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=size)



dates = st.dates().map(lambda d: d.isoformat())
moments = st.one_of(dates, st.datetimes(timezones=st.timezones()).map(
    lambda d: d.isoformat(timespec="seconds")).filter(lambda s: s[:4].isdigit() and len(s) == 25))
locations = st.fixed_dictionaries({}, optional={
    "address_lines": st.lists(short_text, max_size=6), "town": short_text, "district": short_text,
    "postcode": st.one_of(st.from_regex(r"\A[A-Za-z]{1,2}[0-9][A-Za-z0-9]? ?[0-9][A-Za-z]{2}\Z"), ascii_id(10))
}).filter(bool)


@st.composite
def valid_persons(draw) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 5))
    persons = []
    for i in range(count):
        p = draw(st.fixed_dictionaries(
            {"roles": st.lists(st.sampled_from(ROLES), min_size=1, max_size=4, unique=True)},
            optional={"forenames": st.lists(short_text, max_size=3), "surname": short_text, "date_of_birth": dates,
                      "gender": st.sampled_from(["male", "female", "other", "unknown"]),
                      "nominal_id": short_text, "pnc_id": ascii_id(20), "cro_number": ascii_id(20),
                      "nhs_number": st.one_of(st.from_regex(r"\A[0-9]{10}\Z"), ascii_id(20)), "upn": ascii_id(20),
                      "parental_responsibility": st.booleans(),
                      "relationship_to_child": st.sampled_from(["mother", "father", "sibling", "none", "other"]),
                      "address": locations}))
        p["person_id"] = draw(st.sampled_from([f"P{i}", "P0"]))  # sometimes a duplicate
        persons.append(p)
    return persons


@st.composite
def valid_records(draw) -> dict[str, Any]:
    event_type = draw(st.sampled_from(["incident_child_present", "domestic_abuse", "public_protection_notice"]))
    rec: dict[str, Any] = {
        "reference": draw(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9/_.:-]{0,20}\Z")),
        "version": draw(st.one_of(st.integers(0, 10**6), st.from_regex(r"\A[A-Za-z0-9._:-]{1,10}\Z"))),
        "event_type": event_type, "force_code": "99",
        "occurred": draw(st.fixed_dictionaries({"start": moments}, optional={"end": moments})),
        "persons": draw(valid_persons()),
    }
    optional = {"location": locations, "dash_risk": st.sampled_from(["standard", "medium", "high"]),
                "children_present": st.integers(0, 50), "summary": st.text(max_size=50),
                "subject_person_id": st.sampled_from(["P0", "P1", "P9"]),
                "vulnerability": st.fixed_dictionaries(
                    {"concerns": st.lists(st.sampled_from(CONCERNS), min_size=1, max_size=5, unique=True)},
                    optional={"grading": st.sampled_from(["standard", "medium", "high"])})}
    if event_type != "public_protection_notice":
        optional |= {
            "incident_codes": st.lists(st.fixed_dictionaries(
                {"scheme": st.sampled_from(["nsir_category", "nsir_qualifier", "local"]), "code": short_text},
                optional={"description": short_text}), max_size=4),
            "offences": st.lists(st.fixed_dictionaries(
                {"home_office_code": st.from_regex(r"\A[0-9]{1,3}[A-Z]?/[0-9]{1,3}[A-Z]?\Z")},
                optional={"cjs_code": st.from_regex(r"\A[A-Z0-9]{4,10}\Z"), "description": short_text}), max_size=3),
            "objects": st.lists(st.fixed_dictionaries(
                {"kind": st.sampled_from(["vehicle", "weapon", "drugs", "other"])},
                optional={"weapon_type": st.sampled_from(["knife", "firearm"]),
                          "vehicle_registration": st.from_regex(r"\A[A-Za-z0-9 ]{1,15}\Z")}), max_size=3)}
    else:
        rec["vulnerability"] = draw(optional.pop("vulnerability"))
    for key, strategy in optional.items():
        if draw(st.booleans()):
            rec[key] = draw(strategy)
    return rec


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_records())
def test_schema_valid_records_map_or_are_refused_precisely(rec: dict[str, Any]) -> None:
    from adapters.police.checks import record_problem

    assert record_problem(rec) is None, record_problem(rec)  # the strategy stays inside the schema
    out = _holds(as_jsonl(rec))
    assert out is not None
    if out.events:
        assert out.rejections == []
        assert {e["source"]["record_id"] for e in out.events} == {rec["reference"]}
    else:
        [rejection] = out.rejections
        assert rejection.field in {"persons", "subject_person_id", "occurred.start", "occurred.end"} or (
            rejection.field.startswith("persons[")), rejection
