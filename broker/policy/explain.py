"""`explain`: why one subscriber does or does not receive one event, rule by rule and field by field.

Paths, codes and reasons only, never a value from the event: the output can be pasted into a ticket.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.policy.codes import BY_CODE, LAWFUL_BASIS
from broker.policy.compile import event_types
from broker.policy.consent import ConsentState, effective_consent
from broker.policy.engine import check_rule, decide
from broker.policy.fields import NOT_IN_SCHEMA
from broker.policy.model import Protocol
from broker.policy.paths import present_paths
from broker.schema.classification import field_classes


def _rules(protocol: Protocol, event: Mapping[str, Any], name: str, consent: ConsentState,
           case_open: bool | None, chosen: str | None) -> list[dict[str, Any]]:
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
                                 "narrative_review": dict(rule.narrative_review) if rule.narrative_review else None}
        if event_type not in rule.event_types:
            entry.update(covers_event_type=False, applies=False,
                         reason=f"covers {', '.join(rule.event_type_patterns)}, not {event_type}")
        else:
            check = check_rule(rule, event, sub, consent, case_open)
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
    for path in present_paths(event):
        entry: dict[str, Any] = {"path": path, "classification": labels.get(path, "unknown")}
        if rule is None:
            entry.update(outcome="withheld", mask=None, because="the event is withheld")
        else:
            outcome = table.get(path, NOT_IN_SCHEMA)
            entry.update(outcome={"release": "released", "mask": "masked", "withhold": "withheld"}[outcome.action],
                         mask=outcome.mask, because=outcome.because)
        out.append(entry)
    return out


def _recipient_basis(protocol: Protocol, rule_id: str | None) -> tuple[str, ...]:
    rule = protocol.rule(rule_id) if rule_id else None
    return () if rule is None else rule.recipient_basis or rule.lawful_basis


def explain(protocol: Protocol, event: Mapping[str, Any], subscriber: str, consent: ConsentState | None = None, *,
            case_open: bool | None = None) -> dict[str, Any]:
    """The decision with its reasons: subscriber, consent as used, every rule naming the subscriber, every field."""
    decision = decide(protocol, event, subscriber, consent=consent, case_open=case_open)
    used = effective_consent(consent, event)
    sub = protocol.subscribers.get(subscriber)
    return {
        "protocol": {"id": protocol.id, "version": protocol.version, "title": protocol.title},
        "event": {"event_id": decision.event_id, "event_type": decision.event_type,
                  "source_agency": (event.get("source") or {}).get("agency"),
                  "risk_level": (event.get("risk") or {}).get("level")},
        "subscriber": ({"name": sub.name, "known": True, "role": sub.role, "partner": sub.partner,
                        "purposes": list(sub.purposes)} if sub else {"name": subscriber, "known": False}),
        "consent": {"status": used.status, "objection": used.objection, "recorded_on": used.recorded_on},
        "case_open": case_open,
        "decision": decision.to_record(),
        "lawful_basis_text": {code: LAWFUL_BASIS[code] for code in decision.lawful_basis},
        "recipient_basis": list(_recipient_basis(protocol, decision.rule_id)),
        "citations": {code: BY_CODE[code].citation for code in
                      dict.fromkeys((*decision.lawful_basis, *_recipient_basis(protocol, decision.rule_id)))},
        "human_decision": (None if decision.human_decision is None else
                           {"rule_id": decision.human_decision.rule_id,
                            "restriction": decision.human_decision.restriction,
                            "recorded_on": decision.human_decision.recorded_on}),
        "rules": _rules(protocol, event, subscriber, used, case_open, decision.rule_id),
        "fields": _fields(protocol, event, decision.rule_id),
    }


def format_explanation(expl: Mapping[str, Any]) -> str:
    """The explanation as text for people."""
    d, p, e, s = expl["decision"], expl["protocol"], expl["event"], expl["subscriber"]
    lines = [f"protocol {p['id']} version {p['version']}: {p['title']}",
             f"event {e['event_id']} ({e['event_type']}, from {e['source_agency']}, risk {e['risk_level']})",
             f"subscriber {s['name']}" + (f" (role {s['role']}, partner {s['partner']})" if s["known"]
                                          else ": not in this protocol"),
             f"consent: {expl['consent']['status']}" + (", objection recorded" if expl["consent"]["objection"] else "")
             + f"; case open: {'unknown' if expl['case_open'] is None else expl['case_open']}",
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
