"""Where the measures' audit records come from (the shell): the live audit store, or an audit export file.

Both give the same record bodies in seq order, so a table computed from the store equals the one computed from its
export (`mash-broker audit export --format jsonl --out audit.jsonl`, then `mash-broker insight tables
--from-export audit.jsonl`). Pruned entries (tombstones) carry no body and are passed over: a pruned record is no
longer counted, in either.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broker.audit.export import ExportFormatError, read_jsonl
from broker.insight.compute import DERIVED_READS

if TYPE_CHECKING:
    from broker.audit.store import AuditStore
    from broker.insight.measures import Measure

# The kinds a measure reads; the rest of the log (key unwraps, reads, admin actions) is left where it is.
KINDS = frozenset({"event_published", "identity_linked", "delivered", "decision", "hub_clock"})


def bodies(entries: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """The record bodies of audit entries, in their order: tombstones and kinds no measure reads left out."""
    for entry in entries:
        record = entry.get("record")
        if isinstance(record, dict) and record.get("kind") in KINDS:
            yield record


def records_from_export(path: Path | str) -> list[dict[str, Any]]:
    """The records of a JSON Lines audit export. Raises ExportFormatError naming the file and line."""
    source = Path(path)
    try:
        with source.open(encoding="utf-8") as lines:
            _header, entries, _checkpoints = read_jsonl(lines)
    except OSError:
        raise ExportFormatError(f"{source.name}: cannot be read") from None
    except ExportFormatError as e:
        raise ExportFormatError(f"{source.name}: {e}") from None
    return list(bodies(entries))


def records_from_store(store: AuditStore) -> list[dict[str, Any]]:
    """The records of the live audit store (blocking: call it off the event loop)."""
    return list(bodies(store.entries()))


def kinds_read_by(measures: Sequence[Measure]) -> frozenset[str]:
    """The audit kinds the measures can count. event_published always: every item's codes are its event's (a
    non-event record inherits them from the event it concerns), and the watch's own rises are audited as one. A
    derived rule this module does not know reads every kind (never fewer than it needs)."""
    kinds = {"event_published"}
    for measure in measures:
        for count in (measure.numerator, measure.denominator):
            if count is None:
                continue
            select = count.select
            if "derived" in select:
                kinds |= DERIVED_READS.get(select["derived"], KINDS)
            else:
                kinds.add(select["kind"])
    return frozenset(kinds & KINDS)


def records_of_kinds(store: AuditStore, kinds: Iterable[str], *, after_seq: int = 0,
                     through_seq: int | None = None) -> Iterator[dict[str, Any]]:
    """The live store's records of `kinds` (blocking; those after `after_seq`, up to `through_seq`), streamed a page
    at a time, kind by kind, each kind in seq order. That is all the counting depends on: compute.index_records
    keeps the first event_published of an id and the last identity merge of a token (orders within one kind), and
    sorts what it counts by (time, record_id)."""
    for kind in sorted(set(kinds) & KINDS):
        yield from store.bodies_of_kind(kind, after_seq=after_seq, through_seq=through_seq)

