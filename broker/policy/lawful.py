"""Is a rule legally complete? Pure checks of a rule's lawful bases against what it shares, from whom, to whom.

Each check states a requirement of UK GDPR or the DPA 2018 and refuses with a plain message citing the provision
(broker/policy/README.md explains each). A rule names two sides:

- the discloser: the source agency, whose bases are the rule's `lawful_basis`. Police records were collected for
  the law enforcement purposes (DPA 2018 Part 3); every other agency processes under UK GDPR.
- the recipient: each subscriber the rule names, processing under its `regime` (UK GDPR, or Part 3 for a police
  subscriber acting for the law enforcement purposes), on the rule's `recipient_basis` (when omitted, a UK GDPR
  recipient relies on the same UK GDPR bases as the discloser; a Part 3 recipient must name its own).

These are aids, not legal advice: the partnership's DPO owns the protocol.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from adapters.kit.registry import AGENCIES
from broker.policy.codes import (
    ARTICLE_6,
    ARTICLE_9,
    BY_CODE,
    CONSENT,
    CRIMINAL,
    DUTY_TO_DISCLOSE,
    OVERRIDING_DUTIES,
    PART_3,
    SCHEDULE_1,
    SCHEDULE_1_PART_2,
    SCHEDULE_8,
    SPECIAL_CATEGORY,
    STATUTES,
)

# Bodies bound by Children Act 1989 s47(9), by agency: s47(11) names local authorities and NHS bodies only.
S47_11_AGENCIES = frozenset({"health", "social_care"})


@dataclass(frozen=True, slots=True)
class Recipient:
    name: str
    agency: str  # the partner's agency
    regime: str  # uk_gdpr | dpa2018_part3
    confidentiality: str | None  # DPA 2018 s11(1): health_professional | social_work_professional | ...


@dataclass(frozen=True, slots=True)
class RuleFacts:
    """What the checks read about one rule."""

    discloser_basis: tuple[str, ...]
    recipient_basis: tuple[str, ...] | None
    sources: frozenset[str]  # agencies whose events the rule can share
    recipients: tuple[Recipient, ...]
    shared_labels: frozenset[str]  # classifications the rule releases or masks
    under_18_only: bool
    para18_reason: str | None
    # Released or masked leaves the schema marks as able to hold special category (x-special-category) or criminal
    # offence data (x-criminal) whatever their label: CIN assessment factors, risk categories, SEN needs, roles.
    special_leaves: frozenset[str] = frozenset()
    criminal_leaves: frozenset[str] = frozenset()
    # The rule records a review that the narrative it releases holds neither (rule key `narrative_review`).
    narrative_reviewed: bool = False
    s47_requested: bool = False  # condition s47_request: the LA has called upon the disclosing body
    adult_at_risk_only: bool = False  # condition adult_at_risk: a recorded determination that the adult is at risk

    def special(self) -> list[str]:
        """What makes the rule's release special category processing (Art 9): labels, marked leaves, narrative."""
        return _listed(self.shared_labels & SPECIAL_CATEGORY, self.special_leaves, self._narrative())

    def criminal(self) -> list[str]:
        """What makes the rule's release criminal offence data processing (Art 10)."""
        return _listed(self.shared_labels & CRIMINAL, self.criminal_leaves, self._narrative())

    def _narrative(self) -> frozenset[str]:
        # Free text by a professional can hold anything: a diagnosis, an allegation. Unreviewed, it is both.
        unreviewed = "narrative" in self.shared_labels and not self.narrative_reviewed
        return frozenset({"narrative"}) if unreviewed else frozenset()


def _listed(labels: frozenset[str], leaves: frozenset[str], narrative: frozenset[str]) -> list[str]:
    """Labels first, then at most four marked leaves (the rest counted), then narrative: a readable reason."""
    paths = sorted(leaves)
    shown = paths[:4] + ([f"{len(paths) - 4} more marked fields"] if len(paths) > 4 else [])
    return sorted(labels) + shown + sorted(narrative)


Problem = tuple[str, str]  # (rule key the problem sits under, reason)


