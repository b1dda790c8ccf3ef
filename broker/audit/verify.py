"""Verifying a chain and its checkpoints: a pure function an outside auditor can run on an export.

Checks, in order: every checkpoint's signature; where the chain starts (seq 1 from GENESIS, or a later seq anchored
by a signed prune checkpoint); every entry's seq, record digest, hash and link to the one before, and, where the
entry carries the store's index columns, that they equal what the record says; then that every checkpoint's hash
matches the chain at its seq, that no checkpoint lies beyond the last entry (truncation), that a signed checkpoint
stands at every multiple of `checkpoint_every` the chain has passed, that the chain ends at the store's head, and that
every tombstone lies inside a logged prune that names its kind, its retention cut-off and its range.
The result names the first record that is wrong, or the first that can no longer be trusted, and what was wrong
with it (a column by name, never a value).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.audit.chain import GENESIS, INDEX_COLUMNS, TOMBSTONE_COLUMNS, index_of, link_hash, record_digest
from broker.audit.checkpoint import checkpoint_signature_ok

PRUNE_ACTION = "audit.prune"  # the admin_action a prune logs, one record per kind it pruned (broker/audit/store.py)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int  # entries walked
    first_bad_seq: int | None
    reason: str
    head_seq: int = 0
    head_hash: str = GENESIS
    checkpoints: int = 0  # signed checkpoints checked against the chain
    last_checkpoint_seq: int | None = None
    unsigned_tail: int = 0  # entries after the last checkpoint: protected by the chain only until the next one
    fault: str = ""  # what failed: signature, start, chain, index, checkpoint, checkpoint_missing, head, tombstone

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Fault:
    seq: int
    reason: str
    kind: str = "chain"


@dataclass(slots=True)
class _Group:
    """Tombstones sharing one (pruned_at, kind): what one prune run made of one kind."""
    count: int = 0
    min_seq: int = 0
    max_seq: int = 0
    max_time: str = ""
    max_time_seq: int = 0


@dataclass(frozen=True, slots=True)
class _Prune:
    seq: int
    time: str
    kind: str | None  # None: a prune logged before prunes named their kind (any kind, no count check)
    before: str | None
    through_seq: int
    count: int


@dataclass(slots=True)
class _Walk:
    checked: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    seen: dict[int, str] = field(default_factory=dict)
    groups: dict[tuple[str, str], _Group] = field(default_factory=dict)
    prunes: list[_Prune] = field(default_factory=list)
    fault: _Fault | None = None


def _index_fault(seq: int, entry: Mapping[str, Any], record: Mapping[str, Any] | None) -> _Fault | None:
    """The store's copy of the record's query columns must be the record's own (a tombstone keeps kind and time)."""
    index = entry.get("index")
    if not isinstance(index, Mapping):
        return None
    if record is not None:
        for column, value in index_of(record).items():
            if index.get(column) != value:
                return _Fault(seq, f"record {seq}: its {column} column does not match the chained record (the "
                                   "index was edited)", "index")
        if index.get("pruned_at") is not None:
            return _Fault(seq, f"record {seq}: its pruned_at column is set on a record that has its body", "index")
        return None
    for column in INDEX_COLUMNS:
        if column not in TOMBSTONE_COLUMNS and index.get(column) is not None:
            return _Fault(seq, f"record {seq}: a pruned record's {column} column is set (the index was edited)",
                          "index")
    return None


def _prune_of(seq: int, record: Mapping[str, Any]) -> _Prune | None:
    if record.get("kind") != "admin_action" or record.get("action") != PRUNE_ACTION:
        return None
    through = record.get("through_seq")
    return _Prune(seq, str(record.get("time")), record.get("target") if isinstance(through, int) else None,
                  record.get("before") if isinstance(record.get("before"), str) else None,
                  through if isinstance(through, int) else seq - 1,
                  count if isinstance(count := record.get("count"), int) else 0)


