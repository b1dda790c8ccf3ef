"""Loading and compiling protocols: schema errors named by YAML path and line, cross-reference and lawful-basis
checks, lazy subscriber keys."""

from __future__ import annotations

import base64
import json
import shutil

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from broker.policy import ProtocolError, SubscriberKeyError, key_problems, load_protocol, parse_protocol
from broker.policy.codes import ALIASES, LAWFUL_BASIS, MASK_KINDS
from broker.schema.loader import load_schema
from tests.policy.conftest import SAMPLE, base_protocol, compile_data

BAD_MASK_YAML = """\
protocol: {id: t, version: "1", title: T, effective_from: "2026-01-01"}
purposes: {triage: Test}
partners:
  - {id: la, name: LA, agency: social_care, role: safeguarding_partner}
subscribers:
  - {name: hub, partner: la, role: hub, purposes: [triage], key_file: keys/hub.pub, key_suite: x25519,
     delivery: kafka}
rules:
  - id: r1
    description: test
    subscribers: [hub]
    event_types: [social_care.referral]
    purpose: triage
    lawful_basis: [uk_gdpr_art6_1_e]
    fields:
      - {classifications: [identity], action: release}
      - paths: [payload.referral_date]
        action: mask
        mask: Testchild-secret-mask
"""


def problems_of(data) -> list[tuple[str, str]]:
    with pytest.raises(ProtocolError) as info:
        compile_data(data)
    return [(p.path, p.reason) for p in info.value.problems]


def test_sample_protocol_compiles_with_every_subscriber_indexed(sample) -> None:
    assert sample.revision == "exampleshire-mash-isp@1.5.0"
    assert list(sample.subscribers) == ["mash_hub", "early_help", "police_ppu", "oakfield_dsl", "riverside_gp"]
    assert {name for name, _ in sample.index} == set(sample.subscribers)
    assert sample.subscribers["riverside_gp"].key_file == SAMPLE.parent / "keys" / "riverside_gp.pub"


def test_schema_error_names_yaml_path_and_line_never_the_value() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_protocol(BAD_MASK_YAML, "bad.yaml")
    err = info.value
    assert err.path == "rules[0].fields[1].mask"
    assert err.line == 19
    assert err.reason.startswith("must be one of: redact, partial, keyed_hash")
    assert "Testchild" not in str(err)
    assert str(err).startswith("bad.yaml:19: rules[0].fields[1].mask: ")


@pytest.mark.parametrize(("change", "path", "reason"), [
    (lambda d: d["subscribers"][0].update(key_file="k.pub"), "subscribers[0]",
     "give exactly one of public_key or key_file"),
    (lambda d: d["rules"][0]["fields"][0].update(mask="redact"), "rules[0].fields[0]",
     "'mask' is allowed only with action: mask"),
    (lambda d: d["rules"][0]["fields"][0].update(paths=["payload.referral_date"]), "rules[0].fields[0]",
     "give exactly one of classifications or paths"),
    (lambda d: d["rules"][0].update(colour="red"), "rules[0]", "unknown key(s) 'colour'"),
    (lambda d: d["rules"][0].pop("purpose"), "rules[0]", "required key 'purpose' is missing"),
    (lambda d: d["rules"][0].update(lawful_basis=["gdpr_whatever"]), "rules[0].lawful_basis[0]",
     "must be one of: uk_gdpr_art6_1_a"),
    (lambda d: d["protocol"].update(effective_from="2026-13-45"), "protocol.effective_from", "not a valid date"),
    (lambda d: d["subscribers"][0].update(name="Hub Team"), "subscribers[0].name", "must be 2-49 lower-case"),
    (lambda d: d["rules"][0].update(event_types=["Social Care"]), "rules[0].event_types[0]", "must be an event type"),
    (lambda d: d["rules"][0].update(conditions={"subject_under_18": False}), "rules[0].conditions.subject_under_18",
     "must be true"),
])
def test_schema_errors_are_named_precisely(change, path, reason) -> None:
    data = base_protocol()
    change(data)
    found = problems_of(data)
    assert any(p == path and r.startswith(reason) for p, r in found), found


