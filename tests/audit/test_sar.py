"""The subject access report as a DPO sends it: the child named (only when revealed for it), recipients by the
protocol's partner names, fields in words by class with operational ones left out, lawful bases in words, consent
and overrides, reads, local times with the zone, A4 print rules. Fictitious child and tokens."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from broker.audit import audit_record
from broker.audit.disclosures import disclosures
from broker.audit.sar import Recipient, local_time, plain_fields, recipient_words, subject_access_report
from broker.policy import load_protocol
from broker.policy.codes import LAWFUL_BASIS
from broker.policy.consent import ConsentRecord

CHILD = "lt1_TestchildExampleSarAaaaaaaaaa"
SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "protocols" / "sample-partnership.yaml"
NOW = "2026-07-06T12:00:00.000Z"
RELEASED = ["event_id", "subject.linkage.token", "occurred_at", "subject.child.given_names[]",
            "subject.child.family_name", "subject.child.gp_practice.name", "subject.child.addresses[].postcode"]
EVENT = "5afe0000-0000-4000-8000-000000000001"
BASIS = ["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "children_act_2004_s11"]


def _entries() -> list[dict]:
    t = "2026-0{}-0{}T{:02d}:00:00Z"
    recs = [
        audit_record("event_published", time=t.format(3, 2, 9), actor="intake:health", agency="health",
                     event_id=EVENT, event_type="health.urgent_care_attendance", subject=CHILD),
        audit_record("decision", time=t.format(3, 2, 10), actor="share", subject=CHILD, event_id=EVENT,
                     event_type="health.urgent_care_attendance", subscriber="mash_hub", decision_id="dec-1",
                     outcome="deliver", rule_id="health-to-hub", purpose="safeguarding", lawful_basis=BASIS,
                     protocol_id="p", protocol_version="1", fields_released=RELEASED,
                     fields_masked={"subject.child.date_of_birth": "year_only"},
                     fields_withheld=["subject.child.phones[]", "event_type"]),
        audit_record("delivered", time=t.format(3, 2, 10), actor="share", subject=CHILD, subscriber="mash_hub",
                     event_id=EVENT, decision_id="dec-1"),
        audit_record("delivery_read", time=t.format(3, 2, 11), actor="subscriber:mash_hub", subscriber="mash_hub",
                     event_id=EVENT, decision_id="dec-1"),
        # summer: British Summer Time; a Kafka recipient that has not read; consent overridden
        audit_record("decision", time=t.format(7, 1, 10), actor="share", subject=CHILD, event_id=EVENT,
                     event_type="health.urgent_care_attendance", subscriber="police_mash", decision_id="dec-2",
                     outcome="deliver", rule_id="health-to-police", purpose="safeguarding",
                     lawful_basis=["uk_gdpr_art6_1_e", "children_act_1989_s47"], protocol_id="p",
                     protocol_version="1", fields_released=["subject.child.family_name"],
                     consent_override={"restriction": "objection", "recorded_on": "2026-06-01",
                                       "gateway": "children_act_1989_s47"}),
        audit_record("delivered", time=t.format(7, 1, 10), actor="share", subject=CHILD, subscriber="police_mash",
                     event_id=EVENT, decision_id="dec-2"),
    ]
    return [{"seq": i + 1, "record": r} for i, r in enumerate(recs)]


class _Rows(HTMLParser):
    """The disclosures table's cells, as text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append("")
            self.cell = self.tables[-1][-1]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell[-1] += data


def _report(**kw: object) -> tuple[str, list[list[str]]]:
    entries = _entries()
    recipients = {"mash_hub": Recipient("Riverside Children's Services (MASH hub)", "http-pull"),
                  "police_mash": Recipient("Example Constabulary (MASH police)", "kafka")}
    page = subject_access_report(CHILD, disclosures(entries), entries, NOW, recipients=recipients, **kw)
    parser = _Rows()
    parser.feed(page)
    return page, parser.tables[-1]  # the disclosures table is the last


