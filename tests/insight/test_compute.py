"""Every measure of schemas/measures.yaml computed over a hand-built audit log with answers worked out by hand
(tests/insight/known_log.py says how each was reached)."""

from __future__ import annotations

import random

import pytest

from broker.insight.compute import ComputeError, compute, compute_all, period_label
from broker.insight.measures import default_measures
from tests.insight.known_log import SUBSCRIBER_PARTNER, known_log

MEASURES = default_measures()


def table(measure_id: str, **kw):  # type: ignore[no-untyped-def]
    return compute(known_log(), MEASURES.by_id(measure_id), subscriber_partner=SUBSCRIBER_PARTNER, **kw)


def cells(t) -> dict:  # type: ignore[no-untyped-def]
    return {k: v for k, v in t.counts.items() if v}


def test_contacts_by_agency_and_month() -> None:
    t = table("contacts", by="agency", across="month")
    assert cells(t) == {("police", "2026-03"): 1, ("health", "2026-03"): 1, ("education", "2026-04"): 1}
    assert t.denominators is None and t.populations == {"police": 1, "health": 1, "education": 1}


def test_contacts_by_area_school_and_gp() -> None:
    assert cells(table("contacts", by="area", across="all")) == {("ZZ1", "all"): 2, ("ZZ2", "all"): 1}
    assert cells(table("contacts", by="school_urn", across="all")) == {("999101", "all"): 1, ("unknown", "all"): 2}
    assert cells(table("contacts", by="gp_ods", across="all")) == {("Y99901", "all"): 1, ("unknown", "all"): 2}


def test_referrals_by_month_week_quarter_and_change_date() -> None:
    assert cells(table("referrals", across="month")) == {("social_care", "2026-03"): 2, ("social_care", "2026-04"): 1}
    assert cells(table("referrals", across="quarter")) == {("social_care", "2026-Q1"): 2,
                                                          ("social_care", "2026-Q2"): 1}
    assert cells(table("referrals", across="week")) == {("social_care", "2026-W10"): 1,
                                                       ("social_care", "2026-W11"): 1,
                                                       ("social_care", "2026-W14"): 1}
    assert cells(table("referrals", across="before_after", change_date="2026-04-01")) == {
        ("social_care", "before"): 2, ("social_care", "after"): 1}
    assert cells(table("referrals", by="source", across="all")) == {("cin-census-xml", "all"): 3}


def test_decision_clock_rate() -> None:
    t = table("decision_within_one_working_day", by="agency", across="all")
    assert cells(t) == {("police", "all"): 1, ("social_care", "all"): 1}
    assert {k: v for k, v in t.denominators.items()} == {("police", "all"): 1, ("health", "all"): 1,
                                                        ("social_care", "all"): 1}
    assert t.rows == ("health", "police", "social_care")


def test_encompass_clock_rate() -> None:
    t = table("encompass_before_next_school_day", by="area", across="all")
    assert cells(t) == {("ZZ1", "all"): 1} and dict(t.denominators) == {("ZZ1", "all"): 2}


def test_feedback_to_referrers() -> None:
    t = table("feedback_to_referrers", by="agency", across="all")
    assert cells(t) == {("police", "all"): 1}
    assert dict(t.denominators) == {("police", "all"): 1, ("health", "all"): 1}


def test_feedback_needs_the_protocol_to_match_subscribers_to_partners() -> None:
    t = compute(known_log(), MEASURES.by_id("feedback_to_referrers"), across="all")
    assert cells(t) == {}, "without the subscriber -> partner map no delivery can be called feedback"


def test_decision_outcomes_initial_only() -> None:
    t = table("decision_outcomes", by="outcome", across="all")
    assert cells(t) == {("early_help", "all"): 1, ("no_further_action", "all"): 1,
                        ("strategy_discussion_section_47", "all"): 1}


def test_outcomes_by_referring_agency() -> None:
    t = table("decision_outcomes", by="agency", across="outcome")
    assert cells(t) == {("police", "early_help"): 1, ("health", "no_further_action"): 1,
                        ("social_care", "strategy_discussion_section_47"): 1}
    nfa = table("nfa_rate_by_referring_agency", by="agency", across="all")
    assert cells(nfa) == {("health", "all"): 1}
    assert dict(nfa.denominators) == {("police", "all"): 1, ("health", "all"): 1, ("social_care", "all"): 1}