def _walk(entries: Iterable[Mapping[str, Any]], start_seq: int, start_prev: str, wanted: set[int]) -> _Walk:
    walk = _Walk(head_seq=start_seq - 1, head_hash=start_prev)
    expected_seq, expected_prev = start_seq, start_prev
    for entry in entries:
        seq = entry.get("seq")
        if not isinstance(seq, int) or seq != expected_seq:
            if isinstance(seq, int) and seq > expected_seq:
                why = f"record {expected_seq} is missing or out of order (seq {seq} stands in its place)"
            else:
                why = (f"an entry with seq {seq} stands where seq {expected_seq} belongs "
                       "(inserted, repeated or reordered)")
            walk.fault = _Fault(expected_seq, why)
            return walk
        record = entry.get("record")
        digest = entry.get("record_sha256")
        pruned = entry.get("pruned") or {}  # None or empty: no tombstone either way (the check below)
        if record is not None:
            if not isinstance(record, Mapping) or record_digest(record) != digest:
                walk.fault = _Fault(seq, f"record {seq} does not match its digest (edited)")
                return walk
        elif not isinstance(pruned, Mapping) or not all(isinstance(pruned.get(k), str) for k in ("at", "kind", "time")):
            walk.fault = _Fault(seq, f"record {seq} has no body and is no tombstone")
            return walk
        if not isinstance(digest, str) or link_hash(seq, str(entry.get("prev_hash")), digest) != entry.get("hash"):
            walk.fault = _Fault(seq, f"record {seq} does not match its hash (edited)")
            return walk
        if entry.get("prev_hash") != expected_prev:
            bad = seq - 1 if seq > start_seq else seq
            why = (f"record {seq} links to a hash other than record {seq - 1}'s: record {bad} was altered and "
                   f"rehashed, or record {seq} replaced")
            walk.fault = _Fault(bad, why)
            return walk
        walk.fault = _index_fault(seq, entry, record)
        if walk.fault is not None:
            return walk
        if record is None:
            group = walk.groups.setdefault((pruned["at"], pruned["kind"]), _Group(min_seq=seq))
            group.count += 1
            group.max_seq = seq
            if pruned["time"] >= group.max_time:
                group.max_time, group.max_time_seq = pruned["time"], seq
        elif (prune := _prune_of(seq, record)) is not None:
            walk.prunes.append(prune)
        walk.checked += 1
        expected_seq, expected_prev = seq + 1, entry["hash"]
        walk.head_seq, walk.head_hash = seq, expected_prev
        if seq in wanted:
            walk.seen[seq] = expected_prev
    return walk


def _tombstone_faults(walk: _Walk, start_seq: int) -> list[_Fault]:
    """A tombstone is legitimate only inside a logged prune: same run (pruned_at is the prune's time), a kind the
    prune named, a time before its cut-off, a seq inside its range; and no prune run may own more tombstones than it
    recorded. Compaction removes tombstones only from the start, so what is missing there is start_seq - 1."""
    faults: list[_Fault] = []
    recorded_total, present_total, legacy = 0, 0, any(p.kind is None for p in walk.prunes)
    for (pruned_at, kind), group in sorted(walk.groups.items(), key=lambda item: item[1].min_seq):
        runs = [p for p in walk.prunes if p.time == pruned_at and p.kind in (None, kind) and p.seq > group.max_seq]
        if not runs:
            faults.append(_Fault(group.min_seq, f"record {group.min_seq} is a tombstone that no logged prune covers "
                                                "(its body was removed without a prune)", "tombstone"))
            continue
        befores = [p.before for p in runs if p.before is not None]
        if befores and group.max_time >= max(befores):
            faults.append(_Fault(group.max_time_seq, f"record {group.max_time_seq} is a tombstone inside the retention "
                                                     "period of the prune that claims it", "tombstone"))
        if group.max_seq > max(p.through_seq for p in runs):
            faults.append(_Fault(group.max_seq, f"record {group.max_seq} is a tombstone beyond the range of the prune "
                                                "that claims it", "tombstone"))
        named = [p for p in runs if p.kind == kind]
        recorded = sum(p.count for p in named)
        if named and group.count > recorded:
            faults.append(_Fault(named[0].seq, f"{group.count} tombstones claim the prune at seq {named[0].seq}, "
                                               f"which recorded {recorded}: some bodies were removed without a prune",
                                 "tombstone"))
        present_total += group.count
    recorded_total = sum(p.count for p in walk.prunes if p.kind is not None)
    if not faults and not legacy and walk.prunes and recorded_total != present_total + start_seq - 1:
        last = walk.prunes[-1].seq
        faults.append(_Fault(last, f"the logged prunes (last at seq {last}) recorded {recorded_total} tombstones; the "
                                   f"chain holds {present_total} and compaction dropped {start_seq - 1}", "tombstone"))
    return faults


