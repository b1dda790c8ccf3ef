"""DfE code lists for the CIN census and the SSDA903 return, and how they map to canonical sex and risk.

Data, not logic. Sources: the CIN census XML schemas (2022, 2024) and business and technical specifications
(2024 to 2025 replaced `GenderCurrent` 0/1/2/9 with `Sex` F/M/U), and the SSDA903 return guidance. An unrecognised
code is kept and flagged (`code.unrecognised`), not dropped: the lists change every year and the hub should still
see what the local authority sent. The gradings (what kind of factor, need or episode a record is) want review by
the hub's practice lead before production use; where each sits on the common scale is the protocol's.
"""

from __future__ import annotations

# CIN GenderCurrent (to 2023-24) and Sex (2024-25 on), and SSDA903 SEX (1, 2) -> FHIR administrative gender.
# GenderCurrent 0 is "not recorded or unborn", 9 "indeterminate" (FHIR: other).
GENDER_CURRENT = {"1": "male", "2": "female", "0": "unknown", "9": "other"}
SEX = {"M": "male", "F": "female", "U": "unknown"}
SSDA903_SEX = {"1": "male", "2": "female"}

ETHNICITY = frozenset({
    "WBRI", "WIRI", "WIRT", "WOTH", "WROM", "MWBC", "MWBA", "MWAS", "MOTH", "AIND", "APKN", "ABAN", "AOTH",
    "BCRB", "BAFR", "BOTH", "CHNE", "OOTH", "REFU", "NOBT",
})
DISABILITY = frozenset({"NONE", "MOB", "HAND", "PC", "INC", "COMM", "LD", "HEAR", "VIS", "BEH", "CON", "AUT", "DDA"})
UPN_UNKNOWN = frozenset({f"UN{n}" for n in range(1, 11)})  # CIN uses UN1-UN7; SSDA903 puts UN1-UN10 in its UPN column
REFERRAL_SOURCE = frozenset({
    "1A", "1B", "1C", "1D", "2A", "2B", "3A", "3B", "3C", "3D", "3E", "3F", "4", "5A", "5B", "5C", "5D", "6", "7",
    "8", "9", "10",
})
PRIMARY_NEED = frozenset({f"N{n}" for n in range(10)})
REASON_FOR_CLOSURE = frozenset({f"RC{n}" for n in range(1, 10)})  # RC9 (referred to early help) from 2023-24

# CIN category of abuse of a child protection plan -> canonical risk category.
ABUSE_CATEGORY = {"NEG": "neglect", "PHY": "physical_abuse", "EMO": "emotional_abuse", "SAB": "sexual_abuse",
                  "MUL": "multiple"}

# The kinds of assessment factor, the social care grading of an assessment (scale social_care_threshold; where each
# sits on the common scale is the protocol's risk_scales): harm to the child (abuse, neglect, exploitation, going
# missing, self-harm, FGM, faith-linked abuse, the child as the subject of domestic abuse), concerns (substance
# misuse, domestic abuse between adults, mental health, 9A, "other" (20), and any factor not on the list), needs
# (disability, illness, learning disability, young carer, private fostering, behaviour) and none identified (21).
HARM, CONCERN, NEED, NONE_FOUND = "harm_factors", "concern_factors", "need_factors", "no_factors"
FACTOR_ORDER = (NONE_FOUND, NEED, CONCERN, HARM)

