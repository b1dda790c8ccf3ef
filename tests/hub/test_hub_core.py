"""The hub watch's pure core (issue 16): calendars, cumulative concern, one enquiry per child, repeat referrals,
merge folding, redelivery and clocks, with no Kafka or database. Every hub event the planner makes is checked
against the canonical schema: an off-contract event would be refused at publication."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.pipeline.hub.calendar import CalendarError, build_calendar, next_school_day_start, one_working_day_after
from broker.pipeline.hub.history import Clock, Enquiry, Entry, derived_id
from broker.pipeline.hub.plan import BREACHED, CUMULATIVE, ENQUIRY, HubFacts, HubPlan, breach_event, plan_hub, settle
from broker.policy import load_protocol
from broker.policy.compile import expand_event_types
from broker.policy.hub import HubRules, build_hub
from broker.schema.validate import validate_event

ROOT = Path(__file__).resolve().parents[2]
CALENDARS = ROOT / "deploy" / "calendars"
LONDON = "Europe/London"
CHILD = "lt1_" + "C" * 32  # fictitious tokens
OTHER = "lt1_" + "D" * 32


@pytest.fixture(scope="module")
def calendar() -> Any:
    config = yaml.safe_load((CALENDARS / "exampleshire.yaml").read_text())
    banks = yaml.safe_load((CALENDARS / "england-bank-holidays.yaml").read_text())["dates"]
    return build_calendar(config, banks)


@pytest.fixture(scope="module")
def rules() -> HubRules:
    return load_protocol(ROOT / "deploy" / "protocols" / "sample-partnership.yaml").hub


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def utc(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


# --- calendars -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("incident", "due"), [
    ("2026-12-01T02:00:00Z", "2026-12-01T08:45:00Z"),  # overnight on a school day: that morning
    ("2026-12-01T10:00:00Z", "2026-12-02T08:45:00Z"),  # during the school day: the next morning
    ("2026-11-27T19:00:00Z", "2026-11-30T08:45:00Z"),  # Friday evening: Monday
    ("2026-12-18T20:00:00Z", "2027-01-04T08:45:00Z"),  # the last day of term: after the Christmas holidays
    ("2027-06-06T23:30:00Z", "2027-06-07T07:45:00Z"),  # Sunday 23:30 UTC is Monday 00:30 BST: due 08:45 BST
    ("2027-05-28T12:00:00Z", "2027-06-07T07:45:00Z"),  # spring bank holiday then half term
])
def test_encompass_is_due_before_the_next_school_day_starts(calendar: Any, incident: str, due: str) -> None:
    assert utc(next_school_day_start(calendar, at(incident))) == due


@pytest.mark.parametrize(("received", "due"), [
    ("2026-12-01T14:00:00Z", "2026-12-02T14:00:00Z"),  # a Tuesday afternoon: Wednesday afternoon
    ("2026-11-27T15:00:00Z", "2026-11-30T15:00:00Z"),  # Friday: Monday
    ("2026-11-28T11:00:00Z", "2026-12-01T09:00:00Z"),  # Saturday: from Monday 09:00, due Tuesday 09:00
    ("2026-12-01T06:00:00Z", "2026-12-02T09:00:00Z"),  # before the working day starts: from 09:00
    ("2026-12-24T14:00:00Z", "2026-12-29T14:00:00Z"),  # Christmas Eve: Christmas Day and Boxing Day (Mon 28) skipped
])
def test_a_hub_decision_is_due_within_one_working_day(calendar: Any, received: str, due: str) -> None:
    assert utc(one_working_day_after(calendar, at(received))) == due


def test_a_calendar_that_cannot_be_read_names_the_field_not_the_value() -> None:
    with pytest.raises(CalendarError, match=r"school_holidays\[0\]: `to` is before `from`"):
        build_calendar({"school_holidays": [{"from": "2026-12-21", "to": "2026-12-01"}]}, [])
    with pytest.raises(CalendarError, match="bank_holidays: every entry must be an ISO date"):
        build_calendar({}, ["25/12/2026"])
    with pytest.raises(CalendarError, match="zone"):
        build_calendar({"zone": "Not/AZone"}, [])


# --- events as the watch reads them ------------------------------------------------------------------------------

def event(n: int, event_type: str, agency: str, occurred: str, level: str = "low", token: str = CHILD,
          **payload: Any) -> dict[str, Any]:
    return {"event_id": derived_id("test", token, str(n)), "event_type": event_type, "schema_version": "1.4.0",
            "occurred_at": occurred, "recorded_at": occurred if "T" in occurred else occurred + "T10:00:00Z",
            "source": {"agency": agency}, "risk": {"level": level},
            "subject": {"linkage": {"token": token, "key_version": 1, "basis": "nhs_number", "confidence": "verified"}},
            "payload": payload}


def linked(n: int, into: str, absorbed: str, occurred: str) -> dict[str, Any]:
    return event(n, "person.linked", "health", occurred, token=into, superseded_token=absorbed)


def of(plan: HubPlan, event_type: str) -> list[dict[str, Any]]:
    return [e for e in plan.events if e["event_type"] == event_type]


def test_every_hub_event_the_planner_makes_is_on_the_schema(rules: HubRules, calendar: Any) -> None:
    batch = [event(1, "education.attendance_concern", "education", "2026-09-14"),
             event(2, "social_care.referral", "social_care", "2025-10-01"),
             event(3, "social_care.case_closed", "social_care", "2026-02-01"),
             event(4, "health.safeguarding_flag", "health", "2026-10-20"),
             event(5, "police.incident_child_present", "police", "2026-11-30T08:00:00Z"),
             event(6, "social_care.referral", "social_care", "2026-11-30T09:00:00Z"),
             event(7, "education.attendance_concern", "education", "2026-12-01T09:00:00Z", token=OTHER),
             linked(8, CHILD, OTHER, "2026-12-01T12:00:00Z")]  # both enquiries open: one folds into the other
    plan = plan_hub(batch, HubFacts(), rules, calendar)
    clock = plan.started[0]
    made = [*plan.events, breach_event(clock, "1.4.0", "2026-12-31T10:00:00Z")]
    assert {e["event_type"] for e in made} == {CUMULATIVE, ENQUIRY, BREACHED}
    assert any(e["payload"]["action"] == "folded" for e in of(plan, ENQUIRY))
    assert any("repeat_referral" in e["payload"] for e in of(plan, ENQUIRY))
    for made_event in made:
        assert validate_event(made_event) == [], made_event["event_type"]
        assert made_event["source"]["agency"] == "broker" and made_event["subject"]["child"] == {}


# --- cumulative concern ------------------------------------------------------------------------------------------

def test_three_low_concerns_from_three_agencies_raise_one_cumulative_concern_naming_them(
        rules: HubRules, calendar: Any) -> None:
    batch = [event(1, "education.attendance_concern", "education", "2026-09-14"),
             event(2, "health.safeguarding_flag", "health", "2026-10-20"),
             event(3, "police.incident_child_present", "police", "2026-11-30"),
             event(4, "education.exclusion", "education", "2026-12-01")]  # a fourth: the hub already knows
    plan = plan_hub(batch, HubFacts(), rules, calendar)
    raised = of(plan, CUMULATIVE)
    assert len(raised) == 1
    payload = raised[0]["payload"]
    assert payload["rule"] == "three-low-concerns-two-agencies" and payload["window_days"] == 90
    assert [c["event_id"] for c in payload["contributing"]] == [e["event_id"] for e in batch[:3]]
    assert set(payload["contributing"][0]) == {"event_id", "event_type", "agency", "occurred_at"}  # no content
    assert plan.counts.count(("cumulative_concern", "three-low-concerns-two-agencies")) == 1


@pytest.mark.parametrize("why", ["one agency", "outside the window", "one met the threshold alone"])
def test_no_cumulative_concern(rules: HubRules, calendar: Any, why: str) -> None:
    batch = {
        "one agency": [event(1, "education.attendance_concern", "education", "2026-09-14"),
                       event(2, "education.exclusion", "education", "2026-10-20"),
                       event(3, "education.child_missing_education", "education", "2026-11-30")],
        "outside the window": [event(1, "education.attendance_concern", "education", "2026-06-01"),
                               event(2, "health.safeguarding_flag", "health", "2026-08-20"),
                               event(3, "police.incident_child_present", "police", "2026-11-30")],
        "one met the threshold alone": [event(1, "education.attendance_concern", "education", "2026-09-14"),
                                        event(2, "health.safeguarding_flag", "health", "2026-10-20", "high"),
                                        event(3, "police.incident_child_present", "police", "2026-11-30")],
    }[why]
    assert of(plan_hub(batch, HubFacts(), rules, calendar), CUMULATIVE) == []


def test_concerns_leaving_the_window_let_a_new_pattern_raise_again(rules: HubRules, calendar: Any) -> None:
    first = [event(1, "education.attendance_concern", "education", "2026-01-05"),
             event(2, "health.safeguarding_flag", "health", "2026-01-20"),
             event(3, "police.incident_child_present", "police", "2026-02-01")]
    later = [event(4, "education.attendance_concern", "education", "2026-09-05"),
             event(5, "health.safeguarding_flag", "health", "2026-09-20"),
             event(6, "police.incident_child_present", "police", "2026-10-01")]
    plan = plan_hub(first + later, HubFacts(), rules, calendar)
    assert [len(e["payload"]["contributing"]) for e in of(plan, CUMULATIVE)] == [3, 3]


def test_a_police_grading_is_read_on_the_partnerships_scale(rules: HubRules, calendar: Any) -> None:
    """A DASH "high" is high once the protocol's risk_scales map it, though the adapter leaves risk.level unknown."""
    scales = load_protocol(ROOT / "deploy" / "protocols" / "sample-partnership.yaml").risk_scales
    batch = [event(1, "education.attendance_concern", "education", "2026-09-14", "unknown"),
             event(2, "health.safeguarding_flag", "health", "2026-10-20", "medium"),
             event(3, "police.incident_child_present", "police", "2026-11-30", "unknown")]
    batch[2]["risk"]["agency_levels"] = [{"scale": "police_dash", "level": "high"}]
    assert of(plan_hub(batch, HubFacts(), rules, calendar, scales), CUMULATIVE) == []
    batch[2]["risk"]["agency_levels"] = [{"scale": "police_dash", "level": "standard"}]
    assert len(of(plan_hub(batch, HubFacts(), rules, calendar, scales), CUMULATIVE)) == 1


