"""Where the measures' audit records come from (the shell): the live audit store, or an audit export file.

Both give the same record bodies in seq order, so a table computed from the store equals the one computed from its
export (`mash-broker audit export --format jsonl --out audit.jsonl`, then `mash-broker insight tables
--from-export audit.jsonl`). Pruned entries (tombstones) carry no body and are passed over: a pruned record is no
longer counted, in either.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broker.aio import blocking
from broker.audit.export import ExportFormatError, read_jsonl

if TYPE_CHECKING:
    from broker.audit.store import AuditStore

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


async def records_from_store_async(store: AuditStore) -> list[dict[str, Any]]:
    """`records_from_store` from async code: the reads run in a worker thread (broker/aio.py)."""
    return await blocking(records_from_store, store)
