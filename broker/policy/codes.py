"""The protocol's fixed vocabulary: lawful basis codes (the one list), risk order, mask kinds, field actions.

Every lawful basis code the broker knows is a `Basis` in `BASES` below: its words, its legislation.gov.uk citation,
which part of the law it belongs to, and, for an Act's provision, whether it is a duty to disclose, a duty to
co-operate or a permissive power. The protocol schema (`schemas/protocol.schema.json`), the event schema's
`lawful_basis` block (`schemas/safeguarding-event.schema.json`, which spells some codes its own way: `6(1)(e)`,
`para_18_safeguarding_children`) and broker/policy/README.md are derived from or checked against this list; unit
tests fail when they drift (tests/policy/test_lawful_basis.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.policy import masks

LEG = "https://www.legislation.gov.uk"
UK_GDPR = f"{LEG}/eur/2016/679"
DPA = f"{LEG}/ukpga/2018/12"

# Groups: which part of the law a code belongs to.
ART6 = "uk_gdpr_article_6"  # a lawful basis for any personal data
ART9 = "uk_gdpr_article_9"  # a condition for special category data
SCH1_PART1 = "dpa2018_schedule_1_part_1"  # conditions for Art 9(2)(b), (h), (i), (j); also serve Art 10
SCH1_PART2 = "dpa2018_schedule_1_part_2"  # substantial public interest conditions for Art 9(2)(g); also Art 10
SCH1_PART3 = "dpa2018_schedule_1_part_3"  # additional conditions for criminal offence data (Art 10) only
PART3 = "dpa2018_part_3"  # law enforcement processing by competent authorities (s29-s81)
SCH8 = "dpa2018_schedule_8"  # conditions for sensitive processing under Part 3 (s35(5))
STATUTE = "statute"  # a duty or power in an Act: the function the processing serves, or a duty to disclose

# Kinds of statutory provision, as far as sharing information is concerned.
DUTY_TO_DISCLOSE = "duty_to_disclose"  # the Act requires this disclosure when its trigger is met
DUTY_TO_COOPERATE = "duty_to_cooperate"  # a duty to co-operate or to safeguard: sharing may follow, none is required
POWER = "permissive_power"  # a function or power under which the body may share what is necessary; never a must
KINDS = (DUTY_TO_DISCLOSE, DUTY_TO_COOPERATE, POWER)


@dataclass(frozen=True, slots=True)
class Basis:
    code: str
    title: str  # the words an IG officer reads in `explain`, the audit export and the IG page
    group: str
    citation: str  # legislation.gov.uk address of the provision
    kind: str | None = None  # for STATUTE: DUTY_TO_DISCLOSE | DUTY_TO_COOPERATE | POWER
    # A duty to disclose that holds whatever the data subject wants: a legal obligation (UK GDPR Art 6(1)(c)), to
    # which the Art 21 right to object does not apply. Only these may be cited to share despite an objection.
    overrides_objection: bool = False
    event_field: str | None = None  # the event schema's lawful_basis property holding this code...
    event_value: str | None = None  # ...and how it is spelt there (None: as the code)
    note: str = ""  # who the provision binds and when it applies, for the README and `explain`


def _statute(code: str, title: str, citation: str, kind: str, note: str, *, overrides: bool = False) -> Basis:
    return Basis(code, title, STATUTE, citation, kind, overrides, "statutory_gateways", code, note)


BASES: tuple[Basis, ...] = (
    # --- UK GDPR Article 6(1): one per disclosure ------------------------------------------------------------------
    Basis("uk_gdpr_art6_1_a", "UK GDPR Art 6(1)(a): consent", ART6, f"{UK_GDPR}/article/6",
          event_field="article_6", event_value="6(1)(a)",
          note="Freely given, specific, informed, unambiguous, and as easy to withdraw (Art 7): a withdrawal stops "
               "the sharing."),
    Basis("uk_gdpr_art6_1_c", "UK GDPR Art 6(1)(c): legal obligation", ART6, f"{UK_GDPR}/article/6",
          event_field="article_6", event_value="6(1)(c)",
          note="Only where a law requires this processing (Art 6(3)): cite the duty to disclose. The Art 21 right "
               "to object does not apply."),
    Basis("uk_gdpr_art6_1_d", "UK GDPR Art 6(1)(d): vital interests", ART6, f"{UK_GDPR}/article/6",
          event_field="article_6", event_value="6(1)(d)",
          note="To protect someone's life, where no other basis serves (Recital 46): an emergency, case by case."),
    Basis("uk_gdpr_art6_1_e", "UK GDPR Art 6(1)(e): public task", ART6, f"{UK_GDPR}/article/6",
          event_field="article_6", event_value="6(1)(e)",
          note="A task or function with a basis in law (DPA 2018 s8). An objection (Art 21(1)) stops the processing "
               "unless the controller shows compelling legitimate grounds: a recorded, case-by-case decision."),
    # --- UK GDPR Article 9(2): special category data -----------------------------------------------------------------
    Basis("uk_gdpr_art9_2_a", "UK GDPR Art 9(2)(a): explicit consent", ART9, f"{UK_GDPR}/article/9",
          event_field="article_9", event_value="9(2)(a)"),
    Basis("uk_gdpr_art9_2_b", "UK GDPR Art 9(2)(b): employment, social security and social protection law", ART9,
          f"{UK_GDPR}/article/9", event_field="article_9", event_value="9(2)(b)",
          note="Needs DPA 2018 Schedule 1 paragraph 1 (s10(2))."),
    Basis("uk_gdpr_art9_2_c", "UK GDPR Art 9(2)(c): vital interests, the data subject incapable of consenting", ART9,
          f"{UK_GDPR}/article/9", event_field="article_9", event_value="9(2)(c)",
          note="Only where the data subject is physically or legally incapable of giving consent."),
    Basis("uk_gdpr_art9_2_g", "UK GDPR Art 9(2)(g): substantial public interest", ART9, f"{UK_GDPR}/article/9",
          event_field="article_9", event_value="9(2)(g)",
          note="Needs a DPA 2018 Schedule 1 Part 2 condition (s10(3)): paragraph 6, 10 or 18, for example."),
    Basis("uk_gdpr_art9_2_h", "UK GDPR Art 9(2)(h): health or social care", ART9, f"{UK_GDPR}/article/9",
          event_field="article_9", event_value="9(2)(h)",
          note="Needs DPA 2018 Schedule 1 paragraph 2 (s10(2)) and processing by or under the responsibility of a "
               "health or social work professional or another person under a duty of confidentiality (s11(1), "
               "Art 9(3))."),
    # --- DPA 2018 Schedule 1 ----------------------------------------------------------------------------------------
    Basis("dpa2018_sch1_para1", "DPA 2018 Schedule 1 paragraph 1: employment, social security and social protection",
          SCH1_PART1, f"{DPA}/schedule/1/paragraph/1", event_field="dpa_2018_schedule_1",
          event_value="para_1_employment_social_protection", note="Needs an appropriate policy document."),
    Basis("dpa2018_sch1_para2", "DPA 2018 Schedule 1 paragraph 2: health or social care purposes", SCH1_PART1,
          f"{DPA}/schedule/1/paragraph/2", event_field="dpa_2018_schedule_1", event_value="para_2_health_social_care",
          note="With Art 9(2)(h); the recipient owes a duty of confidentiality (s11(1))."),
    Basis("dpa2018_sch1_para6", "DPA 2018 Schedule 1 paragraph 6: statutory and government purposes", SCH1_PART2,
          f"{DPA}/schedule/1/paragraph/6", event_field="dpa_2018_schedule_1", event_value="para_6_statutory_purposes",
          note="Necessary for a function conferred by an enactment or rule of law (s17, s47 work) and for reasons of "
               "substantial public interest; needs an appropriate policy document (Sch 1 para 5)."),
    Basis("dpa2018_sch1_para10", "DPA 2018 Schedule 1 paragraph 10: preventing or detecting unlawful acts",
          SCH1_PART2, f"{DPA}/schedule/1/paragraph/10", event_field="dpa_2018_schedule_1",
          event_value="para_10_unlawful_acts",
          note="Processing that must be done without consent so as not to prejudice prevention or detection; a "
               "disclosure to a competent authority (the police) needs no appropriate policy document (para 10(2))."),
    Basis("dpa2018_sch1_para18", "DPA 2018 Schedule 1 paragraph 18: safeguarding of children and of individuals at "
          "risk", SCH1_PART2, f"{DPA}/schedule/1/paragraph/18", event_field="dpa_2018_schedule_1",
          event_value="para_18_safeguarding_children",
          note="Protecting a child, or an adult at risk, from harm; processing without consent for a reason in para "
               "18(2) (consent cannot be given, cannot reasonably be obtained, or would prejudice the protection); "
               "needs an appropriate policy document."),
    Basis("dpa2018_sch1_para29", "DPA 2018 Schedule 1 paragraph 29: consent (criminal offence data)", SCH1_PART3,
          f"{DPA}/schedule/1/paragraph/29", event_field="dpa_2018_schedule_1", event_value="para_29_consent",
          note="The condition for criminal offence data (Art 10) when the data subject has consented."),
    Basis("dpa2018_sch1_para30", "DPA 2018 Schedule 1 paragraph 30: protecting an individual's vital interests "
          "(criminal offence data)", SCH1_PART3, f"{DPA}/schedule/1/paragraph/30",
          event_field="dpa_2018_schedule_1", event_value="para_30_vital_interests",
          note="The data subject physically or legally incapable of giving consent."),
    # --- DPA 2018 Part 3: law enforcement processing ---------------------------------------------------------------
    Basis("dpa2018_s31", "DPA 2018 s31: the law enforcement purposes", PART3, f"{DPA}/section/31",
          event_field="dpa_2018_part_3", event_value="s31_law_enforcement_purposes",
          note="Prevention, investigation, detection or prosecution of criminal offences, execution of penalties, "
               "safeguarding against threats to public security: a competent authority processing for these is "
               "under Part 3, not UK GDPR."),
    Basis("dpa2018_s35_2_b", "DPA 2018 s35(2)(b): necessary for a law enforcement task of a competent authority",
          PART3, f"{DPA}/section/35", event_field="dpa_2018_part_3", event_value="s35_2_b_law_enforcement_task"),
    Basis("dpa2018_s35_5", "DPA 2018 s35(5): sensitive processing strictly necessary, with a Schedule 8 condition "
          "and an appropriate policy document", PART3, f"{DPA}/section/35", event_field="dpa_2018_part_3",
          event_value="s35_5_sensitive_processing"),
    Basis("dpa2018_s36_4", "DPA 2018 s36(4): police data reused for a purpose that is not law enforcement, as "
          "authorised by law", PART3, f"{DPA}/section/36", event_field="dpa_2018_part_3",
          event_value="s36_4_authorised_by_law",
          note="Cite the provision that authorises the reuse (e.g. Children Act 2004 s11, Domestic Abuse Act 2021 "
               "s49A); the recipient then processes under UK GDPR."),
    Basis("dpa2018_sch8_para1", "DPA 2018 Schedule 8 paragraph 1: judicial and statutory purposes", SCH8,
          f"{DPA}/schedule/8/paragraph/1", event_field="dpa_2018_part_3", event_value="sch8_para1_statutory_purposes"),
    Basis("dpa2018_sch8_para3", "DPA 2018 Schedule 8 paragraph 3: protecting individuals' vital interests", SCH8,
          f"{DPA}/schedule/8/paragraph/3", event_field="dpa_2018_part_3", event_value="sch8_para3_vital_interests"),
    Basis("dpa2018_sch8_para4", "DPA 2018 Schedule 8 paragraph 4: safeguarding of children and of individuals at "
          "risk", SCH8, f"{DPA}/schedule/8/paragraph/4", event_field="dpa_2018_part_3",
          event_value="sch8_para4_safeguarding",
          note="As Schedule 1 paragraph 18: a child or an adult at risk, without consent for a listed reason."),
    # --- Duties and powers in Acts ----------------------------------------------------------------------------------
    _statute("children_act_1989_s17", "Children Act 1989 s17: services for children in need",
             f"{LEG}/ukpga/1989/41/section/17", POWER,
             "The local authority's duty to provide services; it requires no partner to disclose anything."),
    _statute("children_act_1989_s47", "Children Act 1989 s47: enquiries where a child may be suffering significant "
             "harm", f"{LEG}/ukpga/1989/41/section/47", POWER,
             "The local authority's duty to make enquiries: a function under which it may share what the enquiry "
             "needs. What partners must provide is s47(9)."),
    _statute("children_act_1989_s47_9", "Children Act 1989 s47(9)-(11): duty to assist the local authority's s47 "
             "enquiries with information, if called upon", f"{LEG}/ukpga/1989/41/section/47", DUTY_TO_DISCLOSE,
             "Binds the bodies in s47(11) (local authorities, local housing authorities, NHS England, integrated "
             "care boards, NHS trusts and foundation trusts; not the police or schools), only when the authority "
             "conducting enquiries calls upon them, and not where unreasonable in all the circumstances (s47(10)).",
             overrides=True),
    _statute("children_act_2004_s10", "Children Act 2004 s10: co-operation to improve the well-being of children",
             f"{LEG}/ukpga/2004/31/section/10", DUTY_TO_COOPERATE,
             "Arrangements to co-operate; sharing under them remains necessary-and-proportionate, case by case."),
    _statute("children_act_2004_s11", "Children Act 2004 s11: arrangements to safeguard and promote the welfare of "
             "children", f"{LEG}/ukpga/2004/31/section/11", DUTY_TO_COOPERATE,
             "Bodies (including chief officers of police and NHS bodies) discharge their functions having regard to "
             "safeguarding; it requires no particular disclosure."),
    _statute("crime_and_disorder_act_1998_s115", "Crime and Disorder Act 1998 s115: power to disclose to a relevant "
             "authority for the purposes of the Act", f"{LEG}/ukpga/1998/37/section/115", POWER,
             "A power, never a duty: it removes a lack of power, not the duty of confidence or data protection law."),
    _statute("education_act_1996_s436a", "Education Act 1996 s436A: identifying children not receiving education",
             f"{LEG}/ukpga/1996/56/section/436A", POWER,
             "The local authority's duty to make arrangements to identify children missing education: a function "
             "under which it may share; the schools' duty to tell it is in the pupil registration regulations."),
    _statute("education_act_2002_s157", "Education Act 2002 s157: safeguarding in independent schools and academies "
             "(independent school standards)", f"{LEG}/ukpga/2002/32/section/157", DUTY_TO_COOPERATE,
             "The proprietor's safeguarding arrangements; sharing follows from them, none is required by it."),
    _statute("education_act_2002_s175", "Education Act 2002 s175: safeguarding duties of local authorities and "
             "maintained schools", f"{LEG}/ukpga/2002/32/section/175", DUTY_TO_COOPERATE,
             "Functions exercised with a view to safeguarding; sharing follows from them, none is required by it."),
    _statute("domestic_abuse_act_2021_s49a", "Domestic Abuse Act 2021 s49A: police duty to notify a child's school "
             "of domestic abuse (Operation Encompass)", f"{LEG}/ukpga/2021/17/section/49A", DUTY_TO_DISCLOSE,
             "Inserted by the Victims and Prisoners Act 2024 s20: where a member of the force has reasonable grounds "
             "to believe a child (under 18) may be a victim of domestic abuse, the child's school is notified as "
             "soon as reasonably practicable.", overrides=True),
    _statute("health_and_social_care_act_2012_s251b", "Health and Social Care Act 2012 s251B: duty to share "
             "information for an individual's direct care", f"{LEG}/ukpga/2012/7/section/251B", DUTY_TO_DISCLOSE,
             "Between health and adult social care commissioners and providers, in the individual's best interests; "
             "it does not apply where the individual objects or would be likely to object, nor to anonymous-access "
             "services such as sexual health (s251B(4)): never an override."),
)

BY_CODE: dict[str, Basis] = {b.code: b for b in BASES}
# Lawful basis codes a rule may cite, with the words an IG officer reads in `explain` and the audit.
LAWFUL_BASIS: dict[str, str] = {b.code: b.title for b in BASES}
# Older spellings a protocol may still use; the compiler expands them (decisions record the expansion).
ALIASES: dict[str, tuple[str, ...]] = {"consent": ("uk_gdpr_art6_1_a", "uk_gdpr_art9_2_a")}


def _group(*groups: str) -> frozenset[str]:
    return frozenset(b.code for b in BASES if b.group in groups)


ARTICLE_6 = _group(ART6)
ARTICLE_9 = _group(ART9)
SCHEDULE_1 = _group(SCH1_PART1, SCH1_PART2, SCH1_PART3)  # any of these meets Art 10 (DPA 2018 s10(5))
SCHEDULE_1_PART_2 = _group(SCH1_PART2)
SCHEDULE_8 = _group(SCH8)
PART_3 = _group(PART3, SCH8)
STATUTES = _group(STATUTE)
OVERRIDING_DUTIES = frozenset(b.code for b in BASES if b.overrides_objection)
# Kept for callers that list the Acts a rule may cite (none of them overrides an objection by itself).
STATUTORY_GATEWAYS = tuple(b.code for b in BASES if b.group == STATUTE)
CONSENT = "uk_gdpr_art6_1_a"

REGIMES = ("uk_gdpr", "dpa2018_part3")
CONFIDENTIALITY = ("health_professional", "social_work_professional", "duty_of_confidence")  # DPA 2018 s11(1)
# Schedule 1 paragraph 18(2): why the processing is carried out without consent.
PARA18_REASONS: dict[str, str] = {
    "consent_cannot_be_given": "para 18(2)(a): in the circumstances, consent cannot be given by the data subject",
    "cannot_reasonably_obtain_consent": "para 18(2)(b): the controller cannot reasonably be expected to obtain "
                                        "consent",
    "consent_would_prejudice_protection": "para 18(2)(c): obtaining consent would prejudice the protection",
}


def event_schema_vocabulary() -> dict[str, frozenset[str]]:
    """What the event schema's lawful_basis block may hold, per property, as codes.py spells it there."""
    out: dict[str, set[str]] = {}
    for b in BASES:
        if b.event_field:
            out.setdefault(b.event_field, set()).add(b.event_value or b.code)
    return {k: frozenset(v) for k, v in out.items()}