def test_the_history_held_counts_so_a_concern_months_later_raises_after_a_restart(
        rules: HubRules, calendar: Any) -> None:
    held = [Entry(derived_id("old", "1"), "education.attendance_concern", "education", "2026-09-14", "low"),
            Entry(derived_id("old", "2"), "health.safeguarding_flag", "health", "2026-10-20", "low")]
    plan = plan_hub([event(3, "police.incident_child_present", "police", "2026-11-30")],
                    HubFacts(history={CHILD: held}), rules, calendar)
    assert [c["event_id"] for c in of(plan, CUMULATIVE)[0]["payload"]["contributing"]][:2] == \
        [h.event_id for h in held]


def test_a_merge_shows_what_neither_stream_showed_alone(rules: HubRules, calendar: Any) -> None:
    ours = [Entry(derived_id("a", "1"), "education.attendance_concern", "education", "2026-09-14", "low"),
            Entry(derived_id("a", "2"), "health.safeguarding_flag", "health", "2026-10-20", "low")]
    theirs = [Entry(derived_id("b", "1"), "police.incident_child_present", "police", "2026-11-01", "low")]
    plan = plan_hub([linked(9, CHILD, OTHER, "2026-11-30T10:00:00Z")],
                    HubFacts(history={CHILD: ours, OTHER: theirs}), rules, calendar)
    assert len(of(plan, CUMULATIVE)) == 1
    assert plan.folds == [(OTHER, CHILD)]
    # a stream that already held the rule on its own raised then: the merge does not raise it again
    held = [*ours, Entry(derived_id("a", "3"), "police.incident_child_present", "police", "2026-11-01", "low")]
    again = plan_hub([linked(9, CHILD, OTHER, "2026-11-30T10:00:00Z")],
                     HubFacts(history={CHILD: held, OTHER: theirs}), rules, calendar)
    assert of(again, CUMULATIVE) == []


