"""Code lists that decide whether a health record bears on safeguarding, and with which risk categories.

Data, not logic: every list is documented (source and meaning) in adapters/health/README.md. SNOMED CT findings
match by concept: a listed concept, or one of its descendants in the curated SNOMED_DESCENDANTS table below (senders
code the specific kind, "cannabis abuse", not the listed parent "drug abuse"). There is no terminology server here and
the whole SNOMED hierarchy is not shipped, so a descendant matches only when the table names it. Lists want review by
the clinical safety officer before production use (DCB0129).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

SNOMED = "http://snomed.info/sct"
SCALE = "health_safeguarding"


@dataclass(frozen=True, slots=True)
class Concern:
    """What a code bears on: risk categories, and its grading on health's own scale (`health_safeguarding`), in the
    code's words (safeguarding_concern, maltreatment, exploitation_risk...). Where each grading sits on the common
    scale is the protocol's risk_scales, not this table's: the adapter does not decide the common level."""

    categories: tuple[str, ...]
    grade: str
    label: str
    more_grades: tuple[str, ...] = ()  # a merged concern's further gradings

    @property
    def grades(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.grade, *self.more_grades)))

    def agency_levels(self) -> list[tuple[str, str]]:
        return [(SCALE, grade) for grade in self.grades]


# SNOMED CT (UK edition) concepts. Sources: RCGP safeguarding coding guidance (child safeguarding concern, child
# protection plan); NHS England Patient Flag value sets (FGM-IS flag); Interweave flag types (exploitation, suicide
# risk); SNOMED CT international release (self-harm, substance misuse, domestic violence, child at risk).
SAFEGUARDING_SNOMED: dict[str, Concern] = {
    "836881000000105": Concern(("other",), "safeguarding_concern", "Child is cause for safeguarding concern"),
    "1064961000000107": Concern(("other",), "safeguarding_concern", "Child in family is safeguarding concern"),
    "878111000000109": Concern(("other",), "safeguarding_concern", "Unborn child is cause for safeguarding concern"),
    "342191000000101": Concern(("other",), "child_protection", "Subject to child protection plan"),
    "375041000000100": Concern(("other",), "safeguarding_concern", "Family member subject of child protection plan"),
    "160877008": Concern(("other",), "safeguarding_concern", "Child at risk"),
    "1076171000000104": Concern(("other",), "safeguarding_concern",
                                "Carer behaviour is cause for safeguarding concern"),
    "919461000000108": Concern(("child_sexual_exploitation",), "exploitation_risk", "At risk of sexual exploitation"),
    "1188261000000103": Concern(("child_criminal_exploitation",), "exploitation_risk",
                                "At risk of criminal exploitation"),
    "902961000000107": Concern(("fgm",), "fgm", "Female genital mutilation (NHS England FGM-IS flag code)"),
    "225444004": Concern(("self_harm",), "suicide_risk", "At risk for suicide"),
    "82313006": Concern(("self_harm",), "intentional_self_harm", "Suicide attempt"),
    "248062006": Concern(("self_harm",), "self_injurious_behaviour", "Self-injurious behaviour"),
    "412732008": Concern(("domestic_abuse",), "domestic_abuse", "History of domestic violence"),
    "66214007": Concern(("substance_misuse",), "substance_misuse", "Substance abuse"),
    "26416006": Concern(("substance_misuse",), "substance_misuse", "Drug abuse"),
    "191816009": Concern(("substance_misuse",), "substance_misuse", "Drug dependence"),
    "15167005": Concern(("substance_misuse",), "substance_misuse", "Alcohol abuse"),
    "7200002": Concern(("substance_misuse",), "substance_misuse", "Alcoholism"),
}

# Descendants (is-a, transitively) of listed concepts that senders use instead of the listed concept, each mapped to
# the listed ancestor whose concern it carries. Source: SNOMED CT UK edition (browse it in the NHS England SNOMED CT
# browser, termbrowser.nhs.uk: a concept's "children" tab). To extend: find the concept's id there, check that the
# listed ancestor appears among its parents (directly or further up), add "id": "ancestor id" with its term in the
# comment, add a test, and list it in adapters/health/README.md. Only descendants that matter for safeguarding.
SNOMED_DESCENDANTS: dict[str, str] = {
    "37344009": "26416006",  # Cannabis abuse -> Drug abuse
    "78267003": "26416006",  # Cocaine abuse -> Drug abuse
    "5602001": "26416006",  # Opioid abuse -> Drug abuse
    "85005007": "191816009",  # Cannabis dependence -> Drug dependence
    "75544000": "191816009",  # Opioid dependence -> Drug dependence
}


def snomed_concern(code: str) -> Concern | None:
    """The concern of a SNOMED CT concept: listed itself, or a listed concept's descendant in SNOMED_DESCENDANTS."""
    listed = SAFEGUARDING_SNOMED.get(code)
    if listed is not None:
        return listed
    ancestor = SNOMED_DESCENDANTS.get(code)
    return SAFEGUARDING_SNOMED[ancestor] if ancestor is not None else None


