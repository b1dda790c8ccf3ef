"""Reads by Kafka subscribers, as audit facts: a consumer group's committed offset on a delivery topic says "every
delivery below this offset was read". Pure functions; the loop that asks Kafka lives in broker/service/kafka_reads.py.

Three facts, one place each:
- `delivered` records carry the delivery's own topic, partition and offset (`with_positions`, from the produce
  acknowledgement);
- `delivery_read_up_to` records say when a group's committed offset was seen to advance (`read_up_to_records`);
- a delivery was read by Kafka when a read-up-to record on its topic and partition lies beyond its offset
  (`read_at`): the earliest such record's time. That time is when the broker saw the commit, so the read happened
  at or before it (within the polling interval).

A group that reads without committing leaves no committed offset, so it is never counted: the broker can know only
what the subscriber told Kafka.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from broker.audit.record import audit_record

KIND = "delivery_read_up_to"
ACTOR = "kafka-reads"
REASON = "the subscriber's consumer group committed its offset on the delivery topic up to here"
# Record ids derive from (group, topic, partition, offset): the same advance seen twice (two processes polling, a
# restart that forgot what it saw) is one record, as the store drops a repeated id.
_NAMESPACE = uuid.UUID("6d1f0c52-4a0e-4c55-9d8e-6b9a3c1e2f70")

Key = tuple[str, str, int]  # (group, topic, partition)


@dataclass(frozen=True, slots=True)
class Committed:
    """One consumer group's committed offset on one partition of a delivery topic."""

    group: str
    topic: str
    partition: int
    offset: int  # the next offset the group will read


def read_up_to_records(previous: Mapping[Key, int], committed: Iterable[Committed], subscribers: Mapping[str, str],
                       *, time: str) -> tuple[list[dict[str, Any]], dict[Key, int]]:
    """(audit records for the offsets that advanced beyond `previous`, the offsets now known). `subscribers` maps a
    delivery topic to its subscriber; offsets on other topics, and offsets that did not move forward (a reset group,
    nothing committed: -1), make no record."""
    known = dict(previous)
    records = []
    for c in sorted(committed, key=lambda c: (c.group, c.topic, c.partition)):
        subscriber = subscribers.get(c.topic)
        key = (c.group, c.topic, c.partition)
        if subscriber is None or c.offset <= known.get(key, 0):
            continue
        known[key] = c.offset
        rid = str(uuid.uuid5(_NAMESPACE, f"{c.group}\x1f{c.topic}\x1f{c.partition}\x1f{c.offset}"))
        records.append(audit_record(KIND, time=time, actor=ACTOR, record_id=rid, subscriber=subscriber,
                                    topic=c.topic, partition=c.partition, offset=c.offset, group=c.group,
                                    reason=REASON))
    return records, known


Position = tuple[str, int, int]  # (topic, partition, offset) of one delivery


def with_positions(records: Sequence[dict[str, Any]],
                   positions: Mapping[tuple[str, str], Position]) -> list[dict[str, Any]]:
    """The records with each `delivered` record given its delivery's place on Kafka, looked up by (subscriber,
    decision id); everything else unchanged."""
    out = []
    for r in records:
        place = positions.get((r.get("subscriber", ""), r.get("decision_id", ""))) if r["kind"] == "delivered" \
            else None
        out.append(r if place is None else {**r, "topic": place[0], "partition": place[1], "offset": place[2]})
    return out


def read_at(delivered: Mapping[str, Any], up_to: Iterable[Mapping[str, Any]]) -> str | None:
    """When a consumer group of the delivery's subscriber had read past it: the earliest read-up-to record on its
    topic and partition whose committed offset lies beyond the delivery's offset; None when none has, or when the
    delivered record does not say where the delivery went (recorded before positions were kept)."""
    if delivered.get("offset") is None or delivered.get("topic") is None:
        return None
    times = [r["time"] for r in up_to if r.get("kind") == KIND and _covers(r, delivered)]
    return min(times) if times else None


def first_reads(delivered: Iterable[Mapping[str, Any]], up_to: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The read-up-to records that first covered one of these deliveries (what a child's timeline shows as the
    reads of its deliveries by Kafka); a record covering several of them once, in the order given."""
    wanted = set()
    for d in delivered:
        when = read_at(d, up_to)
        if when is not None:
            wanted |= {id(r) for r in up_to if r.get("time") == when and _covers(r, d)}
    return [r for r in up_to if id(r) in wanted]


def _covers(up_to: Mapping[str, Any], delivered: Mapping[str, Any]) -> bool:
    return (up_to.get("subscriber") == delivered.get("subscriber") and up_to.get("topic") == delivered.get("topic")
            and up_to.get("partition") == delivered.get("partition") and up_to["offset"] > delivered["offset"])