def test_an_event_read_after_its_stream_was_folded_joins_the_childs_history(rules: HubRules, calendar: Any) -> None:
    """One child's two streams are on two partitions: the school's concern, under the superseded token, can be
    read after the person.linked that folded it. It counts under the child's token all the same."""
    held = [Entry(derived_id("p", "1"), "police.incident_child_present", "police", "2026-11-29", "low"),
            Entry(derived_id("p", "2"), "health.safeguarding_flag", "health", "2026-11-25", "medium")]
    late = event(1, "education.attendance_concern", "education", "2026-11-20", token=OTHER)
    plan = plan_hub([late], HubFacts(history={CHILD: held}, current={OTHER: CHILD}), rules, calendar)
    assert plan.entries == [(CHILD, plan.entries[0][1])]
    (raised,) = of(plan, CUMULATIVE)
    assert raised["subject"]["linkage"]["token"] == CHILD and len(raised["payload"]["contributing"]) == 3


def test_an_event_under_the_folded_token_later_in_the_same_batch_joins_the_child(rules: HubRules,
                                                                                 calendar: Any) -> None:
    """The same, read in the batch that carries the person.linked, before the identity register has written the
    link (intake writes it once Kafka has acknowledged): the batch itself knows the fold, so the concern counts under
    the child's token and the enquiry it contributes to is the child's, not a second one under the folded token."""
    held = [Entry(derived_id("p", "1"), "police.incident_child_present", "police", "2026-11-29T19:00:00Z", "low"),
            Entry(derived_id("p", "2"), "health.safeguarding_flag", "health", "2026-11-30", "medium")]
    late = event(1, "education.attendance_concern", "education", "2026-11-30T09:00:00Z", token=OTHER)
    plan = plan_hub([linked(9, CHILD, OTHER, "2026-11-30T10:00:00Z"), late], HubFacts(history={CHILD: held}),
                    rules, calendar)
    assert [token for token, _ in plan.entries] == [CHILD]
    (raised,) = of(plan, CUMULATIVE)
    assert raised["subject"]["linkage"]["token"] == CHILD and len(raised["payload"]["contributing"]) == 3
    assert {e["subject"]["linkage"]["token"] for e in of(plan, ENQUIRY)} == {CHILD}


