"""Recorded human decisions, the pure part: who may decide a referral, what a decision may say, and what it releases.

The engine withholds a share the law routes to a person (an objection, refusal or withdrawal where the rule cites
no duty to disclose: UK GDPR Art 21(1), DfE golden rule 7) with `Decision.human_decision` set. A person then decides
one of three things, always with a value-free reason:

- `share`: the rule's field rules, as the engine would have applied them but for the objection;
- `share_in_part`: the same, minus the classifications and field paths the decider names (withheld, never masked:
  a decider narrowing a disclosure should not have to know the masks);
- `withhold`: nothing is sent; the decision not to share, and why, is recorded all the same.

Who decides (`deciders`), when the protocol does not say otherwise: the hub partner (the partner of a subscriber
with the role `mash_hub`, else the local authority's safeguarding partner) for every referral, and the owning
agency's safeguarding partner (its DPO) for its own data (the partner whose agency is the event's source agency).
Art 21(1) puts the burden of showing compelling grounds on the controller whose processing is objected to, the
discloser, and the hub is where partners make that judgement together; both are defensible deciders, no one else
(not the subscriber that would receive) is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from broker.policy.consent import ConsentState, effective_consent
from broker.policy.decision import DECISION_NAMESPACE, Decision, uuid5_text
from broker.policy.engine import people_withheld, rule_split
from broker.policy.errors import PolicyError
from broker.policy.model import Protocol
from broker.policy.paths import present_paths
from broker.schema.classification import CLASSIFICATIONS, field_classes

CHOICES = ("share", "share_in_part", "withhold")
HUB_ROLE = "mash_hub"
REASON_MAX = 2000
# A reason is the decider's own words, so it is checked harder than the audit schema's fixed texts: no '@' (an
# e-mail address), no run of 10 digits even spaced or hyphenated (an NHS number as people write it: 943 476 5919),
# one line, printable.
_DIGIT_RUN = re.compile(r"[0-9](?:[ -]?[0-9]){9}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def reason_problem(reason: str) -> str | None:
    """Why a decider's reason cannot be recorded, or None. Never quotes the reason."""
    text = reason.strip()
    if not text:
        return "a reason is required: say why, in words that name no one (no names, numbers or addresses)"
    if len(text) > REASON_MAX:
        return f"the reason is longer than {REASON_MAX} characters"
    if "@" in text:
        return "the reason contains '@': write it without e-mail addresses or other identifiers"
    if _DIGIT_RUN.search(text):
        return "the reason contains a run of 10 digits (an NHS number?): write it without identifiers"
    if _CONTROL.search(text):
        return "the reason must be one line of plain text"
    return None


def human_decision_id(referral_id: str) -> str:
    """The id of the one decision a referral can have (UUIDv5): a retried request names the same decision."""
    return uuid5_text(DECISION_NAMESPACE.bytes, f"human-decision\x1f{referral_id}")


def deciders(protocol: Protocol, source_agency: str | None) -> tuple[str, ...]:
    """Partner ids whose decision_maker may decide a referral about an event from `source_agency` (module docs)."""
    partners = protocol.partners.values()
    hub = {s.partner for s in protocol.subscribers.values() if s.role == HUB_ROLE and s.partner in protocol.partners}
    if not hub:
        hub = {p.id for p in partners if p.agency == "social_care" and p.role == "safeguarding_partner"}
    owner = {p.id for p in partners if p.agency == source_agency and p.role == "safeguarding_partner"}
    return tuple(sorted(hub | owner))


@dataclass(frozen=True, slots=True)
class Withholding:
    """What a `share_in_part` decision keeps back: classifications (labels) and field paths (a path covers every
    leaf below it)."""

    classifications: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    def covers(self, path: str, label: str | None) -> bool:
        if label is not None and label in self.classifications:
            return True
        return any(path == p or path.startswith(p + ".") or path.startswith(p + "[]") for p in self.paths)

    def to_record(self) -> dict[str, list[str]]:
        return {"classifications": list(self.classifications), "paths": list(self.paths)}