def possible_sources(declared: Iterable[str] | None, event_types: Iterable[str]) -> frozenset[str]:
    """The agencies a rule may receive events from: its `source_agencies`, else what its event types allow
    (`police.*` from the police...; `person.*` from anyone, e.g. a `person.linked` raised by a police record)."""
    if declared is not None:
        return frozenset(declared)
    out: set[str] = set()
    for event_type in event_types:
        family = event_type.split(".", 1)[0]
        out |= {family} if family in AGENCIES else set(AGENCIES)
    return frozenset(out)


def _names(codes: Iterable[str]) -> str:
    return ", ".join(sorted(codes))


def _uk_gdpr_side(basis: set[str], key: str, facts: RuleFacts, who: str) -> list[Problem]:
    """The UK GDPR requirements for one controller's processing (the discloser's or a recipient's)."""
    out: list[Problem] = []
    art6 = basis & ARTICLE_6
    if len(art6) != 1:
        out.append((key, f"{who}: cite exactly one UK GDPR Art 6 basis ({_names(ARTICLE_6)}); "
                         f"{'none' if not art6 else _names(art6)} cited"))
    consent = CONSENT in basis
    if consent and basis & STATUTES:
        out.append((key, f"{who}: a rule relying on consent (Art 6(1)(a)) must not cite a statutory duty or power: "
                         "where the Act is the basis consent is not; write two rules"))
    if "uk_gdpr_art6_1_c" in basis and not any(BY_CODE[c].kind == DUTY_TO_DISCLOSE for c in basis):
        out.append((key, f"{who}: uk_gdpr_art6_1_c (legal obligation) needs the law that imposes it (Art 6(3)): "
                         "cite the duty to disclose (e.g. children_act_1989_s47_9, domestic_abuse_act_2021_s49a); "
                         "a duty to co-operate or a power is public task, uk_gdpr_art6_1_e"))
    if basis & OVERRIDING_DUTIES and "uk_gdpr_art6_1_c" not in basis:
        out.append((key, f"{who}: a duty to disclose ({_names(basis & OVERRIDING_DUTIES)}) is a legal obligation: "
                         "cite uk_gdpr_art6_1_c (the Art 21 right to object does not apply to it)"))
    if "uk_gdpr_art9_2_b" in basis and "dpa2018_sch1_para1" not in basis:
        out.append((key, f"{who}: uk_gdpr_art9_2_b needs DPA 2018 Schedule 1 paragraph 1 (s10(2)): cite "
                         "dpa2018_sch1_para1"))
    if "uk_gdpr_art9_2_g" in basis and not basis & SCHEDULE_1_PART_2:
        out.append((key, f"{who}: uk_gdpr_art9_2_g needs a DPA 2018 Schedule 1 Part 2 condition (s10(3)): cite "
                         f"one of {_names(SCHEDULE_1_PART_2)} (para 6 for a statutory function such as s17 or s47 "
                         "work, para 10 for a disclosure to prevent or detect crime, para 18 for safeguarding "
                         "without consent)"))
    if "uk_gdpr_art9_2_h" in basis and "dpa2018_sch1_para2" not in basis:
        out.append((key, f"{who}: uk_gdpr_art9_2_h needs DPA 2018 Schedule 1 paragraph 2 (health or social care "
                         "purposes, s10(2)): cite dpa2018_sch1_para2"))
    special = facts.special()
    if special and not basis & ARTICLE_9:
        out.append((key, f"{who}: releases special category data ({', '.join(special)}): cite a UK GDPR Art 9(2) "
                         f"condition ({_names(ARTICLE_9)}) with its DPA 2018 Schedule 1 condition"))
    criminal = facts.criminal()
    if criminal and not basis & SCHEDULE_1:
        if consent:
            out.append((key, f"{who}: releases criminal offence data on consent: consent to it is DPA 2018 "
                             "Schedule 1 paragraph 29, not Art 6(1)(a) (Art 10, s10(5)): cite dpa2018_sch1_para29 "
                             f"(the data: {', '.join(criminal)})"))
        else:
            out.append((key, f"{who}: releases criminal offence data (UK GDPR Art 10): cite a DPA 2018 Schedule 1 "
                             "condition (s10(5): any of Parts 1-3, e.g. dpa2018_sch1_para6, dpa2018_sch1_para10, "
                             f"dpa2018_sch1_para18) (the data: {', '.join(criminal)})"))
    if "dpa2018_sch1_para18" in basis and consent:
        out.append((key, f"{who}: dpa2018_sch1_para18 covers processing without consent (para 18(1)(c)): a rule "
                         "relying on consent cannot cite it"))
    return out


