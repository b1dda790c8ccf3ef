"""Protocol YAML -> a compiled Protocol: schema check, cross-reference and lawful-basis checks, field tables.

Every problem is a ProtocolError naming the YAML path (and line, when read from a file) and the reason; all of
them are collected so an author fixes a file in one pass.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from broker.policy.codes import ALIASES, CONSENT, KEY_SUITES, RISK_ORDER
from broker.policy.digest import digest_problems
from broker.policy.errors import ProtocolError
from broker.policy.fields import covers, field_table
from broker.policy.governance import build_governance, governance_problems
from broker.policy.hub import build_hub
from broker.policy.lawful import (
    Recipient,
    RuleFacts,
    overriding_duty,
    possible_sources,
    relies_on_para18_alone,
    rule_problems,
)
from broker.policy.model import Conditions, FieldRule, Partner, Protocol, Rule, Subscriber
from broker.policy.schema_check import check_schema
from broker.policy.source import line_of, parse_yaml, yaml_path
from broker.policy.thresholds import build_scales
from broker.schema.classification import CRIMINAL, SPECIAL, field_classes, leaf_markers
from broker.schema.loader import load_schema


def event_types() -> tuple[str, ...]:
    return tuple(load_schema()["$defs"]["event_type"]["enum"])


def expand_event_types(pattern: str) -> frozenset[str]:
    """`*` -> every type; `social_care.*` -> that family; an exact name -> itself if the schema knows it."""
    known = event_types()
    if pattern == "*":
        return frozenset(known)
    if pattern.endswith(".*"):
        return frozenset(t for t in known if t.startswith(pattern[:-1]))
    return frozenset({pattern}) if pattern in known else frozenset()


class _Problems:
    def __init__(self, origin: str, node: yaml.Node | None) -> None:
        self.origin, self.node = origin, node
        self.items: list[ProtocolError] = []

    def add(self, parts: list[str | int], reason: str) -> None:
        self.items.append(ProtocolError(self.origin, yaml_path(parts), reason, line_of(self.node, parts)))

    def raise_any(self) -> None:
        if self.items:
            first = self.items[0]
            first.problems = list(self.items)
            raise first


def _duplicates(items: list[Mapping[str, Any]], key: str, section: str, problems: _Problems) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item[key] in seen:
            problems.add([section, i, key], f"duplicate {key}: already used earlier in {section}")
        seen.add(item[key])


def _subscribers(data: Mapping[str, Any], base_dir: Path | None, problems: _Problems) -> dict[str, Subscriber]:
    out = {}
    agency_of = {p["id"]: p["agency"] for p in data["partners"]}
    for i, raw in enumerate(data["subscribers"]):
        if raw["partner"] not in agency_of:
            problems.add(["subscribers", i, "partner"], "not the id of a partner in partners")
        elif agency_of[raw["partner"]] == "police" and "regime" not in raw:
            problems.add(["subscribers", i], "a police subscriber processes either for the law enforcement purposes "
                                             "(DPA 2018 Part 3, s31) or for another purpose (UK GDPR): say which "
                                             "with regime: dpa2018_part3 or uk_gdpr")
        for j, purpose in enumerate(raw["purposes"]):
            if purpose not in data["purposes"]:
                problems.add(["subscribers", i, "purposes", j], "not a purpose defined under purposes")
        key_b64 = raw.get("public_key")
        if key_b64 is not None:
            try:
                raw_key = base64.b64decode("".join(key_b64.split()), validate=True)
            except (binascii.Error, ValueError):
                raw_key = b""
            if len(raw_key) != KEY_SUITES[raw["key_suite"]]:
                problems.add(["subscribers", i, "public_key"],
                             f"not a base64 {raw['key_suite']} public key ({KEY_SUITES[raw['key_suite']]} bytes)")
        key_file = None
        if raw.get("key_file") is not None:
            path = Path(raw["key_file"])
            key_file = path if path.is_absolute() or base_dir is None else base_dir / path
        out[raw["name"]] = Subscriber(
            name=raw["name"], partner=raw["partner"], role=raw["role"], purposes=tuple(raw["purposes"]),
            key_suite=raw["key_suite"], delivery=raw["delivery"], public_key_b64=key_b64, key_file=key_file,
            organisation=dict(raw.get("organisation", {})), description=raw.get("description", ""),
            agency=agency_of.get(raw["partner"], ""), regime=raw.get("regime", "uk_gdpr"),
            confidentiality=raw.get("confidentiality"))
    return out


def expand_codes(codes: list[str] | None) -> tuple[str, ...] | None:
    """Aliases (`consent`) replaced by the codes they stand for, order kept, duplicates dropped."""
    if codes is None:
        return None
    out: list[str] = []
    for code in codes:
        out += [c for c in ALIASES.get(code, (code,)) if c not in out]
    return tuple(out)


def _check_lawful_basis(rule: Rule, i: int, selected: list[Subscriber], problems: _Problems) -> None:
    shared = frozenset(label for t, table in rule.tables.items() for leaf, label in field_classes(t).items()
                       if table[leaf].action != "withhold")
    marked = [(leaf, markers) for t, table in rule.tables.items() for leaf, markers in leaf_markers(t).items()
              if table[leaf].action != "withhold"]
    facts = RuleFacts(
        discloser_basis=rule.lawful_basis, recipient_basis=rule.recipient_basis,
        sources=possible_sources(rule.source_agencies, rule.event_types),
        recipients=tuple(Recipient(s.name, s.agency, s.regime, s.confidentiality) for s in selected),
        shared_labels=shared, under_18_only=rule.conditions.subject_under_18, para18_reason=rule.para18_reason,
        special_leaves=frozenset(leaf for leaf, m in marked if SPECIAL in m),
        criminal_leaves=frozenset(leaf for leaf, m in marked if CRIMINAL in m),
        narrative_reviewed=rule.narrative_review is not None, s47_requested=rule.conditions.s47_request,
        adult_at_risk_only=rule.conditions.adult_at_risk)
    for key, reason in rule_problems(facts):
        problems.add(["rules", i, key], reason)


def _check_overlaps(fields: list[Mapping[str, Any]], i: int, problems: _Problems) -> None:
    """A path or classification named by two field rules: the second would be dead or ambiguous."""
    first: dict[tuple[str, str], int] = {}
    for j, f in enumerate(fields):
        for kind in ("paths", "classifications"):
            for k, name in enumerate(f.get(kind, ())):
                if (kind, name) in first:
                    problems.add(["rules", i, "fields", j, kind, k],
                                 f"already given a field rule at rules[{i}].fields[{first[kind, name]}]")
                first.setdefault((kind, name), j)


# The payload fields that name partners on the MASH hub's records, and the event types that carry each (partner_in).
PARTNER_FIELDS = {"contributing_partners": frozenset({"mash.decision"}),
                  "referring_partners": frozenset({"mash.decision"}),
                  "assigned_partner": frozenset({"mash.action"})}


def conditions_of(cond: Mapping[str, Any]) -> Conditions:
    """A `conditions` mapping (a rule's, or an invariant's `when`) as Conditions: the one reading of the keys. A new
    condition needs its finite domain in broker/policy/domains.py too, or the invariant checker refuses it."""
    return Conditions(
        risk_at_least=cond.get("risk_at_least"), risk_at_most=cond.get("risk_at_most"),
        risk_categories_any=frozenset(cond["risk_categories_any"]) if "risk_categories_any" in cond else None,
        subject_under_18=bool(cond.get("subject_under_18", False)),
        consent_status=frozenset(cond["consent_status"]) if "consent_status" in cond else None,
        case_open=cond.get("case_open"), registered_with=cond.get("registered_with"),
        plan_kinds=frozenset(cond["plan_kinds"]) if "plan_kinds" in cond else None,
        referral_sources=frozenset(cond["referral_sources"]) if "referral_sources" in cond else None,
        s47_request=bool(cond.get("s47_request", False)), adult_at_risk=bool(cond.get("adult_at_risk", False)),
        restricted=cond.get("restricted"),
        partner_in=frozenset(cond["partner_in"]) if "partner_in" in cond else None)


def _rule(raw: Mapping[str, Any], i: int, subs: Mapping[str, Subscriber], purposes: Mapping[str, str],
          problems: _Problems) -> Rule:
    roles = {s.role for s in subs.values()}
    for j, who in enumerate(raw["subscribers"]):
        if who not in subs and who not in roles:
            problems.add(["rules", i, "subscribers", j], "neither a subscriber name nor a subscriber role")
    selected = [s for s in subs.values() if s.name in raw["subscribers"] or s.role in raw["subscribers"]]
    types: set[str] = set()
    for j, pattern in enumerate(raw["event_types"]):
        expanded = expand_event_types(pattern)
        if not expanded:
            problems.add(["rules", i, "event_types", j], "matches no event type in the canonical event schema")
        types |= expanded
    purpose = raw["purpose"]
    if purpose not in purposes:
        problems.add(["rules", i, "purpose"], "not a purpose defined under purposes")
    for sub in selected:
        if purpose in purposes and purpose not in sub.purposes:
            problems.add(["rules", i, "purpose"], f"subscriber {sub.name} is not registered for this purpose")
    conditions = conditions_of(raw.get("conditions", {}))
    if conditions.referral_sources is not None and types - {"social_care.referral"}:
        problems.add(["rules", i, "conditions", "referral_sources"],
                     "only a social_care.referral carries a referral source: name no other event type")
    if conditions.plan_kinds is not None and types - {"health.child_protection_plan_notice"}:
        problems.add(["rules", i, "conditions", "plan_kinds"],
                     "only a health.child_protection_plan_notice carries a plan kind: name no other event type")
    for name in sorted(conditions.partner_in or ()):
        carriers = PARTNER_FIELDS[name]
        if types - carriers:
            problems.add(["rules", i, "conditions", "partner_in"],
                         f"only {', '.join(sorted(carriers))} carries payload.{name}: name no other event type")
    if conditions.risk_at_least and conditions.risk_at_most and \
            RISK_ORDER[conditions.risk_at_least] > RISK_ORDER[conditions.risk_at_most]:
        problems.add(["rules", i, "conditions"], "risk_at_least is above risk_at_most: the rule can never match")
    if conditions.registered_with:
        code = "ods_code" if conditions.registered_with == "gp_practice" else "urn"
        for sub in selected:
            if code not in sub.organisation:
                problems.add(["rules", i, "conditions", "registered_with"],
                             f"subscriber {sub.name} has no organisation.{code} to compare with")
    field_rules = tuple(
        FieldRule(where=f"rules[{i}].fields[{j}]", classifications=frozenset(f.get("classifications", ())),
                  paths=tuple(f.get("paths", ())), action=f["action"], mask=f.get("mask"))
        for j, f in enumerate(raw["fields"]))
    _check_overlaps(raw["fields"], i, problems)
    leaves = {leaf for t in types for leaf in field_classes(t)}
    for j, fr in enumerate(field_rules):
        for k, path in enumerate(fr.paths):
            if not any(covers(path, leaf) for leaf in leaves):
                problems.add(["rules", i, "fields", j, "paths", k], "matches no field of the rule's event types")
    basis = expand_codes(raw["lawful_basis"]) or ()
    rule = Rule(
        id=raw["id"], where=f"rules[{i}]", description=raw["description"], subscribers=tuple(raw["subscribers"]),
        event_type_patterns=tuple(raw["event_types"]), event_types=frozenset(types),
        source_agencies=frozenset(raw["source_agencies"]) if "source_agencies" in raw else None,
        purpose=purpose, lawful_basis=basis, conditions=conditions, field_rules=field_rules,
        consent_based=CONSENT in basis, overriding_duty=overriding_duty(basis),
        recipient_basis=expand_codes(raw.get("recipient_basis")), para18_reason=raw.get("para18_reason"),
        narrative_review=dict(raw["narrative_review"]) if "narrative_review" in raw else None,
        requires_human_decision=raw.get("requires_human_decision"),
        requires_service_agreement=bool(raw.get("requires_service_agreement", False)),
        restricted_release=frozenset((raw.get("restricted_records") or {}).get("release", ())),
        restricted_reason=(raw.get("restricted_records") or {}).get("reason"),
        para18_alone=relies_on_para18_alone(basis), tables={t: field_table(t, field_rules) for t in sorted(types)})
    _check_lawful_basis(rule, i, selected, problems)
    return rule


def _check_tests(data: Mapping[str, Any], rule_ids: set[str], problems: _Problems) -> None:
    known = set(event_types())
    partner_ids = {p["id"] for p in data["partners"]}
    for i, test in enumerate(data.get("tests", [])):
        if test["event"]["event_type"] not in known:
            problems.add(["tests", i, "event", "event_type"], "not an event type in the canonical event schema")
        expected_rule = test["expect"].get("rule")
        if expected_rule is not None and expected_rule not in rule_ids:
            problems.add(["tests", i, "expect", "rule"], "not the id of a rule in this protocol")
        facts = test.get("facts") or {}
        for j, pid in enumerate(facts.get("s47_requested_of", ())):
            if pid not in partner_ids:
                problems.add(["tests", i, "facts", "s47_requested_of", j], "not the id of a partner in partners")


def _invariants(data: Mapping[str, Any], subs: Mapping[str, Subscriber], problems: _Problems) -> tuple[Any, ...]:
    """The `invariants` section compiled (invariants.py); proven when the file loads (prove.py)."""
    from broker.policy.invariants import build_invariant

    names = set(subs) | {s.role for s in subs.values()}
    out = []
    for i, raw in enumerate(data.get("invariants", [])):
        invariant, found = build_invariant(raw, i, expand_event_types, conditions_of, names,
                                           frozenset(event_types()))
        for parts, reason in found:
            problems.add(parts, reason)
        leaves = {leaf for t in invariant.event_types for leaf in field_classes(t)}
        for k, path in enumerate(invariant.paths or ()):
            if not any(covers(path, leaf) for leaf in leaves):
                problems.add(["invariants", i, "shares", "paths", k], "matches no field of the invariant's event types")
        out.append(invariant)
    return tuple(out)


def _systems(partner: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(str(s).strip().upper() for s in partner.get("source_systems", ()))


def _partner_systems(data: Mapping[str, Any], problems: _Problems) -> dict[tuple[str, str], str]:
    """(agency, source.system) -> partner id; a system two partners of one agency claim would make the discloser
    ambiguous."""
    out: dict[tuple[str, str], str] = {}
    for i, partner in enumerate(data["partners"]):
        for j, system in enumerate(sorted(_systems(partner))):
            key = (partner["agency"], system)
            if key in out and out[key] != partner["id"]:
                problems.add(["partners", i, "source_systems", j], f"also declared by partner {out[key]}: each "
                                                                  "source system belongs to one partner")
            out.setdefault(key, partner["id"])
    return out


def _check_s47_requests(rules: tuple[Rule, ...], systems: Mapping[tuple[str, str], str],
                        problems: _Problems) -> None:
    """An `s47_request` condition reads which partner disclosed the event: some partner the rule can hear from
    must declare its source systems, or the condition can never hold."""
    declared = {agency for agency, _ in systems}
    for i, rule in enumerate(rules):
        if rule.conditions.s47_request and not possible_sources(rule.source_agencies, rule.event_types) & declared:
            problems.add(["rules", i, "conditions", "s47_request"],
                         "no partner of the rule's source agencies declares source_systems, so the broker cannot "
                         "tell which body disclosed an event and the condition can never hold")


LA_DUTIES = ("children_act_1989_s17", "children_act_1989_s47")  # the LA's duties that may need a child's whereabouts


def _check_restricted_releases(rules: tuple[Rule, ...], subs: Mapping[str, Subscriber],
                               partners: list[Mapping[str, Any]], problems: _Problems) -> None:
    """`restricted_records` releases a restricted (refuge, witness protection) record's location or contact: only
    to the local authority, under its duty to a child in need or at risk, and only what the rule's fields release."""
    kind = {p["id"]: (p["agency"], p["role"]) for p in partners}
    for i, rule in enumerate(rules):
        if not rule.restricted_release:
            continue
        what = " and ".join(sorted(rule.restricted_release))
        for sub in (s for s in subs.values() if s.name in rule.subscribers or s.role in rule.subscribers):
            if kind.get(sub.partner) != ("social_care", "safeguarding_partner"):
                problems.add(["rules", i, "restricted_records"],
                             f"releases a restricted record's {what} to {sub.name}, whose partner {sub.partner} is "
                             "not the local authority (a safeguarding_partner of agency social_care): only "
                             "children's social care may need to know where a restricted child is, to protect "
                             "them; every other subscriber gets no location or contact of a restricted record")
        if not set(LA_DUTIES) & {*rule.lawful_basis, *(rule.recipient_basis or ())}:
            problems.add(["rules", i, "restricted_records"],
                         f"releases a restricted record's {what} under no duty of the local authority to the child: "
                         f"cite {' or '.join(LA_DUTIES)} (the enquiry or the service that needs the child's "
                         "whereabouts)")
        for label in sorted(rule.restricted_release):
            if not any(table[leaf].action != "withhold" for t, table in rule.tables.items()
                       for leaf, cls in field_classes(t).items() if cls == label):
                problems.add(["rules", i, "restricted_records", "release"],
                             f"the rule's fields withhold every {label} field, so releasing {label} from a "
                             "restricted record changes nothing: remove it")


