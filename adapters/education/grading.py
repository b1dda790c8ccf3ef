"""The school's own grading of what its records show, on the `school_concern` scale, in the DfE's own words.

The adapters say what kind of concern a record is; where that sits on the partnership's common scale is the
protocol's `risk_scales` (broker/policy/thresholds.py), so a partnership moves a threshold without a release. The
levels are the DfE's: its attendance measures (persistent absence is missing 10% or more of possible sessions,
severe absence 50% or more), a Children Missing Education notice, and the School Census exclusion categories.
"""

from __future__ import annotations

from fractions import Fraction

SCALE = "school_concern"

PERSISTENT_ABSENCE = Fraction(1, 10)
SEVERE_ABSENCE = Fraction(1, 2)

CHILD_MISSING_EDUCATION = "child_missing_education"

# Canonical exclusion category (codes.EXCLUSION_CATEGORY) -> the grading.
EXCLUSION = {"permanent": "permanent_exclusion", "suspension": "suspension", "lunchtime": "lunchtime_exclusion"}


def attendance(rate: Fraction) -> str:
    """The DfE absence measure a year's attendance rate meets. A concern raised under a partnership threshold above
    90% attendance is below both measures, and says so rather than borrowing one."""
    absence = 1 - rate
    if absence >= SEVERE_ABSENCE:
        return "severe_absence"
    if absence >= PERSISTENT_ABSENCE:
        return "persistent_absence"
    return "below_attendance_threshold"
