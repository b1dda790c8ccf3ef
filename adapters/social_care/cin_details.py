"""One <CINdetails> (an episode of need, keyed by its referral date) -> referral, assessment, section 47, child
protection plan and closure events.

Rule: the date an event is built on (its occurred_at) must be a real date no later than receipt, or that event is
refused with a Rejection naming the element; any other bad value is left out and flagged, and the event flows.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

from lxml import etree

from adapters.kit.events import warning
from adapters.kit.interface import FieldProblem, Rejection
from adapters.kit.xml import element_path
from adapters.social_care import codes
from adapters.social_care.cin_reading import Element, elements, one, relative_path, text
from adapters.social_care.common import Warning, code, optional_date, required_date, sc_event

FORMAT = "cin-census-xml"
YES_NO = {"TRUE": True, "1": True, "FALSE": False, "0": False}
# The CINdetails children this adapter maps (CIN census 2022-23 to 2025-26). Any other, such as the 2025-26
# pre-proceedings and family group decision making block, has no place in the canonical schema yet: it is not
# dropped silently but reported on each event of the CINdetails (`cin.element_not_mapped`, README "Ignored").
MAPPED_DETAILS = frozenset({"CINreferralDate", "ReferralSource", "PrimaryNeedCode", "ReferralNFA", "CINPlanDates",
                            "DateOfInitialCPC", "Assessments", "Section47", "ChildProtectionPlans", "CINclosureDate",
                            "ReasonForClosure"})
_ELEMENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,60}")


def not_mapped(details: Element, where: str) -> list[Warning]:
    """One warning per unmapped child element name of a CINdetails (named: a schema name, not a record value; an odd
    name, which could be anything, is only counted as "an element")."""
    out, seen = [], set()
    for el in details:
        if not isinstance(el.tag, str):
            continue  # comments, processing instructions
        name = etree.QName(el).localname
        if name in MAPPED_DETAILS or name in seen:
            continue
        seen.add(name)
        shown = name if _ELEMENT_NAME.fullmatch(name) else "element"
        out.append(warning("cin.element_not_mapped", f"{where}/{shown}",
                           "not mapped: the canonical schema has no place for it (see the adapter README)"))
    return out


@dataclass(slots=True)
class ChildScope:
    """What every event about one <Child> shares."""

    source: str
    system: str
    child_el: Element
    child: dict[str, Any]
    child_warnings: list[Warning]
    today: dt.date | None
    events: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def attempt(self, record: Element, build: Callable[[], None]) -> None:
        """Run one event's mapping; a FieldProblem refuses that event only, named by the record's element path."""
        try:
            build()
        except FieldProblem as p:
            self.reject(record, p)

    def reject(self, el: Element, p: FieldProblem, at: Element | None = None) -> None:
        """A problem in element `el` of this child. The input record is the <Child> (one dead letter however many
        of its events are refused): the path below it goes in the field, the line is that of the element at fault
        (`at`, else `el`)."""
        below = relative_path(el, self.child_el)
        where = "/".join(part for part in (below, p.field) if part)
        self.rejections.append(Rejection(self.source, element_path(self.child_el), where, p.reason,
                                         (at if at is not None else el).sourceline))


@dataclass(slots=True)
class Reader:
    """Values of one element's children; secondary problems become warnings with paths relative to the Child."""

    el: Element
    where: str
    today: dt.date | None
    warnings: list[Warning]

    def required_date(self, name: str) -> str:
        return required_date(text(self.el, name), name, "iso", self.today)

    def text(self, name: str) -> str | None:
        try:
            return text(self.el, name)
        except FieldProblem as p:
            self.warnings.append(warning("cin.structure", f"{self.where}/{p.field}", p.reason + "; left out"))
            return None

    def date(self, name: str, *, future_ok: bool = False) -> str | None:
        return optional_date(self.text(name), f"{self.where}/{name}", "iso", self.today, self.warnings,
                             future_ok=future_ok)

    def code(self, name: str, allowed: Collection[str] | None) -> str | None:
        return code(self.text(name), f"{self.where}/{name}", allowed, self.warnings)

    def flag(self, name: str) -> bool | None:
        value = self.text(name)
        if value is None:
            return None
        if value.upper() not in YES_NO:
            self.warnings.append(warning("value.invalid", f"{self.where}/{name}", "not a yes/no value; left out"))
            return None
        return YES_NO[value.upper()]

    def count(self, name: str) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        if not value.isascii() or not value.isdigit() or len(value) > 4:
            self.warnings.append(warning("value.invalid", f"{self.where}/{name}", "not a whole number; left out"))
            return None
        return int(value)


