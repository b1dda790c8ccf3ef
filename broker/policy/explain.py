"""`explain`: why one subscriber does or does not receive one event, rule by rule and field by field.

Paths, codes and reasons only, never a value from the event: the output can be pasted into a ticket.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.policy import restricted
from broker.policy.codes import BY_CODE, LAWFUL_BASIS
from broker.policy.compile import event_types
from broker.policy.consent import ConsentState, effective_consent
from broker.policy.engine import check_rule, decide
from broker.policy.facts import CaseFacts, facts_of
from broker.policy.fields import NOT_IN_SCHEMA
from broker.policy.model import Protocol
from broker.policy.paths import present_paths
from broker.policy.thresholds import assess, assessed
from broker.schema.classification import field_classes


def _rules(protocol: Protocol, event: Mapping[str, Any], name: str, consent: ConsentState,
           facts: CaseFacts, chosen: str | None) -> list[dict[str, Any]]:
    sub = protocol.subscribers.get(name)
    if sub is None:
        return []
    event_type = str(event.get("event_type", ""))
    out = []
    for rule in protocol.rules:
        if name not in rule.subscribers and sub.role not in rule.subscribers:
            continue
        entry: dict[str, Any] = {"rule_id": rule.id, "where": rule.where, "purpose": rule.purpose,
                                 "lawful_basis": list(rule.lawful_basis),
                                 "recipient_basis": list(rule.recipient_basis or rule.lawful_basis),
                                 "para18_reason": rule.para18_reason,
                                 "narrative_review": dict(rule.narrative_review) if rule.narrative_review else None,
                                 "restricted_records": ({"release": sorted(rule.restricted_release),
                                                         "reason": rule.restricted_reason}
                                                        if rule.restricted_release else None)}
        if event_type not in rule.event_types:
            entry.update(covers_event_type=False, applies=False,
                         reason=f"covers {', '.join(rule.event_type_patterns)}, not {event_type}")
        else:
            check = check_rule(rule, event, sub, consent, facts, protocol.source_partner(event))
            entry.update(covers_event_type=True, applies=check.applies, reason=check.reason,
                         human_decision=check.referral is not None)
        entry["chosen"] = rule.id == chosen
        out.append(entry)
    return out


def _fields(protocol: Protocol, event: Mapping[str, Any], rule_id: str | None) -> list[dict[str, Any]]:
    event_type = str(event.get("event_type", ""))
    labels = field_classes(event_type) if event_type in event_types() else {}
    rule = protocol.rule(rule_id) if rule_id else None
    table = rule.tables.get(event_type, {}) if rule else {}
    out = []
    paths = present_paths(event)
    for path in paths:
        entry: dict[str, Any] = {"path": path, "classification": labels.get(path, "unknown")}
        if rule is None:
            entry.update(outcome="withheld", mask=None, because="the event is withheld")
        elif restricted.marked(paths) and labels.get(path) in restricted.withheld_classes(rule):
            entry.update(outcome="withheld", mask=None, because=restricted.note(rule))
        else:
            outcome = table.get(path, NOT_IN_SCHEMA)
            # a restricted record's location or contact the rule's restricted_records releases: say so, and why
            why = (f"; {restricted.note(rule)}" if restricted.marked(paths) and outcome.action != "withhold"
                   and labels.get(path) in restricted.NEVER_RELEASED else "")
            entry.update(outcome={"release": "released", "mask": "masked", "withhold": "withheld"}[outcome.action],
                         mask=outcome.mask, because=outcome.because + why)
        out.append(entry)
    return out


def _recipient_basis(protocol: Protocol, rule_id: str | None) -> tuple[str, ...]:
    rule = protocol.rule(rule_id) if rule_id else None
    return () if rule is None else rule.recipient_basis or rule.lawful_basis


def explain(protocol: Protocol, event: Mapping[str, Any], subscriber: str, consent: ConsentState | None = None, *,
            case_open: bool | None = None, facts: CaseFacts | None = None) -> dict[str, Any]:
    """The decision with its reasons: subscriber, consent as used, every rule naming the subscriber, every field."""
    known = facts_of(facts, case_open)
    decision = decide(protocol, event, subscriber, consent=consent, facts=known)
    assessment = assess(protocol.risk_scales, event)
    event = assessed(protocol.risk_scales, event)  # the rules below are tried on the level decided on
    used = effective_consent(consent, event)
    sub = protocol.subscribers.get(subscriber)
    return {
        "protocol": {"id": protocol.id, "version": protocol.version, "title": protocol.title},
        "governance": protocol.governance.as_dict() if protocol.governance else None,
        "event": {"event_id": decision.event_id, "event_type": decision.event_type,
                  "source_agency": (event.get("source") or {}).get("agency"),
                  "risk_level": assessment.level, "risk_source_level": assessment.source_level,
                  # each agency grading and where the protocol's risk_scales place it (thresholds.py)
                  "risk_gradings": [{"scale": g.scale, "level": g.level, "common": g.common}
                                    for g in assessment.gradings],
                  "risk_assessment": assessment.describe()},
        "subscriber": ({"name": sub.name, "known": True, "role": sub.role, "partner": sub.partner,
                        "purposes": list(sub.purposes)} if sub else {"name": subscriber, "known": False}),
        "consent": used.summary(),  # value-free: codes, dates, whose and of what kind
        "case_open": known.case_open,
        # Register facts as used, value-free: partner ids, a yes/no, and whether a date of birth was known.
        "facts": {"s47_requested_of": sorted(known.s47_requested_of), "adult_at_risk": known.adult_at_risk,
                  "birth_date_known": known.birth_date is not None},
        "decision": decision.to_record(),
        "lawful_basis_text": {code: LAWFUL_BASIS[code] for code in decision.lawful_basis},
        "recipient_basis": list(_recipient_basis(protocol, decision.rule_id)),
        "citations": {code: BY_CODE[code].citation for code in
                      dict.fromkeys((*decision.lawful_basis, *_recipient_basis(protocol, decision.rule_id)))},
        "human_decision": (None if decision.human_decision is None else
                           {"rule_id": decision.human_decision.rule_id,
                            "restriction": decision.human_decision.restriction,
                            "recorded_on": decision.human_decision.recorded_on}),
        "rules": _rules(protocol, event, subscriber, used, known, decision.rule_id),
        "fields": _fields(protocol, event, decision.rule_id),
    }


def _facts_line(facts: Mapping[str, Any] | None) -> str:
    if not facts:
        return ""
    asked = ", ".join(facts["s47_requested_of"]) or "none recorded"
    at_risk = {None: "no determination", True: "yes (recorded)", False: "no (recorded)"}[facts["adult_at_risk"]]
    born = "known" if facts["birth_date_known"] else "unknown"
    return f"; s47(9) requests: {asked}; adult at risk: {at_risk}; register date of birth: {born}"


def format_governance(g: Mapping[str, Any] | None) -> list[str]:
    """The agreement's furniture as a header: who answers for the sharing, under which DPIA and policy documents,
    how long recipients keep what they receive, and where breaches and requests go."""
    if not g:
        return ["agreement: no governance section (controllers, DPIA, policy documents, retention not stated)"]
    lines = ["agreement:"]
    lines += [f"  controller {c['partner']}: {c['controller_for']}" for c in g["controllers"]]
    if g.get("joint_controllers"):
        j = g["joint_controllers"]
        lines.append(f"  joint controllers (UK GDPR Art 26) {', '.join(j['partners'])}: {j['arrangement']}; "
                     f"contact point {j['contact_point']}")
    dpia = g["dpia"]
    lines.append(f"  DPIA {dpia['reference']}, approved {dpia['approved_on']} by {dpia['approved_by']}"
                 + (f", next review {dpia['next_review']}" if dpia.get("next_review") else ""))
    lines += [f"  appropriate policy document {a['reference']} ({a['partner']}): {', '.join(a['covers'])}"
              for a in g["appropriate_policy_documents"]]
    lines += [f"  {r['role']} {r['partner']}: {r['contact']}" for r in g["roles"]]
    lines += [f"  retention {', '.join(r['classifications'])}: {r['keep_for']} from {r['from']}"
              for r in g["retention"]]
    lines.append(f"  review by {g['review']['next_review']}, or on: {'; '.join(g['review']['triggers'])}")
    lines.append(f"  breach: {g['breach']['report_to']} within {g['breach']['within_hours']} hours")
    lines.append(f"  subject rights: {g['subject_rights']['contact']}")
    return lines


def _other_records(consent: Mapping[str, Any]) -> str:
    """The records beyond the child's data protection consent and objection, by kind and whose (value-free)."""
    others = [r for r in consent.get("records", ())
              if r["subject"] != "child" or r["kind"] not in ("data_protection", "objection")]
    return "".join(f"; {r['kind']} {r['state']} ({r['subject']})" for r in others)


