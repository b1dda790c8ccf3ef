"""Each agency's risk thresholds in one place (broker/policy/thresholds.py): the protocol's risk_scales map the
agencies' own gradings to the common scale; the adapter maps nothing; explain shows both; a partnership moves a
threshold by editing its protocol, and decisions change with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.policy import ProtocolError, decide, explain, format_explanation, load_protocol, parse_protocol
from broker.policy.thresholds import assess, assessed

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "protocols" / "sample-partnership.yaml"


def referral(*gradings: tuple[str, str], level: str = "unknown") -> dict[str, Any]:
    return {"event_id": "00000000-0000-5000-8000-00000000a001", "event_type": "social_care.referral",
            "occurred_at": "2026-05-05",
            "source": {"agency": "social_care", "system": "999", "record_id": "thr-1", "record_version": "1",
                       "format": "test"},
            "risk": {"level": level, "categories": [],
                     "agency_levels": [{"scale": s, "level": g} for s, g in gradings]},
            "subject": {"child": {"given_names": ["Testchild"], "family_name": "Example",
                                  "date_of_birth": "2016-05-14"}, "related_people": []},
            "consent": {"status": "given"}, "payload": {"referral_date": "2026-05-05"}}


def from_police(event: dict[str, Any]) -> dict[str, Any]:
    """The event as the force's: police gradings are mapped only on a police record."""
    return {**event, "event_type": "police.public_protection_notice",
            "source": {**event["source"], "agency": "police"}}


@pytest.fixture(scope="module")
def sample_text() -> str:
    return SAMPLE.read_text()


def test_the_highest_mapped_grading_is_the_common_level() -> None:
    scales = load_protocol(SAMPLE).risk_scales
    found = assess(scales, from_police(referral(("police_dash", "standard"), ("police_vulnerability", "high"))))
    assert (found.level, found.source_level) == ("high", "unknown")
    assert [g.common for g in found.gradings] == ["low", "high"]


def test_an_unmapped_grading_leaves_the_source_level_and_says_so() -> None:
    scales = load_protocol(SAMPLE).risk_scales
    found = assess(scales, from_police(referral(("police_dash", "extreme"), ("no_such_scale", "high"),
                                                level="medium")))
    assert found.level == "medium"  # nothing mapped: the source's own level stands, never lowered to unknown
    text = found.describe()
    assert "police_dash extreme not mapped by the protocol" in text and "no_such_scale high not mapped" in text


def test_assessed_does_not_change_the_event() -> None:
    scales = load_protocol(SAMPLE).risk_scales
    event = referral(("social_care_threshold", "child_protection"))
    view = assessed(scales, event)
    assert view["risk"]["level"] == "high" and event["risk"]["level"] == "unknown"
    plain = referral()
    assert assessed(scales, plain) is plain  # no grading: the same object, no copy


def test_a_partnership_moves_a_threshold_without_a_release(sample_text: str, tmp_path: Path) -> None:
    """Early help takes low and medium needs. The continuum's child_in_need is medium in the sample; a partnership
    that places it at high edits one line of its protocol, and the same event stops reaching early help."""
    event = referral(("social_care_threshold", "child_in_need"))
    before = load_protocol(SAMPLE)
    assert decide(before, event, "early_help", case_open=True).outcome == "deliver"
    moved = sample_text.replace("{universal: none, early_help: low, child_in_need: medium,",
                                "{universal: none, early_help: low, child_in_need: high,")
    assert moved != sample_text
    path = tmp_path / "moved.yaml"
    path.write_text(moved)
    (tmp_path / "keys").symlink_to(SAMPLE.parent / "keys")
    after = load_protocol(path)
    decision = decide(after, event, "early_help", case_open=True)
    assert decision.outcome == "withhold" and "risk level high is above medium" in decision.reason


def test_explain_shows_the_agency_grading_and_the_common_level() -> None:
    protocol = load_protocol(SAMPLE)
    expl = explain(protocol, referral(("social_care_threshold", "early_help")), "early_help", case_open=True)
    assert expl["event"]["risk_level"] == "low" and expl["event"]["risk_source_level"] == "unknown"
    assert expl["event"]["risk_gradings"] == [{"scale": "social_care_threshold", "level": "early_help",
                                              "common": "low"}]
    text = format_explanation(expl)
    assert "risk level low on the common scale, from social_care_threshold early_help -> low" in text