def _part3_side(basis: set[str], key: str, facts: RuleFacts, who: str) -> list[Problem]:
    """DPA 2018 Part 3 requirements for law enforcement processing (s35)."""
    out: list[Problem] = []
    missing = {"dpa2018_s31", "dpa2018_s35_2_b"} - basis
    if missing:
        out.append((key, f"{who}: processing for the law enforcement purposes is under DPA 2018 Part 3: cite "
                         f"{_names(missing)} (s31 purposes; s35(2)(b) necessary for a law enforcement task)"))
    special = facts.special()
    if special and not ("dpa2018_s35_5" in basis and basis & SCHEDULE_8):
        out.append((key, f"{who}: sensitive processing ({', '.join(special)}) under Part 3 (s35(3)-(5), s35(8)) "
                         "must be strictly necessary with "
                         f"a Schedule 8 condition and an appropriate policy document: cite dpa2018_s35_5 and one of "
                         f"{_names(SCHEDULE_8)}"))
    return out


def _para18(facts: RuleFacts) -> list[Problem]:
    cited = {"dpa2018_sch1_para18", "dpa2018_sch8_para4"} & (set(facts.discloser_basis) |
                                                             set(facts.recipient_basis or ()))
    if not cited:
        return []
    out: list[Problem] = []
    if not (facts.under_18_only or facts.adult_at_risk_only):
        out.append(("conditions", f"{_names(cited)} covers a child or an adult at risk (Sch 1 para 18(1)(b) and "
                                  "(3), Sch 8 para 4(1)(b) and (3)): add subject_under_18: true, or adult_at_risk: "
                                  "true (a recorded determination that the adult is at risk)"))
    if facts.para18_reason is None:
        out.append(("para18_reason", f"{_names(cited)} applies only to processing without consent for a reason in "
                                     "para 18(2): record it with para18_reason (consent_cannot_be_given, "
                                     "cannot_reasonably_obtain_consent or consent_would_prejudice_protection)"))
    return out


def _duties(facts: RuleFacts) -> list[Problem]:
    """Duties to disclose bind named bodies towards named recipients: check both ends."""
    basis = set(facts.discloser_basis)
    out: list[Problem] = []
    agencies = {r.agency for r in facts.recipients}
    if "children_act_1989_s47_9" in basis:
        if not facts.s47_requested:
            out.append(("conditions", "children_act_1989_s47_9 binds a body only when the local authority calls upon "
                                      "it to assist its enquiries (Children Act 1989 s47(9)): add s47_request: true"))
        if not facts.sources <= S47_11_AGENCIES:
            out.append(("source_agencies", "children_act_1989_s47_9 binds only the bodies in s47(11) (local "
                                           "authorities and NHS bodies; not the police or schools): restrict "
                                           "source_agencies to health and social_care"))
        if agencies - {"social_care"}:
            out.append(("subscribers", "children_act_1989_s47_9 is a duty to assist the local authority's enquiries: "
                                       "only the local authority may receive under it (Children Act 1989 s47(9))"))
    if "domestic_abuse_act_2021_s49a" in basis:
        if facts.sources != {"police"}:
            out.append(("source_agencies", "domestic_abuse_act_2021_s49a binds chief officers of police (Domestic "
                                           "Abuse Act 2021 s49A(1)): restrict source_agencies to police"))
        if agencies - {"education"}:
            out.append(("subscribers", "domestic_abuse_act_2021_s49a requires notifying the child's educational "
                                       "establishment (s49A(2)-(3)): only education subscribers may receive "
                                       "under it"))
        if not facts.under_18_only:
            out.append(("conditions", "domestic_abuse_act_2021_s49a concerns a child (under 18, s49A(4)): add "
                                      "subject_under_18: true"))
    if "health_and_social_care_act_2012_s251b" in basis and (
            not facts.sources <= {"health"} or agencies - {"health"}):
        out.append(("lawful_basis", "health_and_social_care_act_2012_s251b is a duty between health and adult social "
                                    "care commissioners and providers (Health and Social Care Act 2012 s251B-"
                                    "s251C): restrict source_agencies to health and the subscribers to health"))
    return out


