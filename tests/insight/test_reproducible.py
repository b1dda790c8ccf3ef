"""The framework's numbers are reproducible from an audit export: a real SQLite audit store holding the hand-built
log, exported with `mash-broker audit export`, gives the same tables through `mash-broker insight tables` from the
store and from the file; the default output is disclosure-controlled; an exact read of the store is audited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker.audit.store import open_audit_store
from broker.cli.main import app
from broker.insight.compute import compute_all
from broker.insight.measures import default_measures
from broker.insight.source import records_from_export, records_from_store
from tests.insight.known_log import known_log

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "protocols" / "sample-partnership.yaml"


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    store = open_audit_store(data, create_key=True)
    store.append(known_log())
    store.close()
    return data


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_tables_from_the_store_equal_tables_from_its_export(store_dir: Path, tmp_path: Path) -> None:
    export = tmp_path / "audit.jsonl"
    _run("audit", "export", "--format", "jsonl", "--out", str(export), "--data-dir", str(store_dir))
    for by, period in (("agency", "month"), ("area", "all"), ("outcome", "quarter"), ("reason", "week")):
        args = ("--by", by, "--period", period, "--exact", "--json", "--protocol", str(SAMPLE))
        from_file = json.loads(_run("insight", "tables", "--from-export", str(export), *args))
        from_store = json.loads(_run("insight", "tables", "--data-dir", str(store_dir), *args))
        assert from_file == from_store and from_file, (by, period)
        assert all(t["exact"] for t in from_file)


def test_store_and_export_records_give_the_same_tables_in_process(store_dir: Path, tmp_path: Path) -> None:
    export = tmp_path / "audit.jsonl"
    _run("audit", "export", "--format", "jsonl", "--out", str(export), "--data-dir", str(store_dir))
    store = open_audit_store(store_dir)
    try:
        live = records_from_store(store)
    finally:
        store.close()
    assert live == records_from_export(export)
    assert compute_all(live, default_measures(), across="all") == compute_all(
        known_log(), default_measures(), across="all")


def test_default_output_is_disclosure_controlled(store_dir: Path) -> None:
    shown = json.loads(_run("insight", "tables", "--data-dir", str(store_dir), "--measure", "referrals",
                            "--period", "month", "--json"))
    [referrals] = shown
    assert referrals["exact"] is False
    cells = [v for row in referrals["rows"] for v in row["cells"].values()]
    assert cells and set(cells) <= {"c", 0}, "counts of 1 to 5 must never be shown outside the IG role"


def test_every_read_of_the_store_is_audited_exact_ones_as_such(store_dir: Path) -> None:
    _run("insight", "tables", "--data-dir", str(store_dir), "--measure", "referrals", "--exact", "--json")
    _run("insight", "tables", "--data-dir", str(store_dir), "--by", "area", "--period", "week", "--json")
    store = open_audit_store(store_dir)
    try:
        actions = [e["record"] for e in store.entries() if e.get("record", {}).get("kind") == "admin_action"]
    finally:
        store.close()
    assert [(a["action"], a["target"]) for a in actions] == [("insight.exact", "by:agency:month"),
                                                             ("insight.tables", "by:area:week")]
    assert all(a["actor"].startswith("cli:uid") for a in actions)


def test_bad_input_is_a_clear_error_never_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "not-an-export.jsonl"
    bad.write_text('{"type": "entry"}\n')
    result = CliRunner().invoke(app, ["insight", "tables", "--from-export", str(bad)])
    assert result.exit_code == 2 and "not-an-export.jsonl" in result.output and "line 1" in result.output
    result = CliRunner().invoke(app, ["insight", "tables", "--from-export", str(bad), "--measure", "nope"])
    assert result.exit_code == 2 and "no measure with id 'nope'" in result.output
    missing = CliRunner().invoke(app, ["insight", "tables", "--data-dir", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "no audit store" in missing.output


def test_csv_and_before_after_from_an_export(store_dir: Path, tmp_path: Path) -> None:
    export = tmp_path / "audit.jsonl"
    _run("audit", "export", "--format", "jsonl", "--out", str(export), "--data-dir", str(store_dir))
    text = _run("insight", "tables", "--from-export", str(export), "--measure", "referrals", "--measure",
                "referral_to_section47", "--period", "before_after", "--change-date", "2026-04-01", "--exact", "--csv")
    lines = text.strip().splitlines()
    assert lines[0] == "measure,agency,before_after,value,rate_percent,denominator"
    assert "referrals,social_care,before,2,," in lines and "referrals,social_care,after,1,," in lines
    assert "referral_to_section47,social_care,before,1,50.0,2" in lines
    assert "referral_to_section47,social_care,after,1,100.0,1" in lines
    assert len([line for line in lines if line.startswith("measure,")]) == 1  # one header for every table


def test_the_text_output_names_each_table_and_shows_no_small_count(store_dir: Path) -> None:
    text = _run("insight", "tables", "--data-dir", str(store_dir), "--measure", "referral_to_section47",
                "--period", "all")
    assert "Referrals leading to a section 47 enquiry (referral_to_section47) by agency, all" in text
    assert "EXACT" not in text and "social_care" in text and " c " in text
