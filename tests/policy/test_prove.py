"""Invariants proven at load; a broken rule refused with a counterexample `policy explain` confirms; the static
permission diff finds every change a replay finds, and more (issue 18)."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from broker.cli.policy import app
from broker.policy import Protocol, ProtocolError, domains, load_protocol
from broker.policy.domains import CONDITION_DIMENSIONS, with_leaf
from broker.policy.invariants import BASIS_GROUPS
from broker.policy.model import Conditions
from broker.policy.prove import facts_flags, prove, replay_changes, static_changes, static_diff
from broker.schema.classification import field_classes
from broker.schema.loader import load_schema
from tests.conftest import ROOT
from tests.policy.test_prove_complete import concrete

SAMPLE = ROOT / "deploy" / "protocols" / "sample-partnership.yaml"
runner = CliRunner()
SCHOOL_RULE = "      - classifications: [identity, social_care, education]\n        action: release"
# The deliberately broken rule: the school's CP-plan notices start releasing criminal offence data.
BROKEN_RULE = "      - classifications: [identity, social_care, education, criminal]\n        action: release"


def _variant(tmp_path: Path, old: str, new: str, name: str = "variant.yaml") -> Path:
    text = SAMPLE.read_text(encoding="utf-8")
    assert text.count(old) == 1
    path = tmp_path / name
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_the_sample_carries_its_promises_and_they_are_proven_at_load() -> None:
    protocol = load_protocol(SAMPLE)  # proves, or raises
    ids = {i.id for i in protocol.invariants}
    assert {"objection-set-aside-only-by-duty", "health-data-has-article-9-condition",
            "school-no-police-intelligence", "restricted-whereabouts-only-to-the-la"} <= ids
    proof = prove(protocol)
    assert proof.proven and proof.points > 1000 and not proof.counterexamples


def test_policy_test_prints_each_invariant_proven() -> None:
    result = runner.invoke(app, ["test", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    assert "PROVEN  invariant school-no-police-intelligence" in result.output
    assert "9 of 9 invariant(s) proven" in result.output or "invariant(s) proven" in result.output


def test_a_broken_rule_is_refused_at_load_with_a_counterexample_explain_confirms(tmp_path: Path) -> None:
    broken = _variant(tmp_path, SCHOOL_RULE, BROKEN_RULE)
    with pytest.raises(ProtocolError) as refused:
        load_protocol(broken)
    message = str(refused.value)
    assert "invariants[3]" in message and "school-no-police-intelligence" in message
    assert "school-cp-plan-start-end" in message and "mash-broker policy explain" in message
    # policy test says the same, and fails
    tested = runner.invoke(app, ["test", str(broken)])
    assert tested.exit_code == 1 and "BROKEN  invariant school-no-police-intelligence" in tested.output
    # the counterexample, run through policy explain on the refused file, shows the rule releasing criminal data
    proof = prove(load_protocol(broken, prove=False))
    ce = next(c for c in proof.counterexamples if c.invariant == "school-no-police-intelligence")
    event_file = tmp_path / "EVENT.json"
    event_file.write_bytes(orjson.dumps(ce.event))
    flags = [part for flag in facts_flags(ce.facts) for part in flag.split()]
    assert ce.to_dict(str(broken))["explain"].startswith(f"mash-broker policy explain --protocol {broken}")
    shown = runner.invoke(app, ["explain", "--protocol", str(broken), "--subscriber", ce.subscriber,
                                str(event_file), *flags])
    assert shown.exit_code == 0, shown.output
    explained = json.loads(shown.output)
    assert explained["decision"]["rule_id"] == "school-cp-plan-start-end"
    released = {f["path"]: f for f in explained["fields"] if f["outcome"] != "withheld"}
    assert ce.paths and all(released[p]["classification"] == "criminal" for p in ce.paths)
    # and the counterexample is small: only what the decision turns on, plus the leaf it is about
    assert len(orjson.dumps(ce.event)) < 600


def test_every_condition_of_the_language_has_a_finite_domain() -> None:
    assert {f.name for f in fields(Conditions)} <= set(CONDITION_DIMENSIONS)
    assert set(CONDITION_DIMENSIONS.values()) <= set(domains.BY_NAME)


def test_a_condition_without_a_domain_is_refused_as_unprovable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delitem(CONDITION_DIMENSIONS, "case_open")
    protocol = load_protocol(SAMPLE, prove=False)
    proof = prove(protocol)
    assert not proof.proven and proof.unprovable == ["case_open"]
    # bytes differ from the sample's, so the load is proven afresh (not served from the memo)
    variant = _variant(tmp_path, "title: Exampleshire MASH information sharing protocol",
                       "title: Exampleshire MASH information sharing protocol (copy)")
    with pytest.raises(ProtocolError, match="no finite domain for condition"):
        load_protocol(variant)


def test_the_schema_lists_the_basis_groups_invariants_may_require() -> None:
    schema = json.loads((ROOT / "schemas" / "protocol.schema.json").read_text())
    assert set(schema["$defs"]["basis_group"]["enum"]) == set(BASIS_GROUPS)


def test_an_invariant_path_that_matches_nothing_is_refused(tmp_path: Path) -> None:
    variant = _variant(tmp_path, "    shares: {classifications: [health]}\n",
                       "    shares: {paths: [payload.no_such_field]}\n")
    with pytest.raises(ProtocolError, match="matches no field of the invariant's event types"):
        load_protocol(variant, prove=False)


# --- the static diff --------------------------------------------------------------------------------------------

GP_RULE_FIELDS = "      - classifications: [identity, health]\n        action: release"


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    tmp = tmp_path_factory.mktemp("static")
    text = SAMPLE.read_text(encoding="utf-8")
    assert text.count(SCHOOL_RULE) == 1
    # v2: the school's CP-plan notices also release criminal data (a change an IG board must see)
    new = tmp / "new.yaml"
    new.write_text(text.replace(SCHOOL_RULE, BROKEN_RULE), encoding="utf-8")
    old = load_protocol(SAMPLE, prove=False)
    return SAMPLE, new, static_diff(old, load_protocol(new, prove=False))


@pytest.fixture(scope="module")
def two_protocols(two_versions) -> tuple[Protocol, Protocol]:
    """Both versions compiled once for the module (frozen data: replaying events never changes them); loading is
    most of a replay's cost, and every example replays the same two files."""
    return load_protocol(two_versions[0], prove=False), load_protocol(two_versions[1], prove=False)


