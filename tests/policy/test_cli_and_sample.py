"""`mash-broker policy` commands and exit codes, and the sample partnership protocol's own tests."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from broker.cli.main import app as main_app
from broker.cli.policy import EventsFileError, app, read_events
from broker.policy import run_protocol_tests
from tests.policy.conftest import SAMPLE, SECRETS, base_protocol, make_event

runner = CliRunner()


@pytest.fixture()
def event_file(tmp_path):
    event = make_event("social_care.section47_enquiry", "social_care", {"actual_start_date": "2026-05-04"},
                       risk="high")
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    return path, event


def test_explain_json_is_the_default(event_file) -> None:
    path, event = event_file
    result = runner.invoke(app, ["explain", "--protocol", str(SAMPLE), "--subscriber", "mash_hub", str(path)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["decision"]["rule_id"] == "mash-s47-significant-harm"
    assert out["event"]["event_id"] == event["event_id"]
    assert not [s for s in SECRETS if s in result.stdout]


def test_explain_text_with_consent_and_case_options(event_file) -> None:
    path, _ = event_file
    result = runner.invoke(app, ["explain", "--protocol", str(SAMPLE), "--subscriber", "mash_hub", str(path),
                                 "--format", "text", "--consent-status", "withdrawn", "--objection", "--case-open"])
    assert result.exit_code == 0, result.output
    # s47 is the LA's function, not a duty to disclose: the objection goes to a recorded human decision (the
    # withdrawal of consent alone would change nothing: consent is not the rule's basis)
    assert "DECISION: WITHHOLD" in result.stdout
    assert "consent: withdrawn, objection recorded; case open: True" in result.stdout
    assert "awaiting a recorded human decision: objection under rule mash-s47-significant-harm" in result.stdout
    # the agreement's furniture heads the explanation (issue 19): DPIA, policy documents, DPO, retention, routing
    head = result.stdout.split("DECISION:")[0]
    for line in ("agreement:", "  DPIA EX-DPIA-2026-014", "  dpo exampleshire-csc: dpo@exampleshire-cc.example.org",
                 "  appropriate policy document EXCC-APD-2026", "  retention health: P6Y from case_closed",
                 "  breach: mash.breach@exampleshire.example.org within 24 hours",
                 "  joint controllers (UK GDPR Art 26)"):
        assert line in head


def test_explain_refuses_bad_inputs(event_file, tmp_path) -> None:
    path, _ = event_file
    bad = runner.invoke(app, ["explain", "--protocol", str(SAMPLE), "--subscriber", "mash_hub", str(path),
                              "--consent-status", "maybe"])
    assert bad.exit_code == 2
    two = tmp_path / "two.jsonl"
    two.write_text(path.read_text() + "\n" + path.read_text() + "\n")
    many = runner.invoke(app, ["explain", "--protocol", str(SAMPLE), "--subscriber", "mash_hub", str(two)])
    assert many.exit_code == 2 and "explain takes exactly one" in many.stderr


def test_read_events_accepts_jsonl_array_and_object_and_names_bad_lines(tmp_path, event_file) -> None:
    _, event = event_file
    line = json.dumps(event)
    (tmp_path / "a.jsonl").write_text(f"{line}\n\n{line}\n")
    (tmp_path / "b.json").write_text(f"[{line}, {line}]")
    assert len(list(read_events(tmp_path / "a.jsonl"))) == 2
    assert len(list(read_events(tmp_path / "b.json"))) == 2
    (tmp_path / "c.jsonl").write_text(f"{line}\n{{\"given_names\": [\"Testchild\"\n")
    with pytest.raises(EventsFileError) as info:
        list(read_events(tmp_path / "c.jsonl"))
    assert str(info.value).endswith("c.jsonl: line 2: not valid JSON") and "Testchild" not in str(info.value)


def test_diff_command(tmp_path, event_file) -> None:
    path, event = event_file
    new = yaml.safe_load(SAMPLE.read_text())
    new["protocol"]["version"] = "1.1.0"
    new["rules"] = [r for r in new["rules"] if r["id"] != "mash-s47-significant-harm"]
    new["tests"] = [t for t in new["tests"] if t["expect"].get("rule") != "mash-s47-significant-harm"]
    (tmp_path / "new.yaml").write_text(yaml.safe_dump(new, sort_keys=False))
    result = runner.invoke(app, ["diff", "--from", str(SAMPLE), "--to", str(tmp_path / "new.yaml"),
                                 "--events", str(path), "--json"])
    assert result.exit_code == 1, result.output  # the change alters a decision
    out = json.loads(result.stdout)
    assert out["to"] == "exampleshire-mash-isp@1.1.0"
    assert out["subscribers"]["mash_hub"]["events_removed"] == [event["event_id"]]
    assert out["subscribers"]["police_ppu"]["changed"] is False


def test_test_command_passes_the_sample_through_the_main_cli() -> None:
    result = runner.invoke(main_app, ["policy", "test", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(SAMPLE.read_text())
    cases = len(data["tests"]) + len(data.get("hub", {}).get("tests", []))  # the hub section's cases too
    assert f"{cases} passed, 0 failed" in result.stdout  # every test


def test_test_command_exit_codes(tmp_path) -> None:
    data = yaml.safe_load(SAMPLE.read_text())
    data["tests"][0]["expect"]["rule"] = "mash-s17-child-in-need"
    (tmp_path / "failing.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    failing = runner.invoke(app, ["test", str(tmp_path / "failing.yaml")])
    assert failing.exit_code == 1
    assert "expected rule mash-s17-child-in-need, got mash-s47-significant-harm" in failing.stdout
    assert not [s for s in SECRETS if s in failing.stdout]
    (tmp_path / "unusable.yaml").write_text("protocol: [\n")
    unusable = runner.invoke(app, ["test", str(tmp_path / "unusable.yaml")])
    assert unusable.exit_code == 2 and "not valid YAML" in unusable.stderr
    (tmp_path / "untested.yaml").write_text(yaml.safe_dump(base_protocol()))
    untested = runner.invoke(app, ["test", str(tmp_path / "untested.yaml")])
    assert untested.exit_code == 1 and "no tests" in untested.stderr
    missing = runner.invoke(app, ["test", str(tmp_path / "absent.yaml")])
    assert missing.exit_code == 2 and "file not found" in missing.stderr


def test_protocol_test_reports_wrong_field_expectations(tmp_path) -> None:
    shutil.copy(SAMPLE, tmp_path / "p.yaml")
    data = yaml.safe_load(SAMPLE.read_text())
    data["tests"][0]["expect"]["released"].append("subject.related_people[].person.pnc_id")
    data["tests"][0]["expect"]["withheld"] = ["payload.not_there"]
    from broker.policy import parse_protocol

    results = run_protocol_tests(parse_protocol(data, "p.yaml"))
    assert results[0].failures == (
        "subject.related_people[].person.pnc_id: expected released, got masked (keyed_hash)",
        "payload.not_there: not in the test event, so the expectation cannot be checked")


def test_sample_protocol_tests_pass_and_cover_every_subscriber_and_rule(sample) -> None:
    results = run_protocol_tests(sample)
    assert all(r.passed for r in results), [(r.name, r.failures) for r in results if not r.passed]
    tested = {r.decision.subscriber for r in results}
    assert set(sample.subscribers) <= tested
    # every rule decides some test, or (a rule reserving the decision to a person) refers one
    assert {r.decision.rule_id for r in results} | {r.decision.human_decision.rule_id for r in results
                                                    if r.decision.human_decision} >= {rule.id for rule in sample.rules}
    assert any(r.decision.subscriber not in sample.subscribers for r in results)  # default deny: stranger
    assert any(r.decision.human_decision for r in results)  # a withdrawal or objection sent to a person
    assert any("honoured" in r.decision.reason for r in results)  # a consent withdrawal honoured
