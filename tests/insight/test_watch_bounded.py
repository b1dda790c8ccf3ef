"""The insight watch reads only what its measures count (issue 24): a differential test of the old whole read
(every record of the five insight kinds, in one list) against the bounded one (the kinds the watched measures read,
streamed from the store a page at a time), on real SQLite audit stores holding random synthetic histories.

Every child is a fictitious token (lt1_...), every district ZZ-, every URN 999-, every ODS code Y999-.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.audit.record import audit_record
from broker.audit.store import AuditStore, open_audit_store
from broker.insight.detect import DetectorConfig
from broker.insight.hotspots import RISE, hotspot_tables, rises
from broker.insight.measures import default_measures
from broker.insight.source import kinds_read_by, records_from_store, records_of_kinds
from broker.service.insight_watch import already_raised, rises_in_store

TODAY = dt.date(2026, 12, 1)  # a Tuesday of 2026-W49: W48 is tested against W40-W47
CONFIG = DetectorConfig(alpha=0.05, min_population=10, min_observed=3)
CONTACT_TYPES = ("police.incident_child_present", "health.safeguarding_flag", "education.attendance_concern")
DISTRICTS, URNS, PRACTICES = ("ZZ1", "ZZ2", "ZZ3", "ZZ4"), ("999001", "999002", "999003"), ("Y99901", "Y99902")


def _time(day: dt.date, rng: random.Random) -> str:
    return f"{day.isoformat()}T{rng.randrange(8, 18):02d}:{rng.randrange(60):02d}:00Z"


def _event(rng: random.Random, n: int, audited: dt.date, occurred: dt.date, event_type: str,
           district: str, **insight: Any) -> dict[str, Any]:
    agency = event_type.split(".")[0]
    return audit_record("event_published", time=_time(audited, rng), actor=f"intake:{agency}",
                        event_id=str(uuid.UUID(int=rng.getrandbits(128))), event_type=event_type,
                        subject=f"lt1_{n % 97:024d}", agency=agency,
                        insight={"occurred_on": occurred.isoformat(), "source_agency": agency, "district": district,
                                 "school_urn": rng.choice(URNS), "gp_ods": rng.choice(PRACTICES), **insight})


def history(seed: int) -> list[dict[str, Any]]:
    """Fourteen weeks of a fictitious partnership's log, in audit order: contacts and referrals (some backdated by
    up to twenty weeks, so counted in weeks long before they were published; some re-published after a restart),
    a rise in one district in the tested week, hub decisions concerning them, shares, deliveries, clocks, identity
    merges, rises already raised, and records of kinds no measure reads."""
    rng = random.Random(seed)
    hot = rng.choice(DISTRICTS)
    out: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    start = TODAY - dt.timedelta(weeks=14)
    for n in range(rng.randrange(500, 700)):
        audited = start + dt.timedelta(days=rng.randrange(14 * 7 + 1))
        tested_week = dt.date(2026, 11, 23) <= audited <= dt.date(2026, 11, 29)
        district = hot if tested_week and rng.random() < 0.5 else rng.choice(DISTRICTS)
        backdated = rng.random() < 0.15
        occurred = audited - dt.timedelta(days=rng.randrange(1, 140) if backdated else 0)
        event_type = "social_care.referral" if rng.random() < 0.3 else rng.choice(CONTACT_TYPES)
        event = _event(rng, n, audited, occurred, event_type, district)
        out.append(event)
        events.append(event)
        if rng.random() < 0.03:  # a restart between publishing and auditing: the same event audited again
            out.append({**event, "record_id": str(uuid.UUID(int=rng.getrandbits(128)))})
        if rng.random() < 0.4:  # the hub's decision on it, which takes the referrer's codes (it has no district)
            decision = audit_record(
                "event_published", time=_time(audited, rng), actor="hub", event_type="mash.decision",
                event_id=str(uuid.UUID(int=rng.getrandbits(128))), subject=event["subject"], agency="mash_hub",
                insight={"occurred_on": audited.isoformat(), "source_agency": "mash_hub",
                         "outcome": rng.choice(("early_help", "no_further_action", "section_17_assessment")),
                         "decision_kind": "initial", "concerns": [event["event_id"]]})
            out.append(decision)
        for subscriber in rng.sample(("police_ppu", "mash_hub", "gp_lead"), rng.randrange(1, 4)):
            decision_id = str(uuid.UUID(int=rng.getrandbits(128)))
            deliver = rng.random() < 0.7
            out.append(audit_record("decision", time=_time(audited, rng), actor="share", subject=event["subject"],
                                    event_id=event["event_id"], subscriber=subscriber, decision_id=decision_id,
                                    outcome="deliver" if deliver else "withhold",
                                    **({"rule_id": "some-rule", "lawful_basis": ["uk_gdpr_art6_1_e"]} if deliver
                                       else {"reason": "no rule matched"})))
            if deliver:
                out.append(audit_record("delivered", time=_time(audited, rng), actor="share",
                                        subject=event["subject"], event_id=event["event_id"], subscriber=subscriber,
                                        decision_id=decision_id))
        if rng.random() < 0.3:
            out.append(audit_record("hub_clock", time=_time(audited, rng), actor="hub_watch",
                                    subject=event["subject"], event_id=event["event_id"], event_type=event_type,
                                    action=rng.choice(("met", "breached")), target="decision", reason="clock"))
        if rng.random() < 0.05 and events:  # an identity merge: an earlier child found to be this one
            other = rng.choice(events)["subject"]
            if other != event["subject"]:
                out.append(audit_record("identity_linked", time=_time(audited, rng), actor="intake:social_care",
                                        subject=event["subject"], superseded=other, event_id=event["event_id"],
                                        reason="identity merge"))
        if rng.random() < 0.1:
            out.append(audit_record("key_unwrap", time=_time(audited, rng), actor="share",
                                    subject=event["subject"], reason="share"))
    for week in (47, 48):  # rises the watch raised before (their ids are what it must not raise again)
        out.append(audit_record("event_published", time="2026-12-01T06:00:00Z", actor="insight-watch",
                                event_type=RISE, event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"rise/{seed}/{week}")),
                                subject="lt1_" + "f" * 24, reason="raised"))
    return out


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[AuditStore]]:
    made = []
    for seed in (1, 2, 3):
        store = open_audit_store(tmp_path_factory.mktemp(f"audit{seed}"), create_key=True)
        store.append(history(seed))
        made.append(store)
    yield made
    for store in made:
        store.close()


def _watched(ids: str) -> list[Any]:
    catalogue = default_measures()
    return [catalogue.by_id(m) for m in ids.split(",")]


@pytest.mark.parametrize("ids", ["contacts,referrals", "contacts,referrals,decision_within_one_working_day"])
def test_the_bounded_read_finds_exactly_the_rises_of_the_whole_read(stores: list[AuditStore], ids: str) -> None:
    watched = _watched(ids)
    found_any = False
    for store in stores:
        whole = records_from_store(store)  # the old watch: every record of the five kinds, in one list
        bounded = list(records_of_kinds(store, kinds_read_by(watched)))
        assert hotspot_tables(bounded, watched) == hotspot_tables(whole, watched)  # every cell, every unit
        expected = rises(whole, watched, CONFIG, today=TODAY.isoformat())
        found, raised = rises_in_store(store, watched, CONFIG, today=TODAY.isoformat(), across="week")
        assert found == expected
        assert raised == already_raised(whole) and len(raised) == 2
        found_any = found_any or bool(found)
        assert len(bounded) < len(whole) / 2  # a share's decisions and deliveries are never read
    assert found_any  # the histories hold rises, so an equality of empty lists proves nothing


def test_every_derived_rule_and_select_kind_is_read() -> None:
    """Each available measure computed from only the kinds kinds_read_by names equals the whole read: checked on
    the hand-built log whose every measure has a known answer (tests/insight/known_log.py)."""
    from broker.insight.compute import compute
    from tests.insight.known_log import SUBSCRIBER_PARTNER, known_log

    log = known_log()
    for measure in default_measures():
        if not measure.available:
            continue
        kinds = kinds_read_by([measure])
        assert "event_published" in kinds
        read = [r for r in log if r["kind"] in kinds]
        for by in ("agency", "area"):
            if by in measure.breakdowns:
                assert (compute(read, measure, by=by, subscriber_partner=SUBSCRIBER_PARTNER)
                        == compute(log, measure, by=by, subscriber_partner=SUBSCRIBER_PARTNER)), measure.id


def test_bodies_of_kind_reads_one_kind_in_order_across_pages_and_passes_over_tombstones(tmp_path: Path) -> None:
    store = open_audit_store(tmp_path, create_key=True)
    try:
        log = history(4)[:400]
        store.append(log)
        published = [r for r in log if r["kind"] == "event_published"]
        assert list(store.bodies_of_kind("event_published", page=7)) == published
        store.prune({"key_unwrap": 1}, now="2027-06-01T00:00:00Z")  # every key unwrap now a tombstone
        assert list(store.bodies_of_kind("key_unwrap", page=3)) == []
        assert list(store.bodies_of_kind("event_published", page=3)) == published
    finally:
        store.close()
