"""The pure pipeline stages, timed one by one over the synthetic mix, and the encryption stage's cost.

Stages, in pipeline order: adapt (select + adapter), identify (linkage token), validate (canonical schema), protect
(field encryption), reveal (decryption in the share worker), decide (policy for every subscriber), release (projection
of the delivered view), seal (HPKE content key + AES-GCM per delivery). No Kafka, no HTTP: what is left over in the
end-to-end figure is transport and I/O.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from adapters.kit.interface import AdaptContext
from adapters.kit.registry import select
from broker.bench.records import Format, mix
from broker.crypto import KeyStore, open_key_provider, protect_event, reveal_event
from broker.crypto.hpke_keys import generate_subscriber_keypair
from broker.crypto.seal import DeliverySealer
from broker.pipeline.identify import LinkageKey, complete
from broker.policy import Protocol, decide_all, load_protocol, release
from broker.schema.validate import validate_event

SAMPLE_PROTOCOL = Path(__file__).resolve().parents[2] / "deploy" / "protocols" / "sample-partnership.yaml"
STAGES = ("adapt", "identify", "validate", "protect", "reveal", "decide", "release", "seal")
RECEIVED = "2026-01-01T00:00:00Z"


def install_protocol(workdir: Path, source: Path = SAMPLE_PROTOCOL) -> tuple[Path, dict[str, bytes]]:
    """Copy the protocol into workdir and give each subscriber a fresh key pair; returns the file and private keys."""
    target = workdir / "protocol" / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    private: dict[str, bytes] = {}
    for sub in load_protocol(target).subscribers.values():
        if sub.key_file is None:
            continue
        key, public_b64 = generate_subscriber_keypair(sub.key_suite)
        sub.key_file.parent.mkdir(parents=True, exist_ok=True)
        sub.key_file.write_text(public_b64 + "\n")
        private[sub.name] = key
    return target, private


@dataclass
class StageKit:
    """What the pure stages need: the protocol, a keystore, sealers, the linkage and mask keys."""

    protocol: Protocol
    keys: KeyStore
    linkage: LinkageKey = field(default_factory=lambda: LinkageKey(1, b"bench-linkage-key-fictitious-001"))
    mask_key: bytes = b"bench-mask-key-fictitious-000001"
    sealers: dict[str, DeliverySealer] = field(default_factory=dict)

    def sealer(self, name: str) -> DeliverySealer:
        if name not in self.sealers:
            sub = self.protocol.subscribers[name]
            self.sealers[name] = DeliverySealer(name, sub.public_key(), sub.key_suite)
        return self.sealers[name]


@contextmanager
def stage_kit(workdir: Path) -> Iterator[StageKit]:
    protocol_file, _ = install_protocol(workdir)
    keys = open_key_provider(workdir / "data", create=True)
    try:
        yield StageKit(load_protocol(protocol_file), keys)
    finally:
        keys.close()


def native_inputs(formats: list[Format], count: int) -> list[tuple[Format, bytes]]:
    return [(fmt, fmt.make(*numbers)) for fmt, numbers in mix(formats, count)]


def run_stages(kit: StageKit, inputs: list[tuple[Format, bytes]], *, encrypt: bool = True,
               timer: dict[str, float] | None = None) -> int:
    """The pure pipeline over every input; returns the number of events. `timer` collects seconds per stage."""
    clock = time.perf_counter
    t = timer if timer is not None else dict.fromkeys(STAGES, 0.0)
    count = 0
    for fmt, data in inputs:
        t0 = clock()
        ctx = AdaptContext(source="bench", received_at=RECEIVED, system=fmt.system)
        drafts = select(fmt.agency, data, source="bench", content_type=fmt.content_type).adapt(data, ctx).events
        t1 = clock()
        t["adapt"] += t1 - t0
        for draft in drafts:
            t0 = clock()
            event = complete(draft, kit.linkage, RECEIVED)
            t1 = clock()
            problems = validate_event(event)
            t2 = clock()
            t["identify"] += t1 - t0
            t["validate"] += t2 - t1
            if problems:
                continue
            if encrypt:
                protected = orjson.dumps(protect_event(event, kit.keys))
                t3 = clock()
                event = reveal_event(orjson.loads(protected), kit.keys).event
                t4 = clock()
                t["protect"] += t3 - t2
                t["reveal"] += t4 - t3
            t4 = clock()
            decisions = decide_all(kit.protocol, event, None, case_open=True)
            t5 = clock()
            t["decide"] += t5 - t4
            for decision in decisions:
                if decision.outcome != "deliver":
                    continue
                t6 = clock()
                view = release(event, decision, mask_key=kit.mask_key)
                t7 = clock()
                kit.sealer(decision.subscriber).seal(view)
                t["release"] += t7 - t6
                t["seal"] += clock() - t7
            count += 1
    return count


@dataclass
class StageReport:
    events: int
    records: int
    us_per_event: dict[str, float]  # adapt is per event too (its cost shared among a record's events)
    events_per_s_with_encryption: float
    events_per_s_without_encryption: float
    protected_sizes: list[int]
    events_per_s_first_sight: float  # the same mix when every child is new (data keys created on the way)

    @property
    def encryption_share(self) -> float:
        """Fraction of the pure pipeline's time spent in protect + reveal."""
        return 1 - self.events_per_s_with_encryption / self.events_per_s_without_encryption

    def to_dict(self) -> dict[str, Any]:
        return {"events": self.events, "records": self.records,
                "us_per_event": {k: round(v, 1) for k, v in self.us_per_event.items()},
                "events_per_s_with_encryption": round(self.events_per_s_with_encryption),
                "events_per_s_without_encryption": round(self.events_per_s_without_encryption),
                "events_per_s_first_sight_of_each_child": round(self.events_per_s_first_sight),
                "encryption_share": round(self.encryption_share, 3),
                "mean_protected_event_bytes": round(sum(self.protected_sizes) / max(len(self.protected_sizes), 1))}


def measure_stages(kit: StageKit, formats: list[Format], records: int = 600,
                   profile: Callable[[Callable[[], Any]], Any] | None = None) -> StageReport:
    """Time the mix cold (new children), then warm with and without encryption in one run, and each stage."""
    inputs = native_inputs(formats, records)
    t0 = time.perf_counter()
    run_stages(kit, inputs)  # first sight of every child: its data keys are made (synced writes), sealers warm up
    cold = time.perf_counter() - t0
    timer = dict.fromkeys(STAGES, 0.0)
    t0 = time.perf_counter()
    events = run_stages(kit, inputs, encrypt=True, timer=timer)
    with_encryption = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_stages(kit, inputs, encrypt=False)
    without_encryption = time.perf_counter() - t0
    if profile is not None:
        profile(lambda: run_stages(kit, inputs))
    sizes = []
    for fmt, data in inputs[:100]:
        ctx = AdaptContext(source="bench", received_at=RECEIVED, system=fmt.system)
        for draft in select(fmt.agency, data, source="bench", content_type=fmt.content_type).adapt(data, ctx).events:
            sizes.append(len(orjson.dumps(protect_event(complete(draft, kit.linkage, RECEIVED), kit.keys))))
    return StageReport(events, records, {k: v / events * 1e6 for k, v in timer.items()},
                       events / with_encryption, events / without_encryption, sizes, events / cold)