def test_the_delivered_view_carries_the_level_decided_on() -> None:
    from broker.pipeline.share import share

    protocol = load_protocol(SAMPLE)
    out = dict((d.subscriber, view) for d, view in share(
        protocol, referral(("social_care_threshold", "early_help")), consent=None, case_open=True,
        mask_key=b"k" * 32))
    assert out["early_help"] is not None
    # early help is not released the risk level (sensitive_operational), the hub would be: decide says why
    assert "level" not in (out["early_help"].get("risk") or {})


def test_compile_refuses_a_scale_twice_and_a_level_mapped_to_unknown(sample_text: str) -> None:
    data = yaml.safe_load(sample_text)
    data["risk_scales"].append(dict(data["risk_scales"][0]))
    data["risk_scales"].append({"id": "odd", "agency": "police", "description": "x", "levels": {"a": "unknown"}})
    with pytest.raises(ProtocolError) as caught:
        parse_protocol(data, "t.yaml", base_dir=SAMPLE.parent)
    reasons = [str(p) for p in caught.value.problems]
    assert any("risk_scales[6].id" in r and "duplicate id" in r for r in reasons), reasons
    assert any("risk_scales[7].levels" in r and "maps to unknown" in r for r in reasons), reasons


def test_compile_refuses_a_level_off_the_common_scale(sample_text: str) -> None:
    data = yaml.safe_load(sample_text)
    data["risk_scales"][0]["levels"]["high"] = "severe"
    with pytest.raises(ProtocolError):
        parse_protocol(data, "t.yaml", base_dir=SAMPLE.parent)


def test_a_grading_on_another_agencys_scale_does_not_raise_the_level() -> None:
    """The attacker's test: a school's record claiming the police's DASH "high" (or the hub's RAG red) is not high:
    a scale maps only the gradings of the agency it belongs to, and explain says the grading was not mapped."""
    protocol = load_protocol(SAMPLE)
    school = {**referral(("police_dash", "high"), ("mash_rag", "red"), ("school_concern", "logged")),
              "event_type": "education.attendance_concern",
              "source": {"agency": "education", "system": "999-9999", "record_id": "thr-2", "record_version": "1",
                         "format": "test"}}
    found = assess(protocol.risk_scales, school)
    assert found.level == "low"  # the school's own "logged", not the claimed police or hub grading
    assert [g.common for g in found.gradings] == [None, None, "low"]
    assert assessed(protocol.risk_scales, school)["risk"]["level"] == "low"
    text = format_explanation(explain(protocol, school, "early_help", case_open=True))
    assert "police_dash high not mapped: the scale is police's" in text and "school_concern logged -> low" in text
    alone = {**school, "risk": {"level": "unknown", "categories": [],
                                "agency_levels": [{"scale": "police_dash", "level": "high"}]}}
    assert assess(protocol.risk_scales, alone).level == "unknown"
    assert decide(protocol, alone, "early_help", case_open=True).outcome == "withhold"


def test_a_partnership_moves_a_school_threshold_without_a_release(sample_text: str) -> None:
    """The same school record (a Children Missing Education notice, as the education adapter makes it) under the
    sample protocol and under a copy that places every school_concern level one step higher: the common level and
    early help's outcome change with the protocol alone, and explain names the scale, the school's level and where
    each protocol places it."""
    from adapters.education.cme import ADAPTER as CME
    from tests.adapters.education.helpers import adapt, fixture

    [notice] = adapt(CME, fixture("cme.xml")).events
    assert notice["risk"]["level"] == "unknown"  # the school grades; it does not place
    notice = {**notice, "consent": {"status": "given"}}  # the family agreed to early help
    data = yaml.safe_load(sample_text)
    [school] = [s for s in data["risk_scales"] if s["id"] == "school_concern"]
    up = {"none": "low", "low": "medium", "medium": "high", "high": "critical", "critical": "critical"}
    school["levels"] = {level: up[common] for level, common in school["levels"].items()}
    sample, moved = load_protocol(SAMPLE), parse_protocol(data, "moved.yaml", base_dir=SAMPLE.parent)

    assert assess(sample.risk_scales, notice).level == "medium"
    assert assess(moved.risk_scales, notice).level == "high"
    assert decide(sample, notice, "early_help", case_open=True).outcome == "deliver"
    after = decide(moved, notice, "early_help", case_open=True)
    assert after.outcome == "withhold" and "risk level high is above medium" in after.reason
    for protocol, common in ((sample, "medium"), (moved, "high")):
        expl = explain(protocol, notice, "early_help", case_open=True)
        assert expl["event"]["risk_gradings"] == [{"scale": "school_concern", "level": "child_missing_education",
                                                  "common": common}]
        assert f"from school_concern child_missing_education -> {common}" in format_explanation(expl)