def codes_of_event_basis(block: dict[str, object]) -> tuple[str, ...]:
    """An event's `lawful_basis` block (the source agency's assertion) as protocol codes, in BASES order."""
    asserted = set()
    for name, value in block.items():
        for v in value if isinstance(value, list) else [value]:
            asserted.add((name, v))
    return tuple(b.code for b in BASES if (b.event_field, b.event_value or b.code) in asserted)


# Classifications whose release needs more than an Article 6 basis. Leaves of other labels can hold such data too:
# the schema marks them (x-special-category, x-criminal; broker.schema.classification.leaf_markers), and narrative
# (free text) is treated as possibly both unless a rule records a review (lawful.RuleFacts.narrative_reviewed).
SPECIAL_CATEGORY = frozenset({"health", "demographic"})  # Art 9: health, ethnicity
# Art 10 / DPA 2018 s10(5): a Schedule 1 condition. Intelligence (DASH grading, PPN concerns and assessment) relates
# to alleged offences, which the ICO counts as criminal offence data, so it needs one as much as a recorded offence.
CRIMINAL = frozenset({"criminal", "intelligence"})

RISK_ORDER: dict[str, int] = {"unknown": 0, "none": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}

CONSENT_STATUSES = ("given", "refused", "withdrawn", "not_sought", "not_applicable", "unknown")
RESTRICTIVE_STATUSES = frozenset({"refused", "withdrawn"})

ACTIONS = ("release", "withhold", "mask")
MASK_KINDS = masks.MASK_KINDS  # the registry is broker/policy/masks.py MASKS; this name is kept for callers

REGISTRATION_KINDS = ("gp_practice", "school")
DELIVERY_MODES = ("kafka", "http-pull", "sse")
KEY_SUITES = {"x25519": 32, "mlkem768-x25519": 1184 + 32}  # raw public key length in bytes
