"""Risk gradings and categories from the officer's assessments (DASH, PPN grading) and the vulnerability concerns.

Gradings: the DASH risk (scale `police_dash`) and the vulnerability (PPN) grading (scale `police_vulnerability`),
each as the officer recorded it (standard, medium, high), in `risk.agency_levels`. Where those sit on the
partnership's common scale is the protocol's `risk_scales` (the sample maps standard -> low, medium -> medium,
high -> high): the adapter maps nothing, so `risk.level` stays `unknown` and a partnership moves a threshold without a
release (broker/policy/thresholds.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DASH_SCALE = "police_dash"
VULNERABILITY_SCALE = "police_vulnerability"

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


def agency_levels(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(scale, grading) of each assessment the record carries, as the officer recorded it."""
    grades = [(DASH_SCALE, record.get("dash_risk")),
              (VULNERABILITY_SCALE, (record.get("vulnerability") or {}).get("grading"))]
    return [(scale, str(grade)) for scale, grade in grades if grade]


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
