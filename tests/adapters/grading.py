"""What an adapter's gradings come to under the sample protocol: the adapters send each agency's own grading
(`risk.agency_levels`) and leave `risk.level` as the source gave it; the protocol's risk_scales place the grading on
the common scale (broker/policy/thresholds.py). Tests assert both: the grading the record carries, and the level the
partnership's sample protocol makes of it."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from broker.policy import load_protocol
from broker.policy.thresholds import RiskScale, assess

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "protocols" / "sample-partnership.yaml"


@cache
def sample_scales() -> Mapping[str, RiskScale]:
    return load_protocol(SAMPLE).risk_scales


def gradings(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(g["scale"], g["level"]) for g in event["risk"].get("agency_levels", [])]


def common_level(event: Mapping[str, Any]) -> str:
    """The event's common level under the sample protocol; every grading must be one the protocol maps."""
    found = assess(sample_scales(), event)
    unmapped = [g.describe() for g in found.gradings if g.common is None]
    assert not unmapped, unmapped
    return found.level


def placed(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event's risk as the sample protocol decides on it: the common level, the categories, and the agency's
    own gradings (levels). The adapter itself never decides the common level, so `risk.level` must be unknown."""
    assert event["risk"]["level"] == "unknown", event["risk"]
    return {"level": common_level(event), "categories": event["risk"]["categories"],
            "graded": [level for _, level in gradings(event)]}
