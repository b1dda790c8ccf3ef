"""`mash-broker policy map`: the process map is the protocol's, agrees with the decision engine, shows a protocol
change as a diff, and reads nothing but the protocol."""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from broker.cli.main import app as main_app
from broker.insight import processmap as pm
from broker.policy import decide, load_protocol
from broker.policy.facts import CaseFacts
from broker.schema.classification import field_classes
from tests.conftest import ROOT
from tests.policy.conftest import SAMPLE, SECRETS, make_event

runner = CliRunner()
needs_dot = pytest.mark.skipif(not any((Path(p) / "dot").is_file() for p in os.environ.get("PATH", "").split(":")),
                               reason="Graphviz's dot is not installed (Debian package graphviz; .ci/run installs it)")


@pytest.fixture(scope="module")
def sample():
    return load_protocol(SAMPLE, prove=False)


@pytest.fixture(scope="module")
def sample_map(sample):
    return pm.process_map(sample)


def _selected(protocol, rule) -> list[str]:
    return [s.name for s in protocol.subscribers.values() if s.name in rule.subscribers or s.role in rule.subscribers]


def test_every_rule_of_the_sample_has_its_edges_with_basis(sample, sample_map) -> None:
    """Each rule, for each event type it covers and each subscriber it names (by name or role), is one edge
    carrying that rule's id and lawful bases; and there is no edge the protocol does not state."""
    expected = {(t, r.id, s) for r in sample.rules for t in r.event_types for s in _selected(sample, r)}
    assert {e.key for e in sample_map.edges} == expected
    assert {e.rule_id for e in sample_map.edges} == {r.id for r in sample.rules}
    for e in sample_map.edges:
        rule = sample.rule(e.rule_id)
        assert e.lawful_basis == rule.lawful_basis
        # the four lists partition the event type's classifications
        lists = [*e.released, *(c for c, _ in e.masked), *e.withheld, *e.partly]
        assert sorted(lists) == sorted(set(field_classes(e.event_type).values()))
    # rules that name a sender: the map says who
    police = sample_map.edge(("police.domestic_abuse_notification", "mash-police-contact", "mash_hub"))
    assert police is not None and police.senders == ("police",)
    assert "under 18" in police.conditions
    watch = sample_map.edge(("mash.enquiry", "mash-hub-watch", "mash_hub"))
    assert watch is not None and watch.senders == ("broker",)


EVENTS = [
    ("social_care.referral", "social_care", {"referral_date": "2026-05-04", "referral_source": "5A",
                                             "primary_need_code": "N1"}),
    ("social_care.section47_enquiry", "social_care", {"actual_start_date": "2026-05-01"}),
    ("education.exclusion", "education", {"category": "suspension"}),
    ("social_care.child_protection_plan_started", "social_care", {"start_date": "2026-05-01",
                                                                  "initial_category_of_abuse": "NEG"}),
]


@pytest.mark.parametrize(("event_type", "agency", "payload"), EVENTS)
def test_the_map_never_disagrees_with_a_decision(sample, sample_map, event_type, agency, payload) -> None:
    """Decide real events for every subscriber: each delivery is on a map edge of the rule the engine chose, and
    every field it released, masked or withheld has a classification the edge lists under that outcome."""
    event = make_event(event_type, agency, payload, risk="high")
    delivered = 0
    for name in sample.subscribers:
        d = decide(sample, event, name, facts=CaseFacts(case_open=True))
        if d.outcome != "deliver":
            continue
        delivered += 1
        edge = sample_map.edge((event_type, d.rule_id, name))
        assert edge is not None, f"{name} receives {event_type} under {d.rule_id}, which the map does not draw"
        labels = field_classes(event_type)
        masked = {c for c, _ in edge.masked}
        assert {labels[p] for p in d.released} <= set(edge.released) | set(edge.partly) | masked
        assert {labels[p] for p in d.withheld} <= set(edge.withheld) | set(edge.partly) | masked
        for path, kind in d.masked:
            assert kind in dict(edge.masked)[labels[path]]
        assert edge.lawful_basis == d.lawful_basis
    assert delivered, f"no subscriber received the {event_type} test event: the test proves nothing"


def _changed_sample(tmp_path: Path) -> Path:
    """The sample with one rule removed, one rule's fields changed and one rule naming a new subscriber."""
    data = yaml.safe_load(SAMPLE.read_text())
    data["protocol"]["version"] = "9.9.9"
    data["rules"] = [r for r in data["rules"] if r["id"] != "gp-urgent-care-attendances"]
    data["tests"] = [t for t in data["tests"] if t["expect"].get("rule") != "gp-urgent-care-attendances"]
    for rule in data["rules"]:
        if rule["id"] == "school-education-concerns":
            rule["fields"] = [f for f in rule["fields"] if "education" not in f.get("classifications", ())]
        if rule["id"] == "school-cp-plan-start-end":
            rule["event_types"] = [*rule["event_types"], "social_care.child_protection_plan_reviewed"]
    new = tmp_path / "protocols" / "changed.yaml"
    new.parent.mkdir()
    new.write_text(yaml.safe_dump(data, sort_keys=False))
    (new.parent / "keys").symlink_to(SAMPLE.parent / "keys")
    return new