def test_static_diff_names_each_changed_path_with_when_and_a_counterexample(two_versions) -> None:
    _, _, found = two_versions
    assert found["changed"]
    rows = found["subscribers"]["oakfield_dsl"]["social_care.child_protection_plan_started"]
    criminal = {p for p, label in field_classes("social_care.child_protection_plan_started").items()
                if label == "criminal"}
    changed = {r["path"] for r in rows if r["from"] == "withheld" and r["to"] == "released"}
    # every criminal leaf the new rule's own table releases (its path rules still withhold the related people)
    rule = load_protocol(two_versions[1], prove=False).rule("school-cp-plan-start-end")
    table = rule.tables["social_care.child_protection_plan_started"]
    assert changed == {p for p in criminal if table[p].action == "release"} and changed
    assert set(found["subscribers"]) == {"oakfield_dsl"}  # nothing else moves
    row = next(r for r in rows if r["path"] in criminal)
    assert row["when"]["registered_school"] == [True] and row["when"]["age"] == ["under_18"]
    ce = row["counterexample"]
    assert ce["rule_from"] == ce["rule_to"] == "school-cp-plan-start-end"


def test_static_diff_on_the_command_line(two_versions) -> None:
    old, new, _ = two_versions
    result = runner.invoke(app, ["diff", "--from", str(old), "--to", str(new), "--static"])
    assert result.exit_code == 1, result.output
    assert "oakfield_dsl:" in result.output and "withheld -> released" in result.output
    same = runner.invoke(app, ["diff", "--from", str(old), "--to", str(old), "--static"])
    assert same.exit_code == 0 and "no outcome can change" in same.output


@st.composite
def sample_events(draw: st.DrawFn) -> dict:
    event, _facts = draw(concrete())
    event = dict(event, event_type=draw(st.sampled_from(("social_care.child_protection_plan_started",
                                                           "social_care.child_protection_plan_ended"))))
    for leaf in draw(st.lists(st.sampled_from(sorted(field_classes(event["event_type"]))), max_size=8)):
        event = with_leaf(event, leaf)
    return event


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(events=st.lists(sample_events(), min_size=20, max_size=20))
def test_static_diff_lists_everything_a_replay_finds_and_more(two_versions, two_protocols, events) -> None:
    static = set(static_changes(two_versions[2]))
    replayed = replay_changes(*two_protocols, events)
    assert replayed <= static


def test_the_leaf_placeholders_fit_the_schema() -> None:
    assert load_schema()  # placeholders are typed from it: a boolean leaf gets false, never a truthy string
    event = with_leaf({"event_type": "health.urgent_care_attendance"}, "subject.child.restricted")
    assert event["subject"]["child"]["restricted"] is False