# WHO ICD-10 (as used for NHS secondary care coding): code prefixes, dot removed. F17 (tobacco) is excluded.
SAFEGUARDING_ICD10: dict[str, Concern] = {
    "T740": Concern(("neglect",), "maltreatment", "Neglect or abandonment"),
    "T741": Concern(("physical_abuse",), "maltreatment", "Physical abuse"),
    "T742": Concern(("sexual_abuse",), "maltreatment", "Sexual abuse"),
    "T743": Concern(("emotional_abuse",), "maltreatment", "Psychological abuse"),
    "T748": Concern(("other",), "maltreatment", "Other maltreatment syndromes"),
    "T749": Concern(("other",), "maltreatment", "Maltreatment syndrome, unspecified"),
    "Y06": Concern(("neglect",), "maltreatment", "Neglect and abandonment (external cause)"),
    "Y07": Concern(("other",), "maltreatment", "Other maltreatment syndromes (external cause)"),
    **{f"X{n}": Concern(("self_harm",), "intentional_self_harm", "Intentional self-harm") for n in range(60, 85)},
    **{f"F1{n}": Concern(("substance_misuse",), "substance_misuse",
                         "Mental and behavioural disorders due to substance use") for n in (0, 1, 2, 3, 4, 5, 6, 8, 9)},
}

# Pregnancy: a safeguarding matter only for a child (under 18 on the date the finding is effective).
PREGNANCY_SNOMED = {"77386006"}  # Pregnant (finding)
PREGNANCY_ICD10_PREFIXES = ("O", "Z33", "Z34", "Z35")
PREGNANCY_IN_MINOR = Concern(("other",), "pregnancy_under_18", "Pregnancy in a person under 18")

# DfE Children in Need census category of abuse codes, accepted from any code system on a child protection plan.
CIN_ABUSE_CATEGORY = {"NEG": "neglect", "PHY": "physical_abuse", "EMO": "emotional_abuse", "SAB": "sexual_abuse",
                      "MUL": "multiple"}


def _is_icd10(system: str | None) -> bool:
    return bool(system) and "icd-10" in system.lower()  # type: ignore[union-attr]


def _icd10_key(code: str) -> str:
    return code.replace(".", "").strip().upper()


def concern_for(codes: Iterable[tuple[str | None, str]]) -> Concern | None:
    """The merged concern for a set of (system, code) pairs, or None when none is on a list."""
    found: list[Concern] = []
    for system, code in codes:
        if system == SNOMED:
            concern = snomed_concern(code)
            if concern is not None:
                found.append(concern)
        elif _is_icd10(system):
            key = _icd10_key(code)
            found.extend(c for prefix, c in SAFEGUARDING_ICD10.items() if key.startswith(prefix))
    return merge(found)


def is_pregnancy(codes: Iterable[tuple[str | None, str]]) -> bool:
    for system, code in codes:
        if system == SNOMED and code in PREGNANCY_SNOMED:
            return True
        if _is_icd10(system) and _icd10_key(code).startswith(PREGNANCY_ICD10_PREFIXES):
            return True
    return False


def merge(concerns: Iterable[Concern]) -> Concern | None:
    items = list(concerns)
    if not items:
        return None
    categories = tuple(sorted({c for item in items for c in item.categories}))
    grades = tuple(dict.fromkeys(g for item in items for g in item.grades))
    return Concern(categories, grades[0], "; ".join(dict.fromkeys(item.label for item in items)), grades[1:])


def cin_abuse_categories(codes: Iterable[tuple[str | None, str]]) -> list[str]:
    return [CIN_ABUSE_CATEGORY[code] for _, code in codes if code in CIN_ABUSE_CATEGORY]
