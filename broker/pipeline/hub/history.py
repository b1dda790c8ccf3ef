"""What the broker remembers of a child for the hub: event ids, types, agencies, times and risk levels (no content),
open enquiries and running clocks, and how two children's histories fold into one when a merge joins them."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from broker.pipeline.hub.calendar import parse_instant

_IDS = uuid.UUID("5b7c1d2e-6a43-4f0e-9d41-1c6f8e2a9b30")  # namespace of the ids the hub watch derives


def derived_id(*parts: str) -> str:
    """A deterministic id: a batch read twice derives the same enquiry, clock and event ids, so nothing repeats."""
    return str(uuid.uuid5(_IDS, "\x1f".join(parts)))


@dataclass(frozen=True, slots=True)
class Entry:
    """One event in a child's history: never its content. `level` is the event's risk level code, kept so that a
    partnership that changes a cumulative-concern threshold applies it to the history already held."""

    event_id: str
    event_type: str
    agency: str
    occurred_at: str
    level: str

    @property
    def ref(self) -> dict[str, str]:
        """How the hub's events name it: by id, type, agency and time."""
        return {"event_id": self.event_id, "event_type": self.event_type, "agency": self.agency,
                "occurred_at": self.occurred_at}


@dataclass(frozen=True, slots=True)
class Enquiry:
    """One MASH enquiry about one child: open until a hub decision closes it or its window passes unfed."""

    enquiry_id: str
    token: str
    opened_at: str
    last_at: str  # the latest contribution's time: a later one within the window joins
    contributions: tuple[str, ...]  # event ids, in the order they joined
    open: bool = True


@dataclass(frozen=True, slots=True)
class Clock:
    clock_id: str
    kind: str  # "decision" (contact to hub decision) or "encompass" (incident to the school DSL)
    token: str
    event_id: str  # the event that started it
    event_type: str
    started_at: str
    due_at: str
    enquiry_id: str | None = None
    linkage: Mapping[str, Any] = field(default_factory=dict)  # the child's linkage, for the breach event


def time_order(entry: Entry) -> tuple[dt.datetime, str]:
    """A child's history's order: by time, then event id (a total order: one event once per child)."""
    return parse_instant(entry.occurred_at), entry.event_id


def by_time(entries: Iterable[Entry]) -> list[Entry]:
    return sorted(entries, key=time_order)


def fold_history(histories: Mapping[str, list[Entry]], absorbed: str, into: str) -> list[Entry]:
    """The child's history once `absorbed` is known to be `into`: both, each event once, in time order."""
    seen: dict[str, Entry] = {}
    for entry in [*histories.get(into, []), *histories.get(absorbed, [])]:
        seen.setdefault(entry.event_id, entry)
    return by_time(seen.values())


def fold_enquiries(ours: Enquiry | None, theirs: Enquiry | None, into: str) -> tuple[Enquiry | None, Enquiry | None]:
    """(the open enquiry of the merged child, the one folded into it or None). Two open enquiries about one child
    are one: the earlier-opened survives with every contribution; the other is closed as folded."""
    if theirs is None or not theirs.open:
        return ours, None
    if ours is None or not ours.open:
        return replace(theirs, token=into), None
    first, second = sorted((ours, theirs), key=lambda q: (parse_instant(q.opened_at), q.enquiry_id))
    last = max((first.last_at, second.last_at), key=parse_instant)
    merged = replace(first, token=into, last_at=last,
                     contributions=tuple(dict.fromkeys([*first.contributions, *second.contributions])))
    return merged, replace(second, token=into, open=False)