def test_a_row_says_who_got_what_when_why_and_whether_they_read_it_in_words() -> None:
    page, table = _report(child={"name": "Testchild Example", "date_of_birth": "2015-04-01"},
                          consent=["Objection (UK GDPR Art 21), the child: raised, recorded 2026-06-01"])
    head, first, second = table
    assert head == ["When", "Recipient", "What was shared", "Why: rule and lawful basis", "Consent", "Read"]
    when, who, what, why, consent, read = first
    assert when == "2 Mar 2026, 10:00 GMT" and who == "Riverside Children's Services (MASH hub)"
    assert "Identity: given names (child), family name (child)" in what
    assert "Health: name (child GP practice)" in what and "Addresses and places: postcode (child address)" in what
    assert "Partly shown: date of birth (child): year only" in what and "Not shared: phone numbers (child)" in what
    assert LAWFUL_BASIS["children_act_2004_s11"] in why and LAWFUL_BASIS["uk_gdpr_art9_2_g"] in why
    assert "health-to-hub" in why and consent == "Not overridden" and read == "Read 2 Mar 2026, 11:00 GMT"
    when, who, _, _, consent, read = second
    assert when == "1 Jul 2026, 11:00 BST"  # local time in summer
    assert who == "Example Constabulary (MASH police)" and read == "No read recorded (read from Kafka)"
    assert consent.startswith("Overridden: the objection (recorded 2026-06-01) was set aside under a duty to "
                              "disclose") and LAWFUL_BASIS["children_act_1989_s47"] in consent
    # no schema path, no operational field, no lawful basis code, no subscriber code reaches the reader
    for code in ("subject.", "payload.", "event_id", "linkage", "occurred", "uk_gdpr_art", "children_act_",
                 "mash_hub", "police_mash", "year_only", "[]"):
        assert code not in page.split("</style>")[1].replace(CHILD, ""), code
    assert "Testchild Example" in page and "2015-04-01" in page and "Objection (UK GDPR Art 21)" in page
    assert "Consent was overridden for 1 disclosure(s)" in page


def test_the_summary_counts_per_recipient() -> None:
    page, _ = _report()
    parser = _Rows()
    parser.feed(page)
    summary = parser.tables[0]
    assert summary[0] == ["Recipient", "Disclosures", "First", "Last", "Read", "Consent overridden"]
    assert summary[1] == ["Riverside Children's Services (MASH hub)", "1", "2 Mar 2026, 10:00 GMT",
                          "2 Mar 2026, 10:00 GMT", "1 of 1", "none"]
    assert summary[2][0] == "Example Constabulary (MASH police)" and summary[2][4:] == ["0 of 1", "1"]


def test_the_child_is_named_only_when_revealed_and_everything_is_escaped() -> None:
    page, _ = _report(child_note="not named: the events topic could not be read")
    assert "Testchild Example" not in page.replace(CHILD, "")
    assert "not named: the events topic could not be read" in page
    page, _ = _report(child={"name": "<script>alert(1)</script> Example"})
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; Example" in page
    page, _ = _report(consent=[])
    assert "No consent, agreement or objection is recorded for this child." in page


def test_it_prints_on_a4() -> None:
    page, _ = _report()
    assert "@page{size:A4" in page and "break-inside:avoid" in page and "<script" not in page


def test_recipients_are_named_as_the_protocol_names_their_partner() -> None:
    protocol = load_protocol(SAMPLE)
    named = recipient_words(protocol)
    assert set(named) == set(protocol.subscribers)
    for name, sub in protocol.subscribers.items():
        assert named[name].label.startswith(protocol.partners[sub.partner].name)
        assert named[name].delivery == sub.delivery and name not in named[name].label


def test_fields_in_words_leave_operational_ones_out_and_count_unknown_paths_as_notes() -> None:
    groups = dict(plain_fields("health.urgent_care_attendance", ["event_id", "subject.linkage.token",
                                                                  "subject.child.nhs_number", "payload.unknown"]))
    assert groups == {"Identity": ["NHS number (child)"], "Professionals' written notes": ["unknown"]}
    assert local_time("2026-12-01T09:30:00Z") == "1 Dec 2026, 09:30 GMT" and local_time("soon") == "soon"
    assert ConsentRecord  # the register's record type the consent lines read (kind, state, subject, recorded_on)