def _index(subs: Mapping[str, Subscriber], rules: tuple[Rule, ...]) -> dict[tuple[str, str], tuple[Rule, ...]]:
    index: dict[tuple[str, str], tuple[Rule, ...]] = {}
    for sub in subs.values():
        for event_type in event_types():
            hits = tuple(r for r in rules if event_type in r.event_types
                         and (sub.name in r.subscribers or sub.role in r.subscribers))
            if hits:
                index[(sub.name, event_type)] = hits
    return index


def parse_protocol(data: Any, origin: str = "<protocol>", *, base_dir: Path | None = None,
                   node: yaml.Node | None = None) -> Protocol:
    """Compile protocol data (a mapping, or YAML text) into a Protocol; raises ProtocolError."""
    if isinstance(data, str):
        data, node = parse_yaml(data, origin)
    if not isinstance(data, Mapping):
        raise ProtocolError(origin, "", "a protocol is a YAML mapping at the top level")
    check_schema(data, origin, node)
    problems = _Problems(origin, node)
    _duplicates(data["partners"], "id", "partners", problems)
    _duplicates(data["subscribers"], "name", "subscribers", problems)
    _duplicates(data["rules"], "id", "rules", problems)
    _duplicates(data.get("tests", []), "name", "tests", problems)
    subs = _subscribers(data, base_dir, problems)
    systems = _partner_systems(data, problems)
    rules = tuple(_rule(raw, i, subs, data["purposes"], problems) for i, raw in enumerate(data["rules"]))
    _check_s47_requests(rules, systems, problems)
    _check_restricted_releases(rules, subs, data["partners"], problems)
    _check_tests(data, {r.id for r in rules}, problems)
    _duplicates(data.get("invariants", []), "id", "invariants", problems)
    invariants = _invariants(data, subs, problems)
    scales, scale_problems = build_scales(data.get("risk_scales"))
    for parts, reason in scale_problems:
        problems.add(parts, reason)
    hub, hub_problems = build_hub(data.get("hub"), expand_event_types, frozenset(s.role for s in subs.values()))
    for parts, reason in hub_problems:
        problems.add(parts, reason)
    shared = frozenset(label for r in rules for t, table in r.tables.items() for leaf, label in field_classes(t).items()
                       if table[leaf].action != "withhold" and label not in ("operational",))
    for parts, reason in governance_problems(data, shared):
        problems.add(parts, reason)
    for parts, reason in digest_problems(data):
        problems.add(parts, reason)
    problems.raise_any()
    head = data["protocol"]
    return Protocol(
        id=head["id"], version=head["version"], title=head["title"], effective_from=head["effective_from"],
        review_by=head.get("review_by"), owner=head.get("owner"), purposes=dict(data["purposes"]),
        governance=build_governance(data.get("governance")),
        partners={p["id"]: Partner(p["id"], p["name"], p["agency"], p["role"], _systems(p),
                                   bool(p.get("disclosure_digest", False))) for p in data["partners"]},
        subscribers=subs, rules=rules, tests=tuple(data.get("tests", [])), origin=origin,
        index=_index(subs, rules), partner_by_system=systems, invariants=invariants,
        hub=hub, risk_scales=scales)


