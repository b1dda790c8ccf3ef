"""Explain and diff as the broker decided: over the real consent, case and determinations registers (SQLite), the
determinations as they stood at the decision's time, one recorded decision re-derived (`policy explain --decision`),
and `policy diff` as a table with exit 1 on a change. Fictitious child, synthetic records."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from broker.audit import audit_record
from broker.audit.store import open_audit_store
from broker.cli.policy import app
from broker.crypto import open_key_provider
from broker.policy import ConsentState, decide, diff, parse_protocol
from broker.policy.facts import CaseFacts
from broker.service.as_decided import Registers, diff_context, explain_recorded, register_context
from tests.policy.conftest import SAMPLE, SECRETS, make_event

runner = CliRunner()
DECIDED_AT = "2026-05-03T03:00:00.000Z"  # the s47(9) request was in force then, and ended at ENDED_AT
REQUESTED_AT, ENDED_AT = "2026-05-02T09:00:00.000Z", "2026-05-05T09:00:00.000Z"


def _attendance() -> dict:
    event = make_event("health.urgent_care_attendance", "health", {"setting": "emergency"}, risk="unknown",
                       occurred_at="2026-05-03T02:30:00Z")
    event["source"]["system"] = "RXX"  # the trust (protocol partners[].source_systems)
    return event


def _referral() -> dict:
    return make_event("social_care.referral", "social_care", {"referral_date": "2026-05-04"}, risk="low")


def _without_location(version: str = "1.9.0") -> dict:
    """The sample with early help no longer receiving location (the change the issue's diff missed)."""
    data = yaml.safe_load(SAMPLE.read_text())
    data["protocol"]["version"] = version
    rule = next(r for r in data["rules"] if r["id"] == "early-help-consented-support")
    rule["fields"][-1]["classifications"] = [c for c in rule["fields"][-1]["classifications"] if c != "location"]
    rule["fields"].insert(-1, {"classifications": ["location"], "action": "withhold"})
    data["tests"] = [t for t in data["tests"] if t.get("subscriber") != "early_help"]
    return data


@pytest.fixture
def registers(tmp_path: Path):
    open_key_provider(tmp_path, create=True)  # the data directory's keystore (birth dates are sealed with it)
    regs = Registers.open(tmp_path)
    yield regs
    regs.close()


def test_diff_decides_under_the_registers_consent_and_case(sample) -> None:
    """Failed before: diff decided every event as if consent and case were unknown, so early help (consent, open
    case) never received anything and a change to what it receives was "changed": false."""
    new = parse_protocol(_without_location())
    events = [_referral()]
    blind = diff(sample, new, events)
    assert blind["subscribers"]["early_help"]["changed"] is False
    seen = diff(sample, new, events, lambda e: (ConsentState("given"), CaseFacts(case_open=True)))
    early = seen["subscribers"]["early_help"]
    assert early["changed"] is True and seen["changed"] is True
    assert any(p.startswith("subject.child.addresses[]") for p in early["fields_removed"])


def test_register_context_reads_consent_case_and_determinations(registers: Registers, sample) -> None:
    event = _attendance()
    token = event["subject"]["linkage"]["token"]
    registers.consent.put(token, ConsentState("not_sought", True, recorded_on="2026-04-28"))
    registers.cases.set(token, True, event["event_id"])
    request = registers.determinations.request_s47(token, requested_by="exampleshire-council",
                                                   partners=["exampleshire-hospitals"], enquiry_ref=None,
                                                   recorded_by="ig:test", at=REQUESTED_AT)
    consent, facts = register_context(registers, event)
    assert consent is not None and consent.summary()["objection"] is True
    assert facts == CaseFacts(case_open=True, s47_requested_of=frozenset({"exampleshire-hospitals"}))
    decision = decide(sample, event, "mash_hub", consent=consent, facts=facts)
    assert decision.delivered and decision.consent_override is not None
    registers.determinations.end_s47(request.request_id, by="ig:test", reason="withdrawn_in_error", at=ENDED_AT)
    assert register_context(registers, event)[1].s47_requested_of == frozenset()  # now: ended
    assert register_context(registers, event, at=DECIDED_AT)[1].s47_requested_of == {"exampleshire-hospitals"}
    assert register_context(registers, event, at="2026-05-01T00:00:00.000Z")[1].s47_requested_of == frozenset()
    # the diff's context is the same reader
    assert diff_context(registers)(event) == register_context(registers, event)


def _recorded(sample, event: dict, consent: ConsentState, facts: CaseFacts) -> dict:
    """The audit record the share stage wrote for this decision (what `explain --decision` starts from)."""
    d = decide(sample, event, "mash_hub", consent=consent, facts=facts).to_record()
    kept = {k: v for k, v in d.items() if v is not None and k != "human_decision"}
    return audit_record("decision", time=DECIDED_AT, actor="share", subject=event["subject"]["linkage"]["token"],
                        **kept)


def _registered(registers: Registers, event: dict) -> tuple[ConsentState, CaseFacts]:
    token = event["subject"]["linkage"]["token"]
    consent = ConsentState("not_sought", True, recorded_on="2026-04-28")
    registers.consent.put(token, consent)
    registers.cases.set(token, True, event["event_id"])
    request = registers.determinations.request_s47(token, requested_by="exampleshire-council",
                                                   partners=["exampleshire-hospitals"], enquiry_ref=None,
                                                   recorded_by="ig:test", at=REQUESTED_AT)
    registers.determinations.end_s47(request.request_id, by="ig:test", reason="withdrawn_in_error", at=ENDED_AT)
    return consent, CaseFacts(case_open=True, s47_requested_of=frozenset({"exampleshire-hospitals"}))


def test_a_recorded_decision_is_re_derived_as_it_was_decided(registers: Registers, sample) -> None:
    event = _attendance()
    record = _recorded(sample, event, *_registered(registers, event))
    assert record["outcome"] == "deliver" and record["consent_override"]["gateway"] == "children_act_1989_s47_9"
    result = explain_recorded(registers, sample, record, event)
    assert result["as_decided"]["same"] is True, result["as_decided"]
    assert result["facts"]["s47_requested_of"] == ["exampleshire-hospitals"]  # as at the decision, not now
    assert result["as_decided"]["as_of"]["consent"] == "now"  # said, not hidden
    changed = parse_protocol(_drop_rule())
    other = explain_recorded(registers, changed, record, event)
    assert other["as_decided"]["same"] is False and "outcome" in other["as_decided"]["differs_in"]
    assert not [s for s in SECRETS if s in json.dumps(other)]


def _drop_rule(rule_id: str = "mash-health-s47-9-assistance") -> dict:
    data = yaml.safe_load(SAMPLE.read_text())
    data["protocol"]["version"] = "1.9.0"
    data["rules"] = [r for r in data["rules"] if r["id"] != rule_id]
    data["tests"] = [t for t in data["tests"] if t["expect"].get("rule") != rule_id and "s47(9)" not in t["name"]]
    return data


def test_cli_explain_decision_exit_codes(registers: Registers, sample, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    event = _attendance()
    record = _recorded(sample, event, *_registered(registers, event))
    audit = open_audit_store(tmp_path, create_key=True)
    audit.append([record])
    audit.close()
    (tmp_path / "event.json").write_text(json.dumps(event))
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(_drop_rule(), sort_keys=False))
    monkeypatch.setenv("MASH_DATA_DIR", str(tmp_path))
    args = ["explain", "--decision", record["decision_id"], str(tmp_path / "event.json"), "--format", "text"]
    same = runner.invoke(app, [*args, "--protocol", str(SAMPLE)])
    assert same.exit_code == 0, same.output
    assert "today's protocol decides the SAME" in same.stdout and "DECISION: DELIVER" in same.stdout
    other = runner.invoke(app, [*args, "--protocol", str(tmp_path / "changed.yaml")])
    assert other.exit_code == 1, other.output
    assert "decides DIFFERENTLY in: outcome" in other.stdout
    unknown = runner.invoke(app, ["explain", "--decision", "dec-not-recorded", "--protocol", str(SAMPLE)])
    assert unknown.exit_code == 2 and "no decision record" in unknown.stderr
    assert not [s for s in SECRETS if s in same.stdout + other.stdout]


def test_cli_explain_takes_the_register_facts(tmp_path: Path) -> None:
    """Failed before: the CLI had --case-open only, so an s47(9) decision could not be explained from it."""
    event = _attendance()
    (tmp_path / "event.json").write_text(json.dumps(event))
    base = ["explain", str(tmp_path / "event.json"), "--protocol", str(SAMPLE), "--subscriber", "mash_hub",
            "--consent-status", "not_sought", "--objection", "--case-open"]
    without = json.loads(runner.invoke(app, base).stdout)
    assert without["decision"]["outcome"] == "withhold"
    result = runner.invoke(app, [*base, "--s47-requested-of", "exampleshire-hospitals", "--birth-date", "2016-05-14",
                                 "--not-adult-at-risk"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["decision"]["outcome"] == "deliver" and out["decision"]["rule_id"] == "mash-health-s47-9-assistance"
    assert out["facts"] == {"s47_requested_of": ["exampleshire-hospitals"], "adult_at_risk": False,
                            "birth_date_known": True}
    bad = runner.invoke(app, [*base, "--birth-date", "14/05/2016"])
    assert bad.exit_code == 2 and "--birth-date" in bad.stderr and "14/05/2016" not in bad.output


def test_cli_diff_prints_a_table_and_exits_1_on_a_change(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(make_event("social_care.section47_enquiry", "social_care",
                                            {"actual_start_date": "2026-05-04"}, risk="high")) + "\n")
    (tmp_path / "drop.yaml").write_text(yaml.safe_dump(_drop_rule("mash-s47-significant-harm"), sort_keys=False))
    same = copy.deepcopy(yaml.safe_load(SAMPLE.read_text()))
    same["protocol"]["version"] = "1.9.1"
    (tmp_path / "same.yaml").write_text(yaml.safe_dump(same, sort_keys=False))
    unchanged = runner.invoke(app, ["diff", "--from", str(SAMPLE), "--to", str(tmp_path / "same.yaml"),
                                    "--events", str(events)])
    assert unchanged.exit_code == 0, unchanged.output
    assert "no decision changes" in unchanged.stdout and "subscriber" in unchanged.stdout.splitlines()[2]
    machine = runner.invoke(app, ["diff", "--from", str(SAMPLE), "--to", str(tmp_path / "same.yaml"),
                                  "--events", str(events), "--json"])
    assert machine.exit_code == 0 and json.loads(machine.stdout)["changed"] is False
    changed = runner.invoke(app, ["diff", "--from", str(SAMPLE), "--to", str(tmp_path / "drop.yaml"),
                                  "--events", str(events)])
    assert changed.exit_code == 1, changed.output  # the change alters a decision: CI can stop on it
    assert "decisions CHANGE" in changed.stdout
    hub = next(line for line in changed.stdout.splitlines() if line.startswith("mash_hub "))
    assert hub.split()[:3] == ["mash_hub", "0", "1"] and "CHANGED" in hub
    assert not [x for x in SECRETS if x in changed.stdout]
