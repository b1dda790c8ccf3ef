"""The share plan over the bench's mix, in process: what the share-plan benchmark (tests/bench/test_share_plan.py),
the audit self-check (tests/pipeline/test_share_plan_audit.py) and the old-against-new differential run use.

The mix's events (adapted, identified, schema-valid, in the clear as a share worker reveals them) are planned in
batches of `BATCH`, with the case state carried from batch to batch as the case register would, so the mix's
social care events open the cases the s17 rules need. Sealing is real (each subscriber's key pair made for the run),
so a delivery can be opened and compared.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.kit.interface import AdaptContext
from adapters.kit.registry import select
from broker.bench.records import Format, mix, usable_formats
from broker.bench.stages import RECEIVED, install_protocol
from broker.crypto.seal import DeliverySealer
from broker.pipeline.identify import LinkageKey, complete
from broker.pipeline.share_plan import Item, ShareFacts, ShareParams, SharePlan, plan_share
from broker.policy import Protocol, load_protocol
from broker.schema.validate import validate_event

BATCH = 20  # events per planned batch: what a share worker's transaction holds at the bench's load
NOW = "2026-12-01T12:00:00Z"
MASK_KEY = b"bench-mask-key-fictitious-000001"


@dataclass
class MixKeys:
    """ShareKeys over real sealers (one per subscriber, made on first use)."""

    protocol: Protocol
    sealers: dict[str, DeliverySealer] = field(default_factory=dict)

    def seal_for(self, subscriber: str, released: dict[str, Any]) -> bytes:
        if subscriber not in self.sealers:
            sub = self.protocol.subscribers[subscriber]
            self.sealers[subscriber] = DeliverySealer(subscriber, sub.public_key(), sub.key_suite)
        return self.sealers[subscriber].seal(released)

    def seal_deadletter_input(self, data: bytes, content_sha256: str) -> str:
        return ""  # the mix has no poison message


@dataclass
class ShareMix:
    protocol: Protocol
    private_keys: dict[str, bytes]  # subscriber -> private key, to open the deliveries
    batches: list[list[Item]]
    keys: MixKeys
    params: ShareParams

    @property
    def events(self) -> int:
        return sum(len(b) for b in self.batches)

    def plan_all(self) -> Iterator[SharePlan]:
        """Each batch's plan, in order, the case state carried over (the register's writes, applied)."""
        cases: dict[str, bool | None] = {}
        for batch in self.batches:
            plan = plan_share(batch, ShareFacts(cases=dict(cases)), self.keys, self.params)
            cases.update((w.token, w.open) for w in plan.case_writes)
            yield plan

    def plan_as_worker(self, batches: list[list[dict[str, Any]]]) -> list[SharePlan]:
        """These events' batches planned in order with the case state and the delivered log carried over, as a
        share worker's registers carry them: an event announced again is decided again, never delivered twice."""
        cases: dict[str, bool | None] = {}
        sent: set[tuple[str, str]] = set()
        plans = []
        for k, events in enumerate(batches):
            items = [Item(e, 0, 1000 * k + i) for i, e in enumerate(events)]
            plan = plan_share(items, ShareFacts(sent=frozenset(sent), cases=dict(cases)), self.keys, self.params)
            cases.update((w.token, w.open) for w in plan.case_writes)
            sent.update((d.subscriber, d.event_id) for d in plan.deliveries)
            plans.append(plan)
        return plans


def comparable(plans: Iterator[SharePlan] | list[SharePlan], private_keys: dict[str, bytes]) -> dict[str, Any]:
    """Everything the plans say, with each delivery opened (a seal is randomised: its bytes never repeat) and the
    audit records' random ids and the sealed bytes left out: what old and new must agree on exactly."""
    from broker.crypto.client import SubscriberClient

    clients = {name: SubscriberClient(key, name) for name, key in private_keys.items()}
    out: dict[str, list[Any]] = {"deliveries": [], "audits": [], "held": [], "referrals": [], "case_writes": [],
                                 "failures": [], "decided": [], "duplicates": []}
    for plan in plans:
        for d in plan.deliveries:
            out["deliveries"].append({"subscriber": d.subscriber, "event_id": d.event_id, "decision_id": d.decision_id,
                                      "token": d.token, "topic": d.message.topic, "key": d.message.key.decode(),
                                      "headers": [[k, v.decode()] for k, v in d.message.headers],
                                      "opened": clients[d.subscriber].open(d.message.value)})
        for r in plan.audits:  # a decision's record id is its decision id; the others are fresh UUIDs
            out["audits"].append(r if r["kind"] == "decision" else {k: v for k, v in r.items() if k != "record_id"})
        out["held"] += [[h.subscriber, h.event_id, h.partition, h.offset] for h in plan.held]
        out["referrals"] += [[r.decision.decision_id, r.token, r.partition, r.offset] for r in plan.referrals]
        out["case_writes"] += [[w.token, w.open, w.event_id] for w in plan.case_writes]
        out["failures"] += [[f.subscriber, f.event_id, f.reason] for f in plan.failures]
        out["decided"] += [list(x) for x in plan.decided]
        out["duplicates"] += list(plan.duplicates)
    return out


LINKAGE = LinkageKey(1, b"bench-linkage-key-fictitious-001")


def body_events(fmt: Format, *numbers: int) -> list[dict[str, Any]]:
    """The schema-valid events of one body of `fmt` (records `numbers`), as the share worker sees them."""
    data = fmt.make(*numbers)
    ctx = AdaptContext(source="bench", received_at=RECEIVED, system=fmt.system)
    drafts = select(fmt.agency, data, source="bench", content_type=fmt.content_type).adapt(data, ctx).events
    return [event for event in (complete(d, LINKAGE, RECEIVED) for d in drafts) if not validate_event(event)]


def mix_events(records: int) -> list[dict[str, Any]]:
    """The events of the mix's first `records` native records, as the share worker sees them."""
    formats, _, _ = usable_formats()
    return [event for fmt, numbers in mix(formats, records) for event in body_events(fmt, *numbers)]


@contextmanager
def share_mix(workdir: Path, records: int = 200) -> Iterator[ShareMix]:
    protocol_file, private = install_protocol(workdir)
    protocol = load_protocol(protocol_file)
    events = mix_events(records)
    batches = [[Item(e, 0, i) for i, e in enumerate(events[j:j + BATCH], j)] for j in range(0, len(events), BATCH)]
    params = ShareParams(protocol, MASK_KEY, NOW, lambda s: f"mash.deliver.{s}", "mash.deadletter")
    yield ShareMix(protocol, private, batches, MixKeys(protocol), params)
