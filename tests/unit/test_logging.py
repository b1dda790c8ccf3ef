"""No classified value reaches a log line."""

from __future__ import annotations

import io
import json

from adapters.health.fhir import ADAPTER
from adapters.kit import AdaptContext
from broker.logging import configure, get_logger
from tests.conftest import assert_canonical


def test_logging_an_event_leaks_no_personal_data(external_cases) -> None:
    data = (external_cases / "health" / "UKCore-Patient-RichardSmith-Example.xml").read_bytes()
    event = assert_canonical(ADAPTER.adapt(data, AdaptContext(source="p.xml")).events)[0]
    stream = io.StringIO()
    configure("DEBUG", "json", stream=stream)
    log = get_logger("test")
    log.info("event_seen", record=event)
    log.info("child_fields", child=event["subject"]["child"], family_name="SMITH", nhs_number="9912003888")
    log.warning("free_text", note="called about 991 200 3888 at LS17 7DF")
    log.info("nested", payload={"related": event["subject"]["related_people"]})
    out = stream.getvalue()
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 4 and lines[0]["record"]["event_id"] == event["event_id"]
    for secret in ("Richard", "SMITH", "9912003888", "991 200 3888", "Sandmoor", "LS17 7DF", "LS17", "1970-09-11",
                   "01131231234", "Jackson", "Alwoodley"):
        assert secret not in out, secret
    assert lines[0]["record"]["subject"].startswith("lt1_")
