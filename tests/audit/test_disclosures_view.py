"""The disclosures IG reads: chosen in the store's query (a withholding never takes a place in a page), paged, counted
over the whole range, and each carrying its consent override where IG looks (the disclosures table, the timeline,
the subject access report). Synthetic records only."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from broker.audit import audit_record
from broker.audit.sar import subject_access_report
from broker.audit.store import AuditStore
from tests.audit.conftest import CHILD_A, CHILD_B, _eid
from tests.audit.igapp import build_ig_app

WITHHOLDS = 1200  # more than the page the old query read (1,000), all older than any delivery
DELIVERIES = 30
OVERRIDE = {"restriction": "objection", "recorded_on": "2026-02-01", "gateway": "children_act_1989_s47"}


def _time(n: int) -> str:
    return f"2026-03-{1 + n // 1440:02d}T{n // 60 % 24:02d}:{n % 60:02d}:00Z"


def withholds_then_deliveries(subscriber: str = "early_help") -> list[dict]:
    """A subscriber that was refused 1,200 events before it received any, then received 30 (the 7th under a
    consent override), each delivery delivered and the first read."""
    out: list[dict] = []
    for i in range(WITHHOLDS):
        out.append(audit_record("decision", time=_time(i), actor="share", subject=CHILD_B, event_id=_eid(i),
                                event_type="education.attendance_concern", subscriber=subscriber,
                                decision_id=f"dec-w{i:05d}", outcome="withhold", reason="no rule applies",
                                protocol_id="sample-partnership", protocol_version="1"))
    for j in range(DELIVERIES):
        n = WITHHOLDS + 2 * j
        extra = {"consent_override": OVERRIDE} if j == 6 else {}
        out.append(audit_record("decision", time=_time(n), actor="share", subject=CHILD_A, event_id=_eid(5000 + j),
                                event_type="education.attendance_concern", subscriber=subscriber,
                                decision_id=f"dec-d{j:05d}", outcome="deliver", rule_id="education-to-early-help",
                                purpose="early_help", lawful_basis=["uk_gdpr_art6_1_e"],
                                protocol_id="sample-partnership", protocol_version="1",
                                fields_released=["payload.attendance_rate"], **extra))
        out.append(audit_record("delivered", time=_time(n + 1), actor="share", subject=CHILD_A,
                                subscriber=subscriber, event_id=_eid(5000 + j), decision_id=f"dec-d{j:05d}"))
    out.append(audit_record("delivery_read", time=_time(WITHHOLDS + 100), actor=f"subscriber:{subscriber}",
                            subscriber=subscriber, event_id=_eid(5000), decision_id="dec-d00000"))
    return out


@pytest.fixture
def busy(store: AuditStore) -> AuditStore:
    store.append(withholds_then_deliveries())
    return store


def test_deliveries_after_a_thousand_withholds_are_all_found_and_counted(busy: AuditStore) -> None:
    found = busy.disclosures(subscriber="early_help")
    assert [d.decision_id for d in found] == [f"dec-d{j:05d}" for j in range(DELIVERIES)]
    assert all(d.delivered_at for d in found) and found[0].read_at is not None and found[1].read_at is None
    assert busy.count_disclosures(subscriber="early_help") == DELIVERIES
    assert busy.count_disclosures(subscriber="early_help", subject=CHILD_B) == 0  # withheld is no disclosure


def test_disclosures_page_by_seq_without_gaps_or_repeats(busy: AuditStore) -> None:
    seen: list[str] = []
    after = 0
    while page := busy.disclosures(subscriber="early_help", limit=7, after_seq=after):
        assert len(page) <= 7
        seen += [d.decision_id for d in page]
        after = page[-1].seq
    assert seen == [f"dec-d{j:05d}" for j in range(DELIVERIES)]


def test_a_subject_access_report_reads_every_disclosure_past_a_page(busy: AuditStore) -> None:
    """The report and the timeline list all of a child's disclosures, not the first page of them."""
    assert len(busy.disclosures(subject=CHILD_A, limit=7)) == 7
    every = busy.every_disclosure(subject=CHILD_A, page=7)
    assert [d.decision_id for d in every] == [f"dec-d{j:05d}" for j in range(DELIVERIES)]


def test_a_disclosure_carries_its_consent_override(busy: AuditStore) -> None:
    overridden = [d for d in busy.disclosures(subject=CHILD_A) if d.consent_override]
    assert [d.decision_id for d in overridden] == ["dec-d00006"] and overridden[0].consent_override == OVERRIDE
    assert overridden[0].to_dict()["consent_override"]["gateway"] == "children_act_1989_s47"


def test_the_api_counts_the_range_and_pages_on(sqlite_store: AuditStore, tmp_path) -> None:
    sqlite_store.append(withholds_then_deliveries())
    ig = build_ig_app(sqlite_store, tmp_path)
    with TestClient(ig.app) as client:
        auth = {"Authorization": f"Bearer {ig.ig_key}"}
        first = client.get("/v1/ig/subscribers/early_help/disclosures?limit=20", headers=auth).json()
        assert first["total"] == DELIVERIES and len(first["disclosures"]) == 20
        rest = client.get(f"/v1/ig/subscribers/early_help/disclosures?limit=20&after_seq={first['next_after_seq']}",
                          headers=auth).json()
        assert len(rest["disclosures"]) == DELIVERIES - 20 and rest["next_after_seq"] is None
        assert sum(1 for d in [*first["disclosures"], *rest["disclosures"]] if d["consent_override"]) == 1


class _Headings(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.head: list[str] = []
        self.in_th = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.in_th = tag == "th"

    def handle_endtag(self, tag: str) -> None:
        self.in_th = False

    def handle_data(self, data: str) -> None:
        if self.in_th:
            self.head.append(data)


def test_the_subject_access_report_shows_the_override_on_its_row(busy: AuditStore) -> None:
    found = busy.disclosures(subject=CHILD_A)
    page = subject_access_report(CHILD_A, found, busy.timeline(CHILD_A), "2026-03-06T12:00:00.000Z")
    disclosures = page.split('<table class="disclosures">')[1]
    parser = _Headings()
    parser.feed(disclosures)
    column = parser.head.index("Consent")
    rows = disclosures.split("<tr>")[2:]  # after the header row
    assert len(rows) == DELIVERIES
    marked = [i for i, r in enumerate(rows) if "Overridden" in r.split("<td>")[column + 1]]
    # the gateway in words (UK GDPR / DPA 2018 / Acts), not its code
    assert marked == [6] and "Children Act 1989 s47" in rows[6] and "objection" in rows[6]
