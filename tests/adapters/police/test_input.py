"""The input as a whole: unusable inputs raise AdapterInputError; the input schema is a valid 2020-12 schema."""

from __future__ import annotations

import re

import jsonschema
import jsonschema_rs
import orjson
import pytest

from adapters.kit.interface import AdaptContext, AdapterInputError
from adapters.police import reading
from adapters.police.checks import input_schema
from adapters.police.pole import ADAPTER
from tests.adapters.police.builders import as_json, as_jsonl, record, submission
from tests.conftest import ROOT, assert_canonical

CTX = AdaptContext(source="pole.json", received_at="2024-03-02T08:00:00Z")


def refused(data: bytes) -> tuple[str, str, str]:
    with pytest.raises(AdapterInputError) as info:
        ADAPTER.adapt(data, CTX)
    r = info.value.rejection
    assert r.source == "pole.json"
    return r.record, r.field, r.reason


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(("data", "expected"), [
    (b"", ("", "", "empty input")),
    (b" \n\t", ("", "", "empty input")),
    (b"not json at all", ("", "", "not valid JSON (at byte 0)")),
    (b'{"force_code": "99", "records": [', ("", "", "not valid JSON (at byte 33)")),
    (b"[1, 2]", ("", "", "top-level JSON value must be an object (a submission or a single record)")),
    (b'"a string"', ("", "", "top-level JSON value must be an object (a submission or a single record)")),
    (b'{"hello": 1}', ("", "", "JSON object is neither a submission (no 'records') nor a record (no 'reference')")),
    (b'{"force_code": "99", "records": {}}', ("", "records", "wrong type, expected array")),
    (b'{"records": []}', ("", "", "required property 'force_code' is missing")),
    (b'{"force_code": "9", "records": []}', ("", "force_code", "value does not match the required pattern")),
    (b'{"force_code": "99", "records": [], "extra": 1}',
     ("", "", "1 unknown field(s) here (not in the POLE input schema)")),
    (b"\xff\xfe{", ("", "", "not valid JSON (at byte 0)")),
])
def test_unusable_inputs(data: bytes, expected: tuple[str, str, str]) -> None:
    assert refused(data) == expected


def test_pretty_printed_json_with_a_syntax_error_is_one_error_not_many() -> None:
    text = orjson.dumps(submission(record()), option=orjson.OPT_INDENT_2).decode()
    broken = text.replace('"reference"', "reference", 1).encode()
    record_, field, reason = refused(broken)
    assert (record_, field) == ("", "")
    assert re.fullmatch(r"not valid JSON \(at byte [0-9]+\)", reason)


def test_deep_nesting_is_refused_clearly() -> None:
    too_deep = f"JSON nested deeper than {reading.MAX_DEPTH} levels"
    assert refused(b'{"force_code": "99", "records": ' + nested(30) + b"}") == ("", "", too_deep)
    assert refused(nested(5000)) == ("", "", too_deep)  # beyond the parser's own limit
    deep_line = b'{"reference": "X", "summary": ' + nested(40) + b"}\n"
    assert refused(as_jsonl(record()) + deep_line) == ("line 2", "", too_deep)


def test_a_valid_submission_is_well_inside_the_depth_limit() -> None:
    out = ADAPTER.adapt(as_json(submission(record())), CTX)
    assert out.rejections == [] and len(out.events) == 1


def test_size_and_count_limits() -> None:
    assert refused(b" " * (reading.MAX_BYTES + 1)) == ("", "", f"input larger than {reading.MAX_BYTES} bytes")
    too_many = b"{}\n" * (reading.MAX_RECORDS + 1)
    assert refused(too_many) == ("", "", f"more than {reading.MAX_RECORDS} records")
    doc = {"force_code": "99", "records": [{}] * (reading.MAX_RECORDS + 1)}
    assert refused(as_json(doc)) == ("", "records", f"violates maxItems {reading.MAX_RECORDS}")


def test_byte_order_mark_is_accepted() -> None:
    out = ADAPTER.adapt(b"\xef\xbb\xbf" + as_json(submission(record())), CTX)
    assert len(out.events) == 1


def test_input_schema_is_valid_2020_12() -> None:
    schema = input_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)  # against the 2020-12 meta-schema
    jsonschema_rs.Draft202012Validator(schema)


def test_fixtures_are_valid_against_the_input_schema() -> None:
    validator = jsonschema.Draft202012Validator(input_schema(), format_checker=jsonschema.FormatChecker())
    for event_type in ("incident_child_present", "domestic_abuse", "public_protection_notice"):
        validator.validate(submission(record(event_type)))


def readme_example() -> bytes:
    text = (ROOT / "adapters" / "police" / "README.md").read_text(encoding="utf-8")
    return re.search(r"```json\n(.*?)```", text, re.DOTALL).group(1).encode()


def test_the_readme_example_is_a_valid_submission() -> None:
    data = readme_example()
    jsonschema.Draft202012Validator(input_schema(), format_checker=jsonschema.FormatChecker()).validate(
        orjson.loads(data))
    out = ADAPTER.adapt(data, CTX)
    assert out.rejections == []
    assert [e["event_type"] for e in out.events] == ["police.domestic_abuse_notification",
                                                     "police.public_protection_notice"]
    assert_canonical(out.events)