def format_explanation(expl: Mapping[str, Any]) -> str:
    """The explanation as text for people: the agreement's header, then the decision, rules and fields."""
    d, p, e, s = expl["decision"], expl["protocol"], expl["event"], expl["subscriber"]
    lines = [f"protocol {p['id']} version {p['version']}: {p['title']}",
             *format_governance(expl.get("governance")),
             f"event {e['event_id']} ({e['event_type']}, from {e['source_agency']}, "
             f"{e.get('risk_assessment') or 'risk ' + str(e['risk_level'])})",
             f"subscriber {s['name']}" + (f" (role {s['role']}, partner {s['partner']})" if s["known"]
                                          else ": not in this protocol"),
             f"consent: {expl['consent']['status']}" + (", objection recorded" if expl["consent"]["objection"] else "")
             + _other_records(expl["consent"])
             + f"; case open: {'unknown' if expl['case_open'] is None else expl['case_open']}"
             + _facts_line(expl.get("facts")),
             "",
             f"DECISION: {d['outcome'].upper()}  ({d['reason']})",
             f"decision id {d['decision_id']}"]
    if d["rule_id"]:
        lines.append(f"rule {d['rule_id']}, purpose {d['purpose']}")
        lines += [f"  discloser's basis: {text}" for text in expl["lawful_basis_text"].values()]
        lines += [f"  recipient's basis: {LAWFUL_BASIS[code]}" for code in expl["recipient_basis"]]
    if d["consent_override"]:
        o = d["consent_override"]
        lines.append(f"  consent override: {o['restriction']} set aside under {o['gateway']}")
    if expl["human_decision"]:
        h = expl["human_decision"]
        lines.append(f"  awaiting a recorded human decision: {h['restriction']} under rule {h['rule_id']}")
    lines += ["", "rules naming this subscriber:"]
    for r in expl["rules"] or [{"rule_id": "(none)", "applies": False, "reason": "no rule names this subscriber",
                                "chosen": False}]:
        mark = "=>" if r["chosen"] else ("ok" if r["applies"] else "--")
        lines.append(f"  {mark} {r['rule_id']}: {r['reason']}")
    lines += ["", "fields:"]
    width = max((len(f["path"]) for f in expl["fields"]), default=0)
    for f in expl["fields"]:
        outcome = f"masked ({f['mask']})" if f["outcome"] == "masked" else f["outcome"]
        lines.append(f"  {f['path']:<{width}}  {f['classification']:<12} {outcome:<28} {f['because']}")
    return "\n".join(lines) + "\n"