def test_conversion_to_s47_follows_identity_merges() -> None:
    t = table("referral_to_section47", by="agency", across="all")
    assert cells(t) == {("social_care", "all"): 2} and dict(t.denominators) == {("social_care", "all"): 3}


def test_conversion_to_cp_plan_counts_only_plans_after_the_referral() -> None:
    t = table("referral_to_cp_plan", by="agency", across="all")
    assert cells(t) == {} and dict(t.denominators) == {("social_care", "all"): 3}


def test_step_up_and_step_down() -> None:
    assert cells(table("step_up_to_social_care", by="agency", across="month")) == {("social_care", "2026-03"): 1}
    assert cells(table("step_down_to_early_help", by="agency", across="all")) == {}


def test_repeat_referrals_and_duplicates_merged() -> None:
    repeat = table("repeat_referrals", by="agency", across="all")
    assert sum(repeat.counts.values()) == 1 and sum(repeat.denominators.values()) == 3
    merged = table("duplicates_merged", by="agency", across="all")
    assert sum(merged.counts.values()) == 2 and sum(merged.denominators.values()) == 5


def test_cumulative_concerns_and_what_became_of_them() -> None:
    t = table("cumulative_concerns", by="outcome", across="all")
    assert cells(t) == {("early_help", "all"): 1, ("none_yet", "all"): 1}


def test_deliveries_withheld_by_reason() -> None:
    t = table("deliveries_withheld", by="reason", across="all")
    assert cells(t) == {("no rule matched", "all"): 1, ("consent refused", "all"): 1}
    assert sum(t.denominators.values()) == 6
    by_subscriber = table("deliveries_withheld", by="subscriber", across="all")
    assert cells(by_subscriber) == {("police_ppu", "all"): 1, ("gp_lead", "all"): 1}


def test_data_quality_warnings_by_agency_and_field() -> None:
    t = table("data_quality_warnings", by="field", across="agency")
    assert cells(t) == {("subject.child.addresses[]", "health"): 1, ("subject.child.addresses[]", "education"): 1,
                        ("Pupil/Sex", "education"): 1}


def test_unavailable_measure_says_why_and_gives_no_number() -> None:
    m = MEASURES.by_id("early_help_assessments")
    assert not m.available and m.unavailable_why and "early help" in m.unavailable_why
    with pytest.raises(ComputeError, match="not available"):
        compute(known_log(), m)


def test_every_available_measure_is_computed_and_order_does_not_matter() -> None:
    log = known_log()
    shuffled = log[:]
    random.Random(7).shuffle(shuffled)
    for m in MEASURES:
        if not m.available:
            continue
        for by in m.breakdowns:
            one = compute(log, m, by=by, across="all", subscriber_partner=SUBSCRIBER_PARTNER)
            two = compute(shuffled, m, by=by, across="all", subscriber_partner=SUBSCRIBER_PARTNER)
            assert one == two, (m.id, by)
    tables = compute_all(log, MEASURES, by="agency", across="all", subscriber_partner=SUBSCRIBER_PARTNER)
    assert {t.measure for t in tables} == {m.id for m in MEASURES if m.available and "agency" in m.breakdowns}


def test_bad_breakdown_period_or_change_date_is_a_clear_error() -> None:
    m = MEASURES.by_id("referrals")
    with pytest.raises(ComputeError, match="breakdown 'colour'"):
        compute([], m, by="colour")
    with pytest.raises(ComputeError, match="across"):
        compute([], m, across="fortnight")
    with pytest.raises(ComputeError, match="change date"):
        compute([], m, across="before_after")


def test_period_labels() -> None:
    assert period_label("2026-01-01", "week") == "2026-W01"
    assert period_label("2027-01-01", "week") == "2026-W53"  # ISO weeks: 1 Jan 2027 is in 2026's last week
    assert period_label("2026-12-31", "quarter") == "2026-Q4"
    assert period_label("not a day", "month") == "unknown"


def test_rows_sort_naturally_with_unknown_last() -> None:
    from tests.insight.known_log import C, _published

    log = [*known_log(), _published("E9", "police.incident_child_present", C, "2026-04-03", "police", district="ZZ10")]
    t = compute(log, MEASURES.by_id("contacts"), by="area", across="all")
    assert t.rows == ("ZZ1", "ZZ2", "ZZ10")
    assert compute(log, MEASURES.by_id("contacts"), by="school_urn", across="all").rows[-1] == "unknown"
