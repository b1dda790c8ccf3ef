"""The Done-when's setting through the real service, Apache Kafka and the sample protocol: the bench's fictitious mix,
dated contacts and the hub's decisions loaded (`broker.bench.demo.load_demo`, what `mash-broker insight demo-load`
runs); then, as an attacker or auditor would check:

- no personal value of any record or decision in the mix (a name, date of birth, NHS number, UPN, full postcode,
  address, phone, narrative) appears anywhere in the audit log, in any record of any kind;
- the insight facts carry the codes (districts, schools, GP practices, hub outcomes) the breakdowns need;
- the measures computed from the live store equal those computed from its export.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters.kit.interface import AdaptContext
from broker.audit.export import write_jsonl
from broker.bench import demo
from broker.bench.records import BY_NAME, mix, usable_formats
from broker.insight.compute import compute_all
from broker.insight.measures import default_measures
from broker.insight.source import records_from_export, records_from_store
from broker.pipeline.identify import LinkageKey
from broker.pipeline.intake import prepare
from broker.schema.classification import classify, iter_leaves
from tests.integration.service import Service, running_service

pytestmark = pytest.mark.integration
SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "protocols" / "sample-partnership.yaml"
CALENDAR = Path(__file__).resolve().parents[2] / "deploy" / "calendars" / "exampleshire.yaml"
RECORDS, WEEKS = 28, 3
PERSONAL = frozenset({"identity", "contact", "location", "narrative", "criminal"})
RATIONALE = "Fictitious demo rationale: an adult in the household is known to the force."
WORKER = "Testworker Example"


def personal_values() -> set[str]:
    """Every personal value of the events the demo posts (classified identity, contact, location, narrative or
    criminal by the canonical schema), as each adapter makes them: what must never reach the audit log."""
    key = LinkageKey(1, b"demo-personal-values-fictitious-1")
    formats, _, _ = usable_formats()
    bodies = [(f, f.make(*numbers)) for f, numbers in mix(formats, RECORDS)]
    police = BY_NAME["police.pole"]
    bodies += [(police, body) for body in demo.dated_contacts(demo.dt.date(2026, 11, 30), WEEKS, "ZZ4")]
    found: set[str] = {RATIONALE, WORKER}
    for fmt, body in bodies:
        ctx = AdaptContext(source="test", received_at="2026-12-01T00:00:00Z", system=fmt.system)
        for event in prepare(fmt.agency, body, ctx, key, content_type=fmt.content_type).events:
            for path, value in iter_leaves(event):
                if isinstance(value, str) and len(value) >= 6 and classify(event, path) in PERSONAL:
                    found.add(value)
                    if classify(event, path) == "location" and " " in value:
                        found.add(value.replace(" ", ""))  # a postcode without its space is the same postcode
    return found


async def _wait(condition: Any, what: str) -> Any:
    for _ in range(600):
        result = await asyncio.to_thread(condition)
        if result:
            return result
        await asyncio.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


def _records(svc: Service) -> list[dict[str, Any]]:
    return [e["record"] for e in svc.runtime.audit_store.entries() if "record" in e]


async def test_demo_load_leaks_nothing_and_the_measures_reproduce_from_an_export(kafka_bootstrap: str,
                                                                                 tmp_path: Path,
                                                                                 monkeypatch: Any) -> None:
    # the demo's decisions carry a rationale and a lead professional's name: personal values the log must not get
    original = demo.decisions_for

    def with_narrative(*args: Any) -> list[dict[str, Any]]:
        return [{**d, "rationale": RATIONALE, "lead": {**d["lead"], "professional_name": WORKER}}
                for d in original(*args)]

    monkeypatch.setattr(demo, "decisions_for", with_narrative)
    async with running_service(tmp_path, kafka_bootstrap, protocol=str(SAMPLE), calendar_file=CALENDAR,
                               hub_clock_interval_seconds=0.5) as svc:
        summary = await demo.load_demo(svc.base_url, svc.settings.data_dir, records=RECORDS, weeks=WEEKS,
                                       rise="ZZ4", protocol_file=SAMPLE)
        assert summary["hub_decisions"] > 0 and summary["hub_decisions_refused"] == 0, summary

        def decisions_shared() -> list[dict[str, Any]] | None:
            records = _records(svc)
            published = {r["event_id"] for r in records
                         if r["kind"] == "event_published" and r["event_type"] == "mash.decision"}
            decided = {r["event_id"] for r in records if r["kind"] == "decision"}
            if len(published) == summary["hub_decisions"] and published <= decided:
                return records
            return None

        records = await _wait(decisions_shared, "every hub decision recorded and shared under the protocol")

        # 1. nothing personal anywhere in the audit log
        text = "\n".join(orjson.dumps(r).decode() for r in records)
        leaked = sorted(v for v in personal_values() if v in text)
        assert not leaked, f"{len(leaked)} personal values reached the audit log"
        assert "Fictional Road" not in text and "Testtown" not in text and "Testchild" not in text

        # 2. the facts carry the codes the breakdowns need, and only codes
        facts = [r["insight"] for r in records if r["kind"] == "event_published" and "insight" in r]
        assert {f["district"] for f in facts if "district" in f} >= {"ZZ4", "ZZ1"}
        assert any(f.get("school_urn", "").startswith("999") for f in facts)
        assert any(f.get("gp_ods", "").startswith("Y999") for f in facts)
        assert {f["outcome"] for f in facts if "outcome" in f} >= {"early_help", "no_further_action"}
        assert all(len(f["district"]) <= 4 for f in facts if "district" in f)

        # 3. the numbers from the store equal the numbers from its export
        export = tmp_path / "audit.jsonl"
        store = svc.runtime.audit_store
        head = store.head()
        with export.open("w", encoding="utf-8") as f:
            write_jsonl(f, store.entries(through_seq=head[0]), store.checkpoints(), store.public_key,
                        "2026-12-01T00:00:00.000Z", head=head)
        from_file = records_from_export(export)
        live = records_from_store(store)[:len(from_file)]  # the service may append after the export's head
        partners = {n: s.partner for n, s in svc.runtime.protocol.subscribers.items()}
        for by, across in (("agency", "month"), ("area", "week"), ("outcome", "all")):
            a = compute_all(live, default_measures(), by=by, across=across, subscriber_partner=partners)
            b = compute_all(from_file, default_measures(), by=by, across=across, subscriber_partner=partners)
            assert a == b and a
        outcomes = next(t for t in compute_all(from_file, default_measures(), by="outcome", across="all")
                        if t.measure == "decision_outcomes")
        initial = sum(1 for f in facts if f.get("decision_kind") == "initial")
        assert sum(outcomes.counts.values()) == initial > 0

        # 4. the measures have something to count in the Done-when's setting (numerator, denominator totals)
        totals = {t.measure: (sum(t.counts.values()), sum((t.denominators or {}).values()))
                  for t in compute_all(from_file, default_measures(), by="agency", across="all",
                                       subscriber_partner=partners)}
        for measure in ("contacts", "referrals", "decision_outcomes", "feedback_to_referrers", "deliveries_withheld",
                        "duplicates_merged", "decision_within_one_working_day"):
            assert totals[measure][0] > 0, totals

        # 5. the hub watch's own events carry their facts too (enquiries opened and joined)
        enquiries = [f for f in facts if "enquiry_action" in f]
        assert enquiries and all(f.get("concerns") for f in enquiries if f["enquiry_action"] != "folded")