class Emit(Protocol):
    """Adds one event of a CINdetails to its child's scope (`emit` in details_events)."""

    def __call__(self, event_type: str, part: str, occurred_at: str, payload: dict[str, Any],
                 warnings: list[Warning], gradings: Collection[str], categories: Collection[str] = ()) -> None: ...


def _later(build: Callable[[Element, str, dt.date | None, Emit], None], el: Element, scope: ChildScope,
           emit: Emit) -> Callable[[], None]:
    """`build` of `el`, to run inside scope.attempt (the path is worked out there too)."""
    return lambda: build(el, relative_path(el, scope.child_el), scope.today, emit)


def details_events(details: Element, scope: ChildScope) -> None:
    """Every event of one CINdetails into scope; a bad referral date refuses the whole CINdetails."""
    where = relative_path(details, scope.child_el)
    try:
        referral_date = required_date(text(details, "CINreferralDate"), "CINreferralDate", "iso", scope.today)
    except FieldProblem as p:
        scope.reject(details, p)
        return
    record_id = f"{scope.child['la_child_id']}:{referral_date}"
    parts: Counter[str] = Counter()
    ignored = not_mapped(details, where)

    def emit(event_type: str, part: str, occurred_at: str, payload: dict[str, Any], warnings: list[Warning],
             gradings: Collection[str], categories: Collection[str] = ()) -> None:
        parts[part] += 1  # two groups with the same key date in one CINdetails still get distinct ids
        unique = part if parts[part] == 1 else f"{part}#{parts[part]}"
        scope.events.append(sc_event(
            event_type=event_type, system=scope.system, record_id=record_id, part=unique, fmt=FORMAT,
            occurred_at=occurred_at, child=scope.child, payload=payload,
            warnings=[*scope.child_warnings, *warnings, *ignored],
            agency_levels=gradings, risk_categories=categories))

    scope.attempt(details, lambda: _referral(details, where, referral_date, scope.today, emit))
    for el in elements(details, "Assessments"):
        scope.attempt(el, _later(_assessment, el, scope, emit))
    for el in elements(details, "Section47"):
        scope.attempt(el, _later(_section47, el, scope, emit))
    for el in elements(details, "ChildProtectionPlans"):
        _plan(el, scope, emit)
    if one_or_none(details, "CINclosureDate") is not None:
        scope.attempt(details, lambda: _closure(details, where, scope.today, emit))


def one_or_none(parent: Element, name: str) -> Element | None:
    found = elements(parent, name)
    return found[0] if found else None


def _referral(details: Element, where: str, referral_date: str, today: dt.date | None, emit: Emit) -> None:
    warnings: list[Warning] = []
    r = Reader(details, where, today, warnings)
    need = r.code("PrimaryNeedCode", codes.PRIMARY_NEED)
    nfa = r.flag("ReferralNFA")
    starts, ends = _cin_plans(details, where, today, warnings)
    if r.text("ReasonForClosure") and one_or_none(details, "CINclosureDate") is None:
        warnings.append(warning("cin.closure_reason_without_date", f"{where}/ReasonForClosure",
                                "a reason for closure is given but no closure date"))
    payload = {"referral_date": referral_date, "referral_source": r.code("ReferralSource", codes.REFERRAL_SOURCE),
               "primary_need_code": need, "referral_nfa": nfa, "cin_plan_start_dates": starts,
               "cin_plan_end_dates": ends, "initial_cp_conference_date": r.date("DateOfInitialCPC")}
    # Graded by its primary need, or as no further action: the protocol places each on the common scale.
    emit("social_care.referral", "referral", referral_date, payload, warnings, [codes.referral_grading(need, nfa)])


def _cin_plans(details: Element, where: str, today: dt.date | None,
               warnings: list[Warning]) -> tuple[list[str], list[str]]:
    starts, ends = [], []
    for el in elements(details, "CINPlanDates")[:20]:
        r = Reader(el, f"{where}/{relative_path(el, details)}", today, warnings)
        start = r.date("CINPlanStartDate")
        if start:
            starts.append(start)
            end = r.date("CINPlanEndDate")
            if end:
                ends.append(end)
    return starts, ends