def verify(entries: Iterable[Mapping[str, Any]], checkpoints: Sequence[Mapping[str, Any]],
           public_key: Ed25519PublicKey, *, checkpoint_every: int = 0,
           head: tuple[int, str] | None = None) -> VerifyResult:
    """Check the entries (in the order given) against the signed checkpoints.

    `checkpoint_every`: the interval at which the store signs a periodic checkpoint (0: none expected); a multiple of
    it that the chain has passed without a signed checkpoint at exactly that seq is an error (checkpoints deleted).
    `head`: the (seq, hash) the store names as its head; the chain must end exactly there.
    An entry may carry `index`, the store's query columns for it: they must equal what the record says."""
    cps = sorted(checkpoints, key=lambda c: int(c.get("seq", -1)) if isinstance(c.get("seq"), int) else -1)
    for cp in cps:
        if not checkpoint_signature_ok(cp, public_key):
            return VerifyResult(False, 0, cp.get("seq") if isinstance(cp.get("seq"), int) else None,
                                f"checkpoint at seq {cp.get('seq')}: signature invalid or not made by this key",
                                fault="signature")

    iterator = iter(entries)
    first = next(iterator, None)
    start_seq, start_prev = 1, GENESIS
    if first is not None and first.get("seq") != 1:
        if not isinstance(first.get("seq"), int):
            return VerifyResult(False, 0, 1, "the first entry has no sequence number", fault="start")
        anchor = next((c for c in cps if c["purpose"] == "prune" and c["seq"] == first["seq"] - 1
                       and c["hash"] == first.get("prev_hash")), None)
        if anchor is None:
            return VerifyResult(False, 0, 1, f"the chain starts at seq {first.get('seq')} with no signed prune "
                                             "checkpoint anchoring it: earlier records are missing", fault="start")
        start_seq, start_prev = int(first["seq"]), str(first["prev_hash"])

    def chained() -> Iterable[Mapping[str, Any]]:
        if first is not None:
            yield first
            yield from iterator

    walk = _walk(chained(), start_seq, start_prev, {int(c["seq"]) for c in cps})
    head_seq, head_hash, seen, fault = walk.head_seq, walk.head_hash, walk.seen, walk.fault
    seen[start_seq - 1] = start_prev

    faults = [fault] if fault else []
    good_cp = start_seq - 1
    matched, last_cp = 0, None
    for cp in cps:
        seq = int(cp["seq"])
        if seq < start_seq - 1:
            continue  # before the retention horizon: nothing left to compare with
        if fault is not None and seq > head_seq:
            break  # the walk stopped early; the fault already names the place
        if seq > head_seq:
            faults.append(_Fault(head_seq + 1, f"records after seq {head_seq} are missing: a signed checkpoint "
                                               f"covers seq {seq} (truncated)", "checkpoint"))
            break
        if seen.get(seq) != cp["hash"]:
            faults.append(_Fault(good_cp + 1, f"the chain between seq {good_cp + 1} and {seq} was rewritten: it does "
                                              f"not match the signed checkpoint at seq {seq}", "checkpoint"))
            break
        good_cp, matched, last_cp = seq, matched + 1, seq

    if fault is None:
        if head is not None:
            faults.extend(_head_faults(head, head_seq, head_hash))
        if checkpoint_every > 0:
            # Due at every multiple k the chain has passed. Stores written before checkpoints were signed exactly at
            # the multiples signed at the head of the batch that crossed one: a checkpoint in [k, k + interval)
            # keeps those chains verifiable, and still leaves no multiple without its signature.
            signed = sorted(int(c["seq"]) for c in cps)
            first_due = -(-max(start_seq, 1) // checkpoint_every) * checkpoint_every
            missing = next((k for k in range(first_due, head_seq + 1, checkpoint_every)
                            if not _signed_within(signed, k, k + checkpoint_every)), None)
            if missing is not None:
                faults.append(_Fault(missing, f"no signed checkpoint at seq {missing}: one is made at every "
                                              f"multiple of {checkpoint_every}, so checkpoints were deleted",
                                     "checkpoint_missing"))
        faults.extend(_tombstone_faults(walk, start_seq))

    if faults:
        worst = min(faults, key=lambda f: f.seq)
        return VerifyResult(False, walk.checked, worst.seq, worst.reason, head_seq, head_hash, matched, last_cp,
                            fault=worst.kind)
    tail = head_seq - (last_cp if last_cp is not None else start_seq - 1)
    reason = f"{walk.checked} records verified; {matched} signed checkpoint(s) match"
    if tail:
        reason += f"; {tail} records after the last checkpoint are protected by the chain only"
    return VerifyResult(True, walk.checked, None, reason, head_seq, head_hash, matched, last_cp, tail)


def _head_faults(head: tuple[int, str], head_seq: int, head_hash: str) -> list[_Fault]:
    named_seq, named_hash = head
    if named_seq > head_seq:
        return [_Fault(head_seq + 1, f"the store's head names seq {named_seq} but the chain ends at seq {head_seq}: "
                                     "records were removed from the end (truncated)", "head")]
    if named_seq < head_seq:
        return [_Fault(named_seq + 1, f"entries after the store's head (seq {named_seq}) were added outside the "
                                      "writer", "head")]
    if named_hash != head_hash:
        return [_Fault(max(head_seq, 1), f"the store's head hash does not match record {head_seq}", "head")]
    return []


def _signed_within(signed: list[int], low: int, high: int) -> bool:
    """Whether a checkpoint seq lies in [low, high); `signed` is sorted."""
    i = bisect.bisect_left(signed, low)
    return i < len(signed) and signed[i] < high