def withholding_problems(event_type: str, choice: str, withholding: Withholding) -> list[str]:
    """Why a decision's choice and withholding cannot stand, naming positions (`withhold_paths[1]`), never values."""
    if choice not in CHOICES:
        return [f"decision: expected one of {', '.join(CHOICES)}"]
    named = bool(withholding.classifications or withholding.paths)
    if choice != "share_in_part":
        return ["withhold_classifications / withhold_paths: only a share_in_part decision names what to withhold"] \
            if named else []
    if not named:
        return ["share_in_part: name at least one classification or field path to withhold"]
    out = [f"withhold_classifications[{i}]: not a classification (expected one of {', '.join(CLASSIFICATIONS)})"
           for i, c in enumerate(withholding.classifications) if c not in CLASSIFICATIONS]
    leaves = field_classes(event_type)
    for i, p in enumerate(withholding.paths):
        if not any(leaf == p or leaf.startswith(p + ".") or leaf.startswith(p + "[]") for leaf in leaves):
            out.append(f"withhold_paths[{i}]: not a field of {event_type} (schema paths, '[]' for list items)")
    return out


def person_decision(protocol: Protocol, event: Mapping[str, Any], *, subscriber: str, rule_id: str,
                    decision_id: str, choice: str, withholding: Withholding = Withholding(),
                    consent: ConsentState | None = None) -> Decision:
    """The deliver decision a person's `share` or `share_in_part` makes: the rule's field outcomes for the event's
    present leaves, minus what the person withheld (moved to withheld, masked ones too), and minus the related
    people whose own objection the engine honours (`consent`: the register's state for the child now; a decision
    about the child's objection is not a decision about a parent's). Raises PolicyError when
    the rule no longer exists or no longer covers the event type (the protocol changed since the referral: refer
    again rather than share under a rule nobody reviewed for it)."""
    if choice not in ("share", "share_in_part"):
        raise PolicyError(f"a {choice} decision delivers nothing")
    rule = protocol.rule(rule_id)
    event_type = str(event.get("event_type", ""))
    event_id = str(event.get("event_id", ""))
    if rule is None or event_type not in rule.tables:
        raise PolicyError(f"rule {rule_id} is not in protocol {protocol.revision} for {event_type}: the protocol "
                          "changed since the referral")
    if subscriber not in protocol.subscribers:
        raise PolicyError(f"{subscriber} is not a subscriber of protocol {protocol.revision}")
    released, masked, withheld = rule_split(rule, event_type, present_paths(event))  # restriction too
    if choice == "share_in_part":
        labels = field_classes(event_type)
        kept_back = [p for p in released if withholding.covers(p, labels.get(p))]
        kept_back += [p for p, _ in masked if withholding.covers(p, labels.get(p))]
        gone = set(kept_back)
        released = tuple(p for p in released if p not in gone)
        masked = tuple((p, m) for p, m in masked if p not in gone)
        withheld = tuple(dict.fromkeys([*withheld, *kept_back]))
    reason = (f"delivered after a recorded human decision ({choice}) under rule {rule.id} for purpose "
              f"{rule.purpose}")
    people = people_withheld(rule, event, effective_consent(consent, event))
    return Decision(decision_id, event_id, event_type, subscriber, "deliver", rule.id, rule.lawful_basis,
                    rule.purpose, released, masked, withheld, protocol.id, protocol.version, reason,
                    people_withheld=people)


def human_decision_record(*, referral_id: str, choice: str, restriction: str, recorded_on: str | None,
                          basis: Sequence[str], decided_by_partners: Iterable[str],
                          withholding: Withholding | None) -> dict[str, Any]:
    """The `human_decision` object of a `human_decision` audit record (schemas/audit-record.schema.json)."""
    out: dict[str, Any] = {"status": "decided", "referral_id": referral_id, "choice": choice,
                           "restriction": restriction, "recorded_on": recorded_on, "basis": list(basis),
                           "deciders": sorted(decided_by_partners)}
    if withholding is not None and choice == "share_in_part":
        out["withheld_classifications"] = list(withholding.classifications)
        out["withheld_paths"] = list(withholding.paths)
    return out