def test_a_batch_read_again_after_its_writes_derives_nothing_new(rules: HubRules, calendar: Any) -> None:
    batch = [event(1, "education.attendance_concern", "education", "2026-09-14"),
             event(2, "health.safeguarding_flag", "health", "2026-10-20"),
             event(3, "police.incident_child_present", "police", "2026-11-30")]
    first = plan_hub(batch, HubFacts(), rules, calendar)
    # before the writes (a crash after producing): the same events again, with the same ids
    assert [e["event_id"] for e in plan_hub(batch, HubFacts(), rules, calendar).events] == \
        [e["event_id"] for e in first.events]
    written = HubFacts(history={CHILD: [e for _, e in first.entries]},
                       enquiries={q.token: q for q in first.enquiries.values() if q.open})
    assert plan_hub(batch, written, rules, calendar).events == []


# --- enquiries, repeat referrals -----------------------------------------------------------------------------------

def test_a_police_and_a_school_contact_the_same_day_make_one_enquiry(rules: HubRules, calendar: Any) -> None:
    batch = [event(1, "police.incident_child_present", "police", "2026-11-30T08:10:00Z"),
             event(2, "education.attendance_concern", "education", "2026-11-30T13:40:00Z")]
    plan = plan_hub(batch, HubFacts(), rules, calendar)
    enquiries = of(plan, ENQUIRY)
    assert [e["payload"]["action"] for e in enquiries] == ["opened", "joined"]
    assert len({e["payload"]["enquiry_id"] for e in enquiries}) == 1
    (enquiry,) = plan.enquiries.values()
    assert enquiry.contributions == (batch[0]["event_id"], batch[1]["event_id"]) and enquiry.open
    assert [c.kind for c in plan.started] == ["decision", "encompass"]  # one decision clock for the one enquiry


