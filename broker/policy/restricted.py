"""Restricted records: where anyone in an event is marked restricted, no location or contact leaves the broker.

The health adapter marks a person `restricted` from the FHIR security labels the NHS Personal Demographics Service
uses for a restricted ("S-flagged") or redacted patient (v3-Confidentiality R or V, v3-ObservationValue REDACTED):
someone in a refuge, in witness protection, adopted, or whose gender history is protected. PDS itself withholds
such a patient's address and contact details; the broker does the same for every subscriber and every rule, so no
protocol author can release them by mistake (the issue's "never releasing location or contact"). The whole event's
location and contact go, not only the marked person's: an incident address or a parent's phone can lead to the child
as surely as the child's own.

The mark is read from the event's present leaf paths (the adapters set it only when true, so its presence is the
mark); a mark set to false still withholds, the safe side of a malformed record. Pure: over paths and the schema's
labels, so the result is memoised with the rest of the field split.
"""

from __future__ import annotations

from collections.abc import Sequence

from broker.policy.model import Partition
from broker.schema.classification import field_classes

MARKS = frozenset({"subject.child.restricted", "subject.related_people[].person.restricted"})
NEVER_RELEASED = frozenset({"location", "contact"})
NOTE = "a restricted record (PDS restricted or redacted patient): no location or contact is released"


def marked(paths: Sequence[str]) -> bool:
    return not MARKS.isdisjoint(paths)


def restrict(split: Partition, event_type: str) -> Partition:
    """The field split with every location and contact leaf moved to withheld."""
    labels = field_classes(event_type)
    released, masked, withheld = split
    def hidden(path: str) -> bool:
        return labels.get(path) in NEVER_RELEASED

    dropped = tuple(p for p in released if hidden(p)) + tuple(p for p, _ in masked if hidden(p))
    return (tuple(p for p in released if not hidden(p)), tuple((p, m) for p, m in masked if not hidden(p)),
            withheld + dropped)