def test_a_protocol_change_shows_as_a_map_diff(tmp_path, sample_map) -> None:
    changed = pm.process_map(load_protocol(_changed_sample(tmp_path), prove=False))
    diff = pm.map_diff(sample_map, changed)
    assert {e.key for e in diff.removed} == {("health.urgent_care_attendance", "gp-urgent-care-attendances",
                                              "riverside_gp")}
    assert {e.key for e in diff.added} == {("social_care.child_protection_plan_reviewed", "school-cp-plan-start-end",
                                            "oakfield_dsl")}
    assert {a.rule_id for _, a, _ in diff.changed} == {"school-education-concerns"}
    assert all("released" in d or "withheld" in d or "partly" in d for _, _, d in diff.changed)
    text = pm.format_diff(diff)
    assert "- health.urgent_care_attendance -> riverside_gp under gp-urgent-care-attendances" in text
    assert "+ social_care.child_protection_plan_reviewed -> oakfield_dsl under school-cp-plan-start-end" in text
    assert "~ education.exclusion -> oakfield_dsl under school-education-concerns" in text
    assert pm.map_diff(sample_map, sample_map).empty


@needs_dot
def test_map_command_draws_the_sample_and_a_diff_distinctly(tmp_path) -> None:
    out = tmp_path / "map.svg"
    result = runner.invoke(main_app, ["policy", "map", str(SAMPLE), "--out", str(out)])
    assert result.exit_code == 0, result.output
    svg = html.unescape(out.read_text())  # dot writes a hyphen as &#45;
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    sample = load_protocol(SAMPLE, prove=False)
    for rule in sample.rules:
        assert rule.id in svg and rule.id in result.stdout
    for name in sample.subscribers:
        assert name in svg
    assert pm.COLOURS["added"] not in svg and pm.COLOURS["removed"] not in svg  # no diff, no diff colours

    diffed = tmp_path / "diff.svg"
    result = runner.invoke(main_app, ["policy", "map", str(_changed_sample(tmp_path)), "--against", str(SAMPLE),
                                      "--out", str(diffed)])
    assert result.exit_code == 1, result.output  # the map changed
    svg = html.unescape(diffed.read_text())
    for status in ("added", "removed", "changed"):
        assert f'stroke="{pm.COLOURS[status]}"' in svg, status
    assert 'stroke-dasharray' in svg  # the removed route is dashed, so it reads without colour too
    assert "gp-urgent-care-attendances" in svg  # a removed rule is still drawn, to show what went
    assert "1 added, 1 removed" in result.stdout

    as_json = runner.invoke(main_app, ["policy", "map", str(SAMPLE), "--json"])
    assert as_json.exit_code == 0
    edges = json.loads(as_json.stdout)["edges"]
    assert {e["rule_id"] for e in edges} == {r.id for r in sample.rules}


def test_map_command_refuses_bad_input_plainly(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("protocol: {id: x}\n")
    result = runner.invoke(main_app, ["policy", "map", str(bad)])
    assert result.exit_code == 2 and "bad.yaml" in result.stderr
    nowhere = tmp_path / "missing" / "map.svg"
    result = runner.invoke(main_app, ["policy", "map", str(SAMPLE), "--out", str(nowhere)])
    assert result.exit_code == 2 and "cannot write" in result.stderr and "Traceback" not in result.stderr


def test_without_graphviz_the_error_says_what_to_install(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no dot on the path
    result = runner.invoke(main_app, ["policy", "map", str(SAMPLE), "--out", str(tmp_path / "m.svg")])
    assert result.exit_code == 2 and "apt-get install graphviz" in result.stderr


def test_the_map_reads_the_protocol_only(tmp_path) -> None:
    """Nothing but the protocol file: the map's code loads no store, Kafka, service or audit module (so it cannot
    read an event), the command leaves a data directory that does not exist absent, and no child's value appears."""
    probe = ("import sys; from broker.policy import load_protocol; from broker.insight import processmap as pm\n"
             "pm.to_dot(pm.process_map(load_protocol(sys.argv[1], prove=False)))\n"
             "print('TOUCHED', sorted(m for m in sys.modules if m.startswith(('broker.stores', 'broker.kafka', "
             "'broker.service', 'broker.audit', 'broker.crypto', 'aiokafka'))))")
    done = subprocess.run([sys.executable, "-c", probe, str(SAMPLE)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert "TOUCHED []" in done.stdout, (done.stdout + done.stderr)[-2000:]

    data_dir = tmp_path / "no-data-here"
    env = {**os.environ, "MASH_DATA_DIR": str(data_dir), "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-m", "broker.cli.main", "policy", "map", str(SAMPLE)], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("process map of exampleshire-mash-isp@")
    assert not data_dir.exists()
    for secret in SECRETS:
        assert secret not in done.stdout