def rule_problems(facts: RuleFacts) -> list[Problem]:
    """Every legal requirement the rule fails, as (key, reason); empty when the rule is complete."""
    basis = set(facts.discloser_basis)
    out: list[Problem] = []
    regimes = {r.regime for r in facts.recipients}
    if len(regimes) > 1:
        out.append(("subscribers", "names subscribers processing under UK GDPR and under DPA 2018 Part 3: their "
                                   "bases differ, write one rule per regime"))
    to_le = "dpa2018_part3" in regimes
    police = "police" in facts.sources
    uk_gdpr_disclosers = bool(facts.sources - {"police"}) or (police and "uk_gdpr" in regimes)
    if uk_gdpr_disclosers:
        out += _uk_gdpr_side(basis, "lawful_basis", facts, "discloser")
    if police and to_le:
        out += _part3_side(basis, "lawful_basis", facts, "discloser (police, for the law enforcement purposes)")
    if police and "uk_gdpr" in regimes and not ("dpa2018_s36_4" in basis and basis & STATUTES):
        out.append(("lawful_basis", "police data collected for the law enforcement purposes may be processed for "
                                    "another purpose only where authorised by law (DPA 2018 s36(4)): cite "
                                    "dpa2018_s36_4 and the provision that authorises it, or restrict "
                                    "source_agencies"))
    if not police and not to_le and basis & PART_3:
        out.append(("lawful_basis", f"cites DPA 2018 Part 3 codes ({_names(basis & PART_3)}) but no part of the "
                                    "rule is law enforcement processing (DPA 2018 s31)"))
    if "uk_gdpr_art9_2_h" in (basis | set(facts.recipient_basis or ())):
        unbound = [r.name for r in facts.recipients if r.confidentiality is None]
        if unbound:
            out.append(("subscribers", "uk_gdpr_art9_2_h needs processing by or under the responsibility of a health "
                                       "or social work professional, or a person under a duty of confidentiality "
                                       f"(DPA 2018 s11(1), Art 9(3)): give {', '.join(unbound)} a confidentiality"))
        if not facts.sources <= {"health", "social_care"}:
            out.append(("source_agencies", "uk_gdpr_art9_2_h serves health or social care processing (Sch 1 para "
                                           "2): restrict source_agencies to health and social_care"))
    out += _recipient(facts, to_le)
    out += _para18(facts)
    out += _duties(facts)
    return out


def _recipient(facts: RuleFacts, to_le: bool) -> list[Problem]:
    if facts.recipient_basis is None:
        if to_le:
            return [("recipient_basis", "the subscriber processes under DPA 2018 Part 3 (law enforcement), not on the "
                                        "discloser's UK GDPR basis: name its basis in recipient_basis (dpa2018_s31, "
                                        "dpa2018_s35_2_b, and for health data dpa2018_s35_5 with a Schedule 8 "
                                        "condition)")]
        return []
    basis = set(facts.recipient_basis)
    if to_le:
        out = _part3_side(basis, "recipient_basis", facts, "recipient (DPA 2018 Part 3)")
        uk = basis & (ARTICLE_6 | ARTICLE_9)
        if uk:
            out.append(("recipient_basis", f"recipient (DPA 2018 Part 3): {_names(uk)} are UK GDPR bases; a "
                                           "competent authority processing for the law enforcement purposes relies "
                                           "on s35, not Art 6 or 9"))
        return out
    return _uk_gdpr_side(basis, "recipient_basis", facts, "recipient")


def overriding_duty(basis: Sequence[str]) -> str | None:
    """The duty to disclose the rule may cite to share despite an objection or refusal, if any (with Art 6(1)(c)
    cited: the compiler makes sure)."""
    return next((c for c in basis if c in OVERRIDING_DUTIES), None) if "uk_gdpr_art6_1_c" in basis else None


def relies_on_para18_alone(basis: Sequence[str]) -> bool:
    """Schedule 1 paragraph 18 is the rule's only Schedule 1 condition: it then holds only without consent."""
    return "dpa2018_sch1_para18" in basis and not (set(basis) & SCHEDULE_1) - {"dpa2018_sch1_para18"}