# CIN AssessmentFactors -> (risk category or None, the kind of factor). A factor about a parent or another adult in
# the household maps to the parental_* category (the "toxic trio" reading MASH practice uses); disability, illness
# and learning-disability factors describe need, not harm, and add no category. 21 means "no factors identified".
ASSESSMENT_FACTOR: dict[str, tuple[str | None, str]] = {
    "1A": ("substance_misuse", CONCERN), "1B": ("parental_substance_misuse", CONCERN),
    "1C": ("parental_substance_misuse", CONCERN),
    "2A": ("substance_misuse", CONCERN), "2B": ("parental_substance_misuse", CONCERN),
    "2C": ("parental_substance_misuse", CONCERN),
    "3A": ("domestic_abuse", HARM), "3B": ("domestic_abuse", CONCERN), "3C": ("domestic_abuse", CONCERN),
    "4A": ("other", CONCERN), "4B": ("parental_mental_health", CONCERN), "4C": ("parental_mental_health", CONCERN),
    "5A": (None, NEED), "5B": (None, NEED), "5C": (None, NEED),
    "6A": (None, NEED), "6B": (None, NEED), "6C": (None, NEED),
    "7A": ("other", NEED),
    "8B": ("other", NEED), "8C": ("other", NEED), "8D": ("other", NEED), "8E": ("other", NEED),
    "8F": ("other", NEED),
    "9A": ("other", CONCERN),
    "10A": ("missing", HARM),
    "11A": ("child_sexual_exploitation", HARM),
    "12A": ("trafficking", HARM),
    "13A": ("gangs", HARM),
    "14A": ("other", NEED),
    "15A": ("self_harm", HARM),
    "16A": ("neglect", HARM),
    "17A": ("emotional_abuse", HARM),
    "18B": ("physical_abuse", HARM), "18C": ("physical_abuse", HARM),
    "19B": ("sexual_abuse", HARM), "19C": ("sexual_abuse", HARM),
    "20": ("other", CONCERN),
    "21": (None, NONE_FOUND),
    "22A": ("fgm", HARM),
    "23A": ("other", HARM),
    "24A": ("child_criminal_exploitation", HARM),
}

# SSDA903 code lists (episodes and missing files).
REASON_NEW_EPISODE = frozenset({"S", "P", "L", "T", "U", "B"})
LEGAL_STATUS = frozenset({"C1", "C2", "D1", "E1", "J1", "J2", "J3", "L1", "L2", "L3", "V2", "V3", "V4"})
CATEGORY_OF_NEED = frozenset({f"N{n}" for n in range(1, 9)})
PLACEMENT_PROVIDER = frozenset({f"PR{n}" for n in range(6)})
REASON_EPISODE_CEASED = frozenset({
    "X1", "E11", "E12", "E13", "E14", "E15", "E16", "E17", "E2", "E3", "E41", "E45", "E46", "E47", "E48", "E4A",
    "E4B", "E5", "E6", "E7", "E8", "E9",
})
REASON_PLACE_CHANGE = frozenset({
    "ALLEG", "APPRR", "CARPL", "CHILD", "CLOSE", "CREQB", "CREQO", "CUSTOD", "LAREQ", "OTHER", "PLACE", "PROVR",
    "STAND",
})
MISSING_KIND = {"M": "missing", "A": "away_from_placement"}

# The social care gradings (scale social_care_threshold), in the returns' own words; the protocol's risk_scales
# place them on the common scale, the adapters do not.
SCALE = "social_care_threshold"
# CIN PrimaryNeedCode -> the referral's grading (no code given: not stated, like N0).
PRIMARY_NEED_GRADING = {
    "N0": "need_not_stated", "N1": "need_abuse_or_neglect", "N2": "need_disability",
    "N3": "need_parental_illness_or_disability", "N4": "need_family_in_acute_stress", "N5": "need_family_dysfunction",
    "N6": "need_socially_unacceptable_behaviour", "N7": "need_low_income", "N8": "need_absent_parenting",
    "N9": "need_not_in_need",
}
REFERRAL_NFA = "referral_nfa"
CHILD_PROTECTION = "child_protection"  # a section 47 enquiry, a child protection plan started or reviewed
PLAN_ENDED, CASE_CLOSED = "child_protection_plan_ended", "case_closed"
LOOKED_AFTER, LEFT_CARE = "looked_after", "left_care"
MISSING_GRADING = {"missing": "missing_from_care", "away_from_placement": "away_from_placement"}


def referral_grading(need: str | None, nfa: bool | None) -> str:
    """No further action is the referral's outcome whatever its need; otherwise the primary need."""
    return REFERRAL_NFA if nfa else PRIMARY_NEED_GRADING.get(need or "N0", "need_not_stated")


def assessment_risk(factors: list[str]) -> tuple[list[str], list[str]]:
    """(gradings, categories) from assessment factor codes: each kind of factor found, gravest first (the protocol
    takes the highest it maps); an unrecognised factor counts as 'other', a concern. No factors: no grading."""
    pairs = [ASSESSMENT_FACTOR.get(f, ("other", CONCERN)) for f in factors]
    categories = sorted({c for c, _ in pairs if c})
    kinds = sorted({kind for _, kind in pairs}, key=FACTOR_ORDER.index, reverse=True)
    return kinds, categories
