"""Retention per record kind, as pure functions: which entries are past their kind's period.

Pruning replaces a record's body with a tombstone (seq, prev_hash, record_sha256, hash stay), so the chain still
verifies end to end; nothing after it has to go. A run of tombstones at the start of the chain may later be dropped
altogether ("compaction"), anchored by a signed prune checkpoint at the new start (broker/audit/README.md).
Kinds with no period configured are kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from broker.audit.record import KINDS
from broker.errors import InputRejected


class RetentionError(InputRejected, ValueError):
    pass


def parse_retention(items: Iterable[str]) -> dict[str, int]:
    """['decision=2557', 'delivery_read=365'] or one comma-separated string per item -> {kind: days}."""
    out: dict[str, int] = {}
    for item in items:
        for part in filter(None, (p.strip() for p in item.split(","))):
            kind, sep, days = part.partition("=")
            if not sep or kind not in KINDS:
                raise RetentionError(f"retention '{kind[:40]}': expected KIND=DAYS with a kind from: "
                                     + ", ".join(KINDS))
            if not days.isdigit() or int(days) < 1:
                raise RetentionError(f"retention for {kind}: days must be a whole number of at least 1")
            out[kind] = int(days)
    return out


def cutoffs(now: str, retention_days: Mapping[str, int]) -> dict[str, str]:
    """kind -> the time (normalised UTC text) before which that kind's records expire."""
    when = dt.datetime.fromisoformat(now).astimezone(dt.UTC)
    return {kind: (when - dt.timedelta(days=days)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            for kind, days in retention_days.items()}


def expired(kind: str, time: str, cut: Mapping[str, str]) -> bool:
    return kind in cut and time < cut[kind]