def _assessment(el: Element, where: str, today: dt.date | None, emit: Emit) -> None:
    warnings: list[Warning] = []
    r = Reader(el, where, today, warnings)
    start = r.required_date("AssessmentActualStartDate")
    factors = []
    for group in elements(el, "FactorsIdentifiedAtAssessment"):
        for i, f in enumerate(elements(group, "AssessmentFactors"), start=1):
            value = code((f.text or "").strip(), f"{where}/FactorsIdentifiedAtAssessment/AssessmentFactors[{i}]",
                         codes.ASSESSMENT_FACTOR, warnings)
            if value and value not in factors:
                factors.append(value)
    factors = factors[:60]
    gradings, categories = codes.assessment_risk(factors)
    payload = {"actual_start_date": start, "internal_review_date": r.date("AssessmentInternalReviewDate"),
               "authorisation_date": r.date("AssessmentAuthorisationDate"), "factors": factors}
    emit("social_care.assessment", f"assessment:{start}", start, payload, warnings, gradings, categories)


def _section47(el: Element, where: str, today: dt.date | None, emit: Emit) -> None:
    warnings: list[Warning] = []
    r = Reader(el, where, today, warnings)
    start = r.required_date("S47ActualStartDate")
    payload = {"actual_start_date": start, "initial_cp_conference_target_date": r.date("InitialCPCtarget",
                                                                                        future_ok=True),
               "initial_cp_conference_date": r.date("DateOfInitialCPC"), "icpc_not_required": r.flag("ICPCnotRequired")}
    # A section 47 enquiry means reasonable cause to suspect significant harm (Children Act 1989 s47).
    emit("social_care.section47_enquiry", f"s47:{start}", start, payload, warnings, [codes.CHILD_PROTECTION])


def _plan(el: Element, scope: ChildScope, emit: Emit) -> None:
    """Started, one reviewed per CPPreviewDate, and ended when CPPendDate is given; a bad start refuses all three."""
    where = relative_path(el, scope.child_el)
    warnings: list[Warning] = []
    r = Reader(el, where, scope.today, warnings)
    try:
        start = r.required_date("CPPstartDate")
    except FieldProblem as p:
        scope.reject(el, p)
        return
    initial = r.code("InitialCategoryOfAbuse", codes.ABUSE_CATEGORY)
    latest = r.code("LatestCategoryOfAbuse", codes.ABUSE_CATEGORY)
    previous = r.count("NumberOfPreviousCPP")
    current = [_category(category)] if (category := latest or initial) else []
    key = f"cpp:{start}"
    started = {"start_date": start, "initial_category_of_abuse": initial, "number_of_previous_cpp": previous}
    emit("social_care.child_protection_plan_started", f"{key}:started", start, started, warnings,
         [codes.CHILD_PROTECTION], [_category(initial)] if initial else [])
    reviews = _reviews(el, scope)
    for review in reviews:
        payload = {"start_date": start, "review_dates": [review]}
        emit("social_care.child_protection_plan_reviewed", f"{key}:review:{review}", review, payload, warnings,
             [codes.CHILD_PROTECTION], current)
    if one_or_none(el, "CPPendDate") is None:
        return

    def ended() -> None:
        end = r.required_date("CPPendDate")
        if end < start:
            raise FieldProblem("CPPendDate", "before the plan's start date")
        payload = {**started, "end_date": end, "latest_category_of_abuse": latest, "review_dates": reviews[:50]}
        # The plan has ended (the protocol judges how much lower that is); its categories remain relevant history.
        emit("social_care.child_protection_plan_ended", f"{key}:ended", end, payload, warnings, [codes.PLAN_ENDED],
             current)

    scope.attempt(el, ended)


def _reviews(plan: Element, scope: ChildScope) -> list[str]:
    """Review dates in date order, each once; a bad one is refused by name and the others still flow."""
    out: set[str] = set()
    try:
        group = one(plan, "Reviews")
    except FieldProblem as p:
        scope.reject(plan, p)
        return []
    for i, el in enumerate(elements(group, "CPPreviewDate"), start=1):
        field_name = f"Reviews/CPPreviewDate[{i}]"
        try:
            out.add(required_date((el.text or "").strip(), field_name, "iso", scope.today))
        except FieldProblem as p:
            scope.reject(plan, p, el)
    return sorted(out)


def _closure(details: Element, where: str, today: dt.date | None, emit: Emit) -> None:
    warnings: list[Warning] = []
    r = Reader(details, where, today, warnings)
    closed = r.required_date("CINclosureDate")
    payload = {"closure_date": closed, "reason_for_closure": r.code("ReasonForClosure", codes.REASON_FOR_CLOSURE)}
    emit("social_care.case_closed", "closure", closed, payload, warnings, [codes.CASE_CLOSED])


def _category(abuse_code: str) -> str:
    return codes.ABUSE_CATEGORY.get(abuse_code, "other")
