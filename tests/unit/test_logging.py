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


def test_sensitive_operational_keys_are_redacted_and_log_structure_stays_readable() -> None:
    """A log line must not say a child's consent stance, objection or the clinic that sent its record (1.2.0:
    sensitive_operational, derived from the schema like every personal key), yet every line keeps its level."""
    stream = io.StringIO()
    configure("DEBUG", "json", stream=stream)
    log = get_logger("test")
    log.warning("consent_seen", objection=True, recorded_on="2026-04-20", system="TEST-SEXUAL-HEALTH-CLINIC",
                article_9="9(2)(h)", categories=["self_harm"], role="offender", subscriber="mash_hub")
    line = json.loads(stream.getvalue())
    # categories and role are generic log words, but the schema marks them special category / criminal data
    assert {line[k] for k in ("objection", "recorded_on", "system", "article_9", "categories", "role")} == {
        "[redacted]"}
    assert line["level"] == "warning" and line["event"] == "consent_seen" and line["subscriber"] == "mash_hub"
    assert "TEST-SEXUAL-HEALTH-CLINIC" not in stream.getvalue()