def test_a_contribution_after_the_window_opens_a_new_enquiry_and_a_decision_closes_one(
        rules: HubRules, calendar: Any) -> None:
    batch = [event(1, "police.incident_child_present", "police", "2026-11-02T08:00:00Z"),
             event(2, "education.attendance_concern", "education", "2026-11-30T08:00:00Z"),
             event(3, "mash.decision", "mash_hub", "2026-11-30T15:00:00Z"),
             event(4, "health.safeguarding_flag", "health", "2026-11-30T16:00:00Z")]
    plan = plan_hub(batch, HubFacts(), rules, calendar)
    assert [e["payload"]["action"] for e in of(plan, ENQUIRY)] == ["opened", "opened", "opened"]
    states = sorted((q.opened_at, q.open) for q in plan.enquiries.values())
    assert [s[1] for s in states] == [False, False, True]
    stopped = [c for c, _ in plan.stopped]
    assert [c.kind for c in stopped] == ["decision"] and stopped[0].event_id == batch[1]["event_id"]


def test_a_decision_about_something_else_leaves_the_open_enquiry_and_its_clock_running(
        rules: HubRules, calendar: Any) -> None:
    contact = event(1, "police.incident_child_present", "police", "2026-11-30T08:00:00Z")
    opened = plan_hub([contact], HubFacts(), rules, calendar)
    (enquiry,) = opened.enquiries.values()
    facts = HubFacts(history={CHILD: [e for _, e in opened.entries]}, enquiries={CHILD: enquiry},
                     clocks={CHILD: list(opened.started)})
    elsewhere = event(2, "mash.decision", "mash_hub", "2026-11-30T12:00:00Z", enquiry_id="an-older-enquiry",
                      concerns=[derived_id("older")])
    plan = plan_hub([elsewhere], facts, rules, calendar)
    assert plan.stopped == [] and enquiry.enquiry_id not in plan.enquiries
    about_it = event(3, "mash.decision", "mash_hub", "2026-11-30T15:00:00Z", concerns=[contact["event_id"]])
    action = event(4, "mash.action", "mash_hub", "2026-11-30T15:00:00Z")
    plan = plan_hub([about_it, action], facts, rules, calendar)
    assert [c.kind for c, _ in plan.stopped] == ["decision"] and not plan.enquiries[enquiry.enquiry_id].open
    assert plan.entries == []  # the hub's own records are not an agency's history


def test_a_merge_folds_two_open_enquiries_into_the_earlier(rules: HubRules, calendar: Any) -> None:
    ours = Enquiry("q-ours", CHILD, "2026-11-30T09:00:00Z", "2026-11-30T09:00:00Z", ("e1",))
    theirs = Enquiry("q-theirs", OTHER, "2026-11-30T08:00:00Z", "2026-11-30T08:00:00Z", ("e2",))
    plan = plan_hub([linked(9, CHILD, OTHER, "2026-11-30T10:00:00Z")],
                    HubFacts(enquiries={CHILD: ours, OTHER: theirs}), rules, calendar)
    (folded,) = of(plan, ENQUIRY)
    assert folded["payload"] | {"record_kind": None} == {"record_kind": None, "enquiry_id": "q-theirs",
                                                         "action": "folded", "folded_enquiry_id": "q-ours"}
    assert plan.enquiries["q-theirs"].contributions == ("e2", "e1") and plan.enquiries["q-theirs"].token == CHILD
    assert not plan.enquiries["q-ours"].open


def test_a_merge_closes_an_enquiry_whose_window_passed_instead_of_folding_it(rules: HubRules, calendar: Any) -> None:
    ours = Enquiry("q-ours", CHILD, "2026-11-30T09:00:00Z", "2026-11-30T09:00:00Z", ("e1",))
    stale = Enquiry("q-stale", OTHER, "2026-10-01T08:00:00Z", "2026-10-01T08:00:00Z", ("e2",))
    plan = plan_hub([linked(9, CHILD, OTHER, "2026-11-30T10:00:00Z")],
                    HubFacts(enquiries={CHILD: ours, OTHER: stale}), rules, calendar)
    assert of(plan, ENQUIRY) == []
    assert not plan.enquiries["q-stale"].open and plan.enquiries["q-ours"].open


