"""Risk level and categories from the officer's assessments (DASH, PPN grading) and the vulnerability concerns.

Level: the higher of the DASH risk and the vulnerability (PPN) grading, each mapped standard -> low,
medium -> medium, high -> high; neither given -> unknown. Neither scale has a grade above high, so the adapter never
asserts `critical` (that is for the hub's own judgement), and never `none` (attending police is not "no risk").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

GRADING_LEVEL = {"standard": "low", "medium": "medium", "high": "high"}
LEVELS = ("unknown", "none", "low", "medium", "high", "critical")

# Input concern -> canonical risk category; child_concern says only "a child is a concern", so it adds none.
CONCERN_CATEGORY = {
    "child_sexual_exploitation": "child_sexual_exploitation",
    "child_criminal_exploitation": "child_criminal_exploitation",
    "county_lines": "county_lines", "missing_person": "missing", "domestic_abuse": "domestic_abuse",
    "honour_based_abuse": "honour_based_abuse", "fgm": "fgm", "trafficking": "trafficking",
    "radicalisation": "radicalisation", "online_harm": "online_harm", "self_harm": "self_harm",
    "substance_misuse": "substance_misuse", "mental_health": "other", "other": "other",
}
# Input concern -> the public protection notice's own (shorter) concern list.
PPN_CONCERNS = ("child_concern", "child_sexual_exploitation", "child_criminal_exploitation", "missing_person",
                "domestic_abuse", "mental_health")
EVENT_CATEGORY = {"domestic_abuse": "domestic_abuse"}


def risk_level(record: Mapping[str, Any]) -> str:
    grades = [record.get("dash_risk"), (record.get("vulnerability") or {}).get("grading")]
    levels = [GRADING_LEVEL[g] for g in grades if g]
    return max(levels, key=LEVELS.index) if levels else "unknown"


def concerns(record: Mapping[str, Any]) -> list[str]:
    return list((record.get("vulnerability") or {}).get("concerns", []))


def risk_categories(record: Mapping[str, Any]) -> list[str]:
    found = {CONCERN_CATEGORY[c] for c in concerns(record) if c in CONCERN_CATEGORY}
    if record["event_type"] in EVENT_CATEGORY:
        found.add(EVENT_CATEGORY[record["event_type"]])
    return sorted(found)


def ppn_concerns(record: Mapping[str, Any]) -> list[str]:
    """The notice's concerns: each input concern, or 'other' for those the notice's list lacks (deduplicated)."""
    out: list[str] = []
    for c in concerns(record):
        mapped = c if c in PPN_CONCERNS else "other"
        if mapped not in out:
            out.append(mapped)
    return out
