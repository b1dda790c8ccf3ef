"""DfE code lists for the CIN census and the SSDA903 return, and how they map to canonical sex and risk.

Data, not logic. Sources: the CIN census XML schemas (2022, 2024) and business and technical specifications
(2024 to 2025 replaced `GenderCurrent` 0/1/2/9 with `Sex` F/M/U), and the SSDA903 return guidance. An unrecognised
code is kept and flagged (`code.unrecognised`), not dropped: the lists change every year and the hub should still
see what the local authority sent. The risk mappings want review by the hub's practice lead before production use.
"""

from __future__ import annotations

LEVELS = ("unknown", "none", "low", "medium", "high", "critical")

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

# CIN AssessmentFactors -> (risk category or None, risk level). A factor about a parent or another adult in the
# household maps to the parental_* category (the "toxic trio" reading MASH practice uses); disability, illness and
# learning-disability factors describe need, not harm, and add no category. 21 means "no factors identified".
ASSESSMENT_FACTOR: dict[str, tuple[str | None, str]] = {
    "1A": ("substance_misuse", "medium"), "1B": ("parental_substance_misuse", "medium"),
    "1C": ("parental_substance_misuse", "medium"),
    "2A": ("substance_misuse", "medium"), "2B": ("parental_substance_misuse", "medium"),
    "2C": ("parental_substance_misuse", "medium"),
    "3A": ("domestic_abuse", "high"), "3B": ("domestic_abuse", "medium"), "3C": ("domestic_abuse", "medium"),
    "4A": ("other", "medium"), "4B": ("parental_mental_health", "medium"), "4C": ("parental_mental_health", "medium"),
    "5A": (None, "low"), "5B": (None, "low"), "5C": (None, "low"),
    "6A": (None, "low"), "6B": (None, "low"), "6C": (None, "low"),
    "7A": ("other", "low"),
    "8B": ("other", "low"), "8C": ("other", "low"), "8D": ("other", "low"), "8E": ("other", "low"),
    "8F": ("other", "low"),
    "9A": ("other", "medium"),
    "10A": ("missing", "high"),
    "11A": ("child_sexual_exploitation", "high"),
    "12A": ("trafficking", "high"),
    "13A": ("gangs", "high"),
    "14A": ("other", "low"),
    "15A": ("self_harm", "high"),
    "16A": ("neglect", "high"),
    "17A": ("emotional_abuse", "high"),
    "18B": ("physical_abuse", "high"), "18C": ("physical_abuse", "high"),
    "19B": ("sexual_abuse", "high"), "19C": ("sexual_abuse", "high"),
    "20": ("other", "medium"),
    "21": (None, "none"),
    "22A": ("fgm", "high"),
    "23A": ("other", "high"),
    "24A": ("child_criminal_exploitation", "high"),
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


def highest(levels: list[str], default: str = "unknown") -> str:
    return max(levels, key=LEVELS.index) if levels else default


def assessment_risk(factors: list[str]) -> tuple[str, list[str]]:
    """(level, categories) from assessment factor codes; an unrecognised factor counts as 'other', medium."""
    pairs = [ASSESSMENT_FACTOR.get(f, ("other", "medium")) for f in factors]
    categories = sorted({c for c, _ in pairs if c})
    return highest([lvl for _, lvl in pairs]), categories