@pytest.mark.parametrize(("closed", "repeat"), [("2026-03-27", True), ("2025-11-27", False)])
def test_a_referral_within_twelve_months_of_a_closure_is_a_repeat_referral(
        rules: HubRules, calendar: Any, closed: str, repeat: bool) -> None:
    batch = [event(1, "social_care.referral", "social_care", "2025-06-03"),
             event(2, "social_care.case_closed", "social_care", closed),
             event(3, "social_care.referral", "social_care", "2026-11-30")]
    last = of(plan_hub(batch, HubFacts(), rules, calendar), ENQUIRY)[-1]["payload"]
    if repeat:
        assert last["repeat_referral"] == {"previous_referral_on": "2025-06-03",
                                           "previous_referral_closed_on": closed}
    else:
        assert "repeat_referral" not in last


# --- clocks ----------------------------------------------------------------------------------------------------

def clock(kind: str, due: str) -> Clock:
    return Clock(derived_id(kind, due), kind, CHILD, derived_id("incident", due), "police.incident_child_present",
                 "2026-11-30T20:00:00Z", due, None, {"token": CHILD, "key_version": 1, "basis": "nhs_number",
                                                      "confidence": "verified"})


def test_clocks_settle_met_when_the_school_was_told_and_breached_once_due() -> None:
    told, untold, decision = (clock("encompass", "2026-12-01T08:45:00Z"), clock("encompass", "2026-12-02T08:45:00Z"),
                              clock("decision", "2026-12-01T09:00:00Z"))
    early = settle([told, untold, decision], {told.event_id: "2026-12-01T07:30:00Z"}, "2026-12-01T08:00:00Z")
    assert [c for c, _ in early.met] == [told] and early.breached == []
    late = settle([untold, decision], {}, "2026-12-02T09:00:00Z")
    assert late.met == [] and late.breached == [untold, decision]
    payload = breach_event(decision, "1.4.0", "2026-12-02T09:00:00Z")["payload"]
    assert payload["clock"] == "decision" and payload["due_by"] == "2026-12-01T09:00:00Z"


# --- the protocol's hub section ----------------------------------------------------------------------------------

def test_the_protocol_compile_refuses_a_hub_rule_that_can_never_hold() -> None:
    raw = {"cumulative_concerns": [{"id": "x", "event_types": ["education.nonsense"], "below": "unknown",
                                    "at_least": 2, "agencies_at_least": 3, "window_days": 30}],
           "clocks": {"encompass": {"event_types": ["police.incident_child_present"], "role": "nobody"}}}
    _, problems = build_hub(raw, expand_event_types, frozenset({"school_dsl"}))
    reasons = {tuple(parts): reason for parts, reason in problems}
    assert "not an event type" in reasons[("hub", "cumulative_concerns", 0, "event_types", 0)]
    assert "never hold" in reasons[("hub", "cumulative_concerns", 0, "agencies_at_least")]
    assert "never count" in reasons[("hub", "cumulative_concerns", 0, "below")]
    assert "never be met" in reasons[("hub", "clocks", "encompass", "role")]


def test_a_calendar_file_that_cannot_be_read_names_the_file(tmp_path: Path) -> None:
    from broker.service.hub_watch import load_calendar

    bad = tmp_path / "calendar.yaml"
    bad.write_text(f"bank_holidays_file: {CALENDARS / 'england-bank-holidays.yaml'}\n"
                   "school_holidays: [{from: 2026-12-21}]\n")
    with pytest.raises(CalendarError, match=r"calendar.yaml: school_holidays\[0\]: needs `from` and `to`"):
        load_calendar(bad)
    with pytest.raises(CalendarError, match=r"missing.yaml: cannot read the calendar \(FileNotFoundError\)"):
        load_calendar(tmp_path / "missing.yaml")
    assert load_calendar(CALENDARS / "exampleshire.yaml").bank_holidays  # the shipped one, with its bank holidays