def load_protocol(path: str | Path, *, prove: bool = True) -> Protocol:
    """Read and compile a protocol file. Key files are resolved against its folder but not read (see keys.py).
    Its invariants are proven over every decision it can make (prove.py): one that breaks them is refused, each
    broken invariant a ProtocolError with a counterexample. `prove=False` only for `policy explain`, which must
    be able to show a refused protocol's counterexample."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProtocolError(str(path), "", "file not found") from None
    except UnicodeDecodeError:
        raise ProtocolError(str(path), "", "not UTF-8 text") from None
    except OSError as exc:
        raise ProtocolError(str(path), "", f"cannot read ({exc.strerror})") from None
    protocol = parse_protocol(text, str(path), base_dir=path.resolve().parent)
    if prove and protocol.invariants:
        _refuse_unproven(protocol, text.encode(), str(path))
    return protocol


def _refuse_unproven(protocol: Protocol, text: bytes, origin: str) -> None:
    from broker.policy.prove import prove_cached

    proof = prove_cached(protocol, text)
    problems = _Problems(origin, None)
    if proof.unprovable:
        problems.add(["invariants"], "cannot be proven: the checker has no finite domain for condition(s) "
                                     f"{', '.join(proof.unprovable)} (broker/policy/domains.py)")
    for c in proof.counterexamples:
        problems.items.append(ProtocolError(origin, c.where, c.sentence(origin)))
    problems.raise_any()
