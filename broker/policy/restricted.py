"""Restricted records: where anyone in an event is marked restricted, location and contact are withheld, except from
the local authority under a rule that says why it needs them.

The health adapter marks a person `restricted` from the FHIR security labels the NHS Personal Demographics Service
uses for a restricted ("S-flagged") or redacted patient (v3-Confidentiality R or V, v3-ObservationValue REDACTED):
someone in a refuge, in witness protection, adopted, or whose gender history is protected. PDS itself withholds
such a patient's address and contact details, and so does the broker, for every subscriber and every rule, unless
the rule carries `restricted_records: {release: [...], reason: ...}`. Compile allows that key only on a rule whose
every subscriber belongs to the local authority (a `safeguarding_partner` of agency `social_care`) acting under its
s17 or s47 duty (compile.py): children's social care may need to know where a restricted child is to protect them;
a school, a GP practice or the police do not need a refuge address from this feed. Even then only what the rule's
own fields release goes. The whole event's location and contact go, not only the marked person's: an incident
address or a parent's phone can lead to the child as surely as the child's own.

The mark is read from the event's present leaf paths (the adapters set it only when true, so its presence is the
mark); a mark set to false still counts, the safe side of a malformed record. Pure: over paths and the schema's
labels, so the result is memoised with the rest of the field split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from broker.policy.model import Partition, Rule
from broker.schema.classification import field_classes

MARKS = frozenset({"subject.child.restricted", "subject.related_people[].person.restricted"})
NEVER_RELEASED = frozenset({"location", "contact"})  # the classifications a restriction withholds
NOTE = "a restricted record (PDS restricted or redacted patient): no location or contact is released"


def marked(paths: Sequence[str]) -> bool:
    return not MARKS.isdisjoint(paths)


def anyone_marked(event: Mapping[str, Any]) -> bool:
    """The `restricted` condition's test: the child or a related person carries the mark (presence, as `marked`)."""
    subject = event.get("subject")
    if not isinstance(subject, Mapping):
        return False
    child = subject.get("child")
    if isinstance(child, Mapping) and "restricted" in child:
        return True
    people = subject.get("related_people")
    return isinstance(people, list) and any(
        isinstance(p, Mapping) and isinstance(p.get("person"), Mapping) and "restricted" in p["person"] for p in people)


def withheld_classes(rule: Rule) -> frozenset[str]:
    """What a restriction withholds under this rule: location and contact, less what the rule releases."""
    return NEVER_RELEASED - rule.restricted_release


def note(rule: Rule) -> str:
    """The decision's words about a restricted record under `rule`: what went, what did not, and why."""
    if not rule.restricted_release:
        return NOTE
    released = " and ".join(sorted(rule.restricted_release))
    kept = withheld_classes(rule)
    tail = f"; no {' or '.join(sorted(kept))} is released" if kept else ""
    return (f"a restricted record (PDS restricted or redacted patient): its {released} released to the local "
            f"authority under rule {rule.id} ({rule.restricted_reason}){tail}")


def restrict(split: Partition, event_type: str, keep: frozenset[str] = frozenset()) -> Partition:
    """The field split with every location and contact leaf moved to withheld, except the classifications in
    `keep` (the rule's `restricted_records.release`), which keep the rule's own outcome."""
    labels = field_classes(event_type)
    released, masked, withheld = split
    hiding = NEVER_RELEASED - keep

    def hidden(path: str) -> bool:
        return labels.get(path) in hiding

    dropped = tuple(p for p in released if hidden(p)) + tuple(p for p, _ in masked if hidden(p))
    return (tuple(p for p in released if not hidden(p)), tuple((p, m) for p, m in masked if not hidden(p)),
            withheld + dropped)
