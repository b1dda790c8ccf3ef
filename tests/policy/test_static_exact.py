"""`policy diff --static` lists exactly what replaying its own counterexamples shows (issue 18).

test_prove.py shows replay ⊆ static: nothing a replay over events finds is missing. This is the other half: every
static change's counterexample, decided by the engine under OLD and NEW (and through `policy explain` for the
sample), shows that very change, so nothing static lists is spurious; and on generated protocol pairs the set of
(subscriber, event type, path, old outcome, new outcome) found by replaying all the static counterexamples equals
the static list.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from broker.cli.policy import app
from broker.policy import load_protocol
from broker.policy.compile import _index
from broker.policy.decision import Decision
from broker.policy.engine import decide
from broker.policy.facts import CaseFacts
from broker.policy.fields import field_table
from broker.policy.model import FieldRule, Protocol, Rule
from broker.policy.paths import present_paths
from broker.policy.prove import static_diff
from tests.policy.brute_force import random_conditions, random_protocol, random_rule
from tests.policy.test_prove import BROKEN_RULE, SAMPLE, SCHOOL_RULE

runner = CliRunner()


def facts_of_flags(flags: list[str]) -> CaseFacts:
    """The register facts a counterexample's `policy explain` flags give (prove.facts_flags read back)."""
    case_open = adult = None
    s47: set[str] = set()
    for flag in flags:
        name, _, value = flag.partition(" ")
        if name in ("--case-open", "--case-closed"):
            case_open = name == "--case-open"
        elif name in ("--adult-at-risk", "--not-adult-at-risk"):
            adult = name == "--adult-at-risk"
        elif name == "--s47-requested-of":
            s47.add(value)
        else:
            raise AssertionError(f"an explain flag this test cannot read: {name}")
    return CaseFacts(case_open=case_open, s47_requested_of=frozenset(s47), adult_at_risk=adult)


def event_state(decision: Decision) -> str:
    if decision.delivered:
        return "delivered"
    return "human_decision" if decision.human_decision else "withheld"


def leaf_state(decision: Decision, path: str) -> str:
    if not decision.delivered or path not in {*decision.released, *(p for p, _ in decision.masked)}:
        return "withheld"
    return "released" if path in decision.released else f"masked:{dict(decision.masked)[path]}"


Change = tuple[str, str, str | None, str, str]


def static_rows(found: dict[str, Any]) -> list[tuple[Change, dict[str, Any]]]:
    return [((name, event_type, row["path"], row["from"], row["to"]), row["counterexample"])
            for name, types in found["subscribers"].items() for event_type, rows in types.items() for row in rows]


def replayed(old: Protocol, new: Protocol, event: dict[str, Any], facts: CaseFacts) -> set[Change]:
    """Every change one concrete event shows, for every subscriber: the event's outcome and each present leaf's."""
    out: set[Change] = set()
    event_type = str(event["event_type"])
    for name in dict.fromkeys([*old.subscribers, *new.subscribers]):
        a, b = decide(old, event, name, facts=facts), decide(new, event, name, facts=facts)
        if event_state(a) != event_state(b):
            out.add((name, event_type, None, event_state(a), event_state(b)))
        for path in present_paths(event):
            if leaf_state(a, path) != leaf_state(b, path):
                out.add((name, event_type, path, leaf_state(a, path), leaf_state(b, path)))
    return out


def check_exact(old: Protocol, new: Protocol) -> set[Change]:
    found = static_diff(old, new)
    rows = static_rows(found)
    listed = {change for change, _ in rows}
    assert len(listed) == len(rows) == found["changes"]
    shown: set[Change] = set()
    for change, ce in rows:
        name, _type, path, was, now = change
        facts = facts_of_flags(ce["facts"])
        a, b = decide(old, ce["event"], name, facts=facts), decide(new, ce["event"], name, facts=facts)
        assert (a.rule_id, b.rule_id) == (ce["rule_from"], ce["rule_to"]), change
        got = (event_state(a), event_state(b)) if path is None else (leaf_state(a, path), leaf_state(b, path))
        assert got == (was, now), f"the counterexample for {change} shows {got}"
        shown |= replayed(old, new, ce["event"], facts)
    assert shown == listed, f"replayed, not listed: {sorted(shown - listed, key=repr)[:3]}; listed, not shown: " \
                            f"{sorted(listed - shown, key=repr)[:3]}"
    return listed


def _retable(rule: Rule, fields: list[FieldRule]) -> Rule:
    # a fresh partition memo: replace() would share the old rule's, split by the old table
    return dataclasses.replace(rule, field_rules=tuple(fields), partitions={},
                               tables={t: field_table(t, fields) for t in sorted(rule.event_types)})


def changed_version(rng: random.Random, old: Protocol) -> Protocol:
    """The next version: one rule's conditions redrawn, one field rule's action moved, a rule added or dropped."""
    rules = list(old.rules)
    i = rng.randrange(len(rules))
    edit = rng.choice(("conditions", "field", "add", "drop" if len(rules) > 1 else "add"))
    if edit == "conditions":
        from broker.policy.compile import conditions_of
        rules[i] = dataclasses.replace(rules[i], conditions=conditions_of(random_conditions(rng,
                                                                                            rules[i].event_types)))
    elif edit == "field":
        fields = list(rules[i].field_rules)
        j = rng.randrange(len(fields))
        action = rng.choice([a for a in ("release", "withhold", "mask") if a != fields[j].action])
        fields[j] = dataclasses.replace(fields[j], action=action, mask="keyed_hash" if action == "mask" else None)
        rules[i] = _retable(rules[i], fields)
    elif edit == "add":
        rules.insert(rng.randrange(len(rules) + 1), dataclasses.replace(random_rule(rng, len(rules) + 7)))
    else:
        del rules[i]
    return dataclasses.replace(old, version="2.0.0", rules=tuple(rules), index=_index(old.subscribers, tuple(rules)))


@pytest.mark.parametrize("seed", range(12))
def test_replaying_the_static_counterexamples_gives_exactly_the_static_list(seed: int) -> None:
    rng = random.Random(seed)
    old = random_protocol(rng)
    new = changed_version(rng, old)
    check_exact(old, new)


def test_the_samples_static_changes_are_each_shown_by_policy_explain(tmp_path: Path) -> None:
    """The sample, and the sample with the school's CP-plan rule releasing criminal data: every listed change
    is exact, and `policy explain` on each counterexample under OLD and NEW shows it."""
    text = SAMPLE.read_text(encoding="utf-8")
    new_file = tmp_path / "new.yaml"
    new_file.write_text(text.replace(SCHOOL_RULE, BROKEN_RULE), encoding="utf-8")
    old, new = load_protocol(SAMPLE, prove=False), load_protocol(new_file, prove=False)
    listed = check_exact(old, new)
    assert listed
    rows = static_rows(static_diff(old, new))
    for (name, _type, path, was, now), ce in rows[:: max(1, len(rows) // 4)]:
        event_file = tmp_path / "EVENT.json"
        event_file.write_bytes(orjson.dumps(ce["event"]))
        flags = [part for flag in ce["facts"] for part in flag.split()]
        states = []
        for protocol_file in (SAMPLE, new_file):
            shown = runner.invoke(app, ["explain", "--protocol", str(protocol_file), "--subscriber", name,
                                        str(event_file), *flags])
            assert shown.exit_code == 0, shown.output
            fields = {f["path"]: f["outcome"] for f in json.loads(shown.output)["fields"]}
            states.append(fields.get(path, "withheld"))
        assert [s.split(":")[0] for s in states] == [was.split(":")[0], now.split(":")[0]], (path, states)
