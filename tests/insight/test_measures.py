"""schemas/measures.yaml: every measure the issue names is defined, in words, and a broken file is refused with the
file and the field named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from broker.cli.main import app
from broker.insight.measures import DEFAULT_PATH, MeasureError, load_measures, parse_measures

ISSUE_17 = {"contacts", "referrals", "decision_within_one_working_day", "encompass_before_next_school_day",
            "feedback_to_referrers", "decision_outcomes", "nfa_rate_by_referring_agency", "referral_to_section47",
            "referral_to_cp_plan", "step_up_to_social_care", "step_down_to_early_help", "repeat_referrals",
            "duplicates_merged", "cumulative_concerns", "deliveries_withheld", "data_quality_warnings"}


def raw() -> dict:
    return yaml.safe_load(DEFAULT_PATH.read_text())


def test_every_measure_of_the_issue_is_defined_in_words_with_its_breakdowns() -> None:
    measures = load_measures()
    assert {m.id for m in measures} >= ISSUE_17
    for m in measures:
        assert len(m.definition.split()) >= 10, m.id
        if m.available:
            assert m.numerator is not None and m.numerator.words
        assert m.breakdowns and m.periods
    assert all("before_after" in m.periods for m in measures if m.id in ISSUE_17)  # before and after a change
    # contacts: `contacts: true` became the file's contact types at load
    contacts = measures.by_id("contacts").numerator
    assert contacts is not None and set(contacts.select["event_types"]) == measures.contact_types


def test_the_outcome_and_place_breakdowns_the_issue_asks_for_are_there() -> None:
    measures = load_measures()
    assert {"agency", "outcome", "area", "school_urn", "gp_ods"} <= {b for m in measures for b in m.breakdowns}
    assert "field" in measures.by_id("data_quality_warnings").breakdowns
    assert "reason" in measures.by_id("deliveries_withheld").breakdowns


@pytest.mark.parametrize("change,where", [
    (lambda r: r["measures"][2]["breakdowns"].append("colour"),
     "measures.2.breakdowns.3: not one of the allowed codes"),
    (lambda r: r["measures"][0].pop("definition"), "measures.0: required field 'definition' is missing"),
    (lambda r: r["measures"][-1].pop("why"), "measures.16: required field 'why' is missing"),
    (lambda r: r["measures"][1].update(id=r["measures"][0]["id"]), "measures.1.id: duplicate measure id"),
    (lambda r: r["measures"][4]["numerator"]["select"].update(derived="guesswork"),
     "measures.4.numerator.select.derived: no such counting rule"),
    (lambda r: r["measures"][0].update(colour="red"), "measures.0: an unknown field"),
])
def test_a_broken_measures_file_names_the_file_and_the_field(change, where, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = raw()
    change(broken)
    path = tmp_path / "my-measures.yaml"
    path.write_text(yaml.safe_dump(broken))
    with pytest.raises(MeasureError) as error:
        load_measures(path)
    assert str(error.value).startswith("my-measures.yaml: ") and where in str(error.value)


def test_not_yaml_or_missing_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("measures: [\n  - id: x\n    name: [unclosed\n")
    with pytest.raises(MeasureError, match=r"^m\.yaml: line \d+: not valid YAML$"):
        load_measures(bad)
    with pytest.raises(MeasureError, match="cannot be read"):
        load_measures(tmp_path / "absent.yaml")
    with pytest.raises(MeasureError, match="required field 'measures'"):
        parse_measures({"version": "1.0", "contact_types": ["police.incident_child_present"]})


def test_cli_lists_the_measures_and_refuses_a_broken_file(tmp_path: Path) -> None:
    listed = CliRunner().invoke(app, ["insight", "measures"])
    assert listed.exit_code == 0 and "repeat_referrals: Repeat referrals within 12 months" in listed.output
    assert "not available yet" in listed.output and "why not:" in listed.output
    bad = tmp_path / "m.yaml"
    bad.write_text("version: '1.0'\n")
    refused = CliRunner().invoke(app, ["insight", "measures", "--file", str(bad)])
    assert refused.exit_code == 2 and "m.yaml:" in refused.output and "Traceback" not in refused.output


def test_demo_load_without_a_dev_broker_says_what_to_do(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["insight", "demo-load", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "mash-broker run --dev" in result.output