def test_all_problems_are_reported_at_once() -> None:
    data = base_protocol()
    data["rules"][0]["subscribers"] = ["nobody"]
    data["rules"][0]["event_types"] = ["nonsense.*", "police.no_such_event"]
    found = problems_of(data)
    assert ("rules[0].subscribers[0]", "neither a subscriber name nor a subscriber role") in found
    assert ("rules[0].event_types[0]", "matches no event type in the canonical event schema") in found
    assert ("rules[0].event_types[1]", "matches no event type in the canonical event schema") in found


def _rule(**changes):
    data = base_protocol()
    data["rules"][0].update(changes)
    return data


@pytest.mark.parametrize(("data", "path", "reason"), [
    (_rule(lawful_basis=["uk_gdpr_art6_1_e", "consent", "dpa2018_sch1_para18"]), "rules[0].lawful_basis",
     "discloser: cite exactly one UK GDPR Art 6 basis"),
    (_rule(lawful_basis=["consent", "children_act_1989_s47"]), "rules[0].lawful_basis",
     "discloser: a rule relying on consent (Art 6(1)(a)) must not cite a statutory duty or power"),
    (_rule(lawful_basis=["uk_gdpr_art6_1_e", "children_act_1989_s47"]), "rules[0].lawful_basis",
     "discloser: releases criminal offence data (UK GDPR Art 10): cite a DPA 2018 Schedule 1 condition"),
    (_rule(lawful_basis=["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "children_act_1989_s47"]),
     "rules[0].lawful_basis", "discloser: uk_gdpr_art9_2_g needs a DPA 2018 Schedule 1 Part 2 condition"),
    (_rule(fields=[{"classifications": ["health"], "action": "mask", "mask": "redact"}],
           lawful_basis=["uk_gdpr_art6_1_e", "dpa2018_sch1_para6", "dpa2018_s36_4", "children_act_1989_s47"]),
     "rules[0].lawful_basis", "discloser: releases special category data (health)"),
    (_rule(purpose="care"), "rules[0].purpose", "subscriber hub is not registered for this purpose"),
    (_rule(purpose="unheard_of"), "rules[0].purpose", "not a purpose defined under purposes"),
    (_rule(fields=[{"paths": ["payload.no_such_field"], "action": "release"}]), "rules[0].fields[0].paths[0]",
     "matches no field of the rule's event types"),
    (_rule(conditions={"registered_with": "school"}), "rules[0].conditions.registered_with",
     "subscriber hub has no organisation.urn"),
    (_rule(fields=[{"classifications": ["identity"], "action": "release"},
                   {"classifications": ["contact", "identity"], "action": "withhold"}]),
     "rules[0].fields[1].classifications[1]", "already given a field rule at rules[0].fields[0]"),
    (_rule(conditions={"risk_at_least": "high", "risk_at_most": "low"}), "rules[0].conditions",
     "risk_at_least is above risk_at_most"),
])
def test_semantic_checks(data, path, reason) -> None:
    found = problems_of(data)
    assert any(p == path and r.startswith(reason) for p, r in found), found


def test_cross_references_and_duplicates() -> None:
    data = base_protocol()
    data["subscribers"][1]["partner"] = "nope"
    data["subscribers"][1]["purposes"] = ["care", "missing_purpose"]
    data["rules"].append(dict(data["rules"][0]))
    data["tests"] = [{"name": "t", "subscriber": "hub", "event": {"event_type": "police.nope"},
                      "expect": {"outcome": "deliver", "rule": "no-such-rule"}}]
    found = problems_of(data)
    assert ("subscribers[1].partner", "not the id of a partner in partners") in found
    assert ("subscribers[1].purposes[1]", "not a purpose defined under purposes") in found
    assert ("rules[1].id", "duplicate id: already used earlier in rules") in found
    assert ("tests[0].event.event_type", "not an event type in the canonical event schema") in found
    assert ("tests[0].expect.rule", "not the id of a rule in this protocol") in found


def test_yaml_problems_name_the_line() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_protocol("protocol: {id: t}\nrules: [\n", "broken.yaml")
    assert info.value.line is not None and "not valid YAML" in info.value.reason
    duplicated = BAD_MASK_YAML.replace("    purpose: triage\n", "    purpose: triage\n    purpose: other\n")
    with pytest.raises(ProtocolError) as info:
        parse_protocol(duplicated, "dup.yaml")
    assert info.value.line == 14 and "duplicate key" in info.value.reason
    with pytest.raises(ProtocolError, match="a YAML mapping at the top level"):
        parse_protocol("- just\n- a list\n", "list.yaml")


def test_yaml_dates_stay_strings_and_merge_keys_work() -> None:
    text = BAD_MASK_YAML.replace('effective_from: "2026-01-01"', "effective_from: 2026-01-01").replace(
        "mask: Testchild-secret-mask", "mask: year_only")
    protocol = parse_protocol(text, "ok.yaml")
    assert protocol.effective_from == "2026-01-01"


def test_missing_file_is_a_protocol_error(tmp_path) -> None:
    with pytest.raises(ProtocolError, match="file not found"):
        load_protocol(tmp_path / "absent.yaml")


def test_inline_key_is_checked_at_load() -> None:
    data = base_protocol()
    data["subscribers"][0]["public_key"] = base64.b64encode(b"short").decode() + "A" * 40
    assert ("subscribers[0].public_key", "not a base64 x25519 public key (32 bytes)") in problems_of(data)
    data["subscribers"][0].update(public_key=base64.b64encode(bytes(1216)).decode(), key_suite="mlkem768-x25519")
    assert compile_data(data).subscribers["hub"].public_key() == bytes(1216)


def test_key_files_are_read_lazily(tmp_path) -> None:
    shutil.copy(SAMPLE, tmp_path / "p.yaml")
    protocol = load_protocol(tmp_path / "p.yaml")  # keys/ does not exist yet: loading still works
    gp = protocol.subscribers["riverside_gp"]
    with pytest.raises(SubscriberKeyError, match=r"riverside_gp: key file .* not found"):
        gp.public_key()
    assert len(key_problems(list(protocol.subscribers.values()))) == 5
    (tmp_path / "keys").mkdir()
    public = X25519PrivateKey.generate().public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    (tmp_path / "keys" / "riverside_gp.pub").write_text(base64.b64encode(raw).decode() + "\n")
    assert gp.public_key() == raw
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "keys" / "riverside_gp.pub").write_bytes(pem)
    assert gp.public_key() == raw
    (tmp_path / "keys" / "mash_hub.pub").write_bytes(raw)  # an x25519 key where ML-KEM-768+X25519 is declared
    with pytest.raises(SubscriberKeyError, match="is not a mlkem768-x25519 public key"):
        protocol.subscribers["mash_hub"].public_key()


def test_vocabulary_matches_the_protocol_schema() -> None:
    schema = json.loads((SAMPLE.parents[2] / "schemas" / "protocol.schema.json").read_text())
    defs = schema["$defs"]
    assert set(defs["lawful_basis_code"]["enum"]) == set(LAWFUL_BASIS) | set(ALIASES)
    assert set(defs["mask_kind"]["enum"]) == set(MASK_KINDS)
    event_schema = load_schema()
    from broker.schema.classification import CLASSIFICATIONS

    assert set(defs["classification"]["enum"]) == set(CLASSIFICATIONS)
    assert defs["consent_status"]["enum"] == event_schema["properties"]["consent"]["properties"]["status"]["enum"]
