"""A running broker: every part, built whole by the composition root (broker/service/root.py) before anything runs.

Started once per process by `mash-broker run` / `mash-broker worker`; the HTTP app and the workers use it. Nothing
here is None waiting for a start: a Runtime exists only once Kafka, the producer, the registers and the audit store
are open. Workers and routers take it typed as a narrow Protocol of what they use (broker/service/ports.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer

from adapters.kit.interface import AdapterSettings
from broker.access.apikeys import ApiKeyStore
from broker.audit import audit_record as build_audit_record
from broker.audit.store import AuditStore
from broker.config import Settings
from broker.crypto import KeyStore, protect_blob, protect_event, reveal_blob, reveal_event
from broker.kafka.apache import ApacheKafka
from broker.kafka.embedded import EmbeddedKafka
from broker.pipeline.identify import LinkageKey
from broker.policy import ConsentState, Protocol
from broker.service.audit_emitter import AuditEmitter, UnwrapAudit
from broker.service.delivery import CursorCodec, DeliveryReader
from broker.service.epoch import EpochState
from broker.service.kafka_link import KafkaLink, StartupFailed
from broker.service.metrics import Metrics
from broker.service.sealers import Sealers
from broker.service.topics import required_topics
from broker.stores.cases import CaseRegister
from broker.stores.consent import ConsentRegister
from broker.stores.cursors import CursorStore
from broker.stores.decisions import ReferralRegister
from broker.stores.delivered import DeliveredLog
from broker.stores.determinations import DeterminationRegister
from broker.stores.erasures import ErasureRegister
from broker.stores.held import HeldDeliveries
from broker.stores.history import HistoryRegister
from broker.stores.identities import IdentityRegister
from broker.stores.registry import REGISTERS, Register
from broker.stores.served import FirstServed

__all__ = ["Local", "Runtime", "StartupFailed", "stores_status"]


@dataclass(frozen=True, kw_only=True, eq=False)
class Local:
    """What the process holds before Kafka is touched (root.load_local): each part loaded and checked."""

    settings: Settings
    metrics: Metrics
    unwraps: UnwrapAudit  # the keystore's unwraps, waiting for the next audit batch
    linkage: LinkageKey
    mask_key: bytes
    adapter_settings: AdapterSettings  # read from Settings once (adapters get them through their context)
    keys: KeyStore
    protocol: Protocol  # in dev mode, pointing at the data directory's development subscriber keys
    api_keys: ApiKeyStore
    sealers: Sealers

    def parts(self) -> dict[str, Any]:
        """Its parts by name: the Runtime is built from them (a shallow copy: the same objects)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def stores_status(registers: list[Register]) -> str:
    """The /readyz line for the registers: "ok", or the first one that does not answer."""
    try:
        for register in registers:
            register.db.query("SELECT 1")
    except Exception as exc:
        return f"unavailable ({type(exc).__name__})"
    return "ok"


@dataclass(kw_only=True, eq=False)
class Runtime:
    # --- loaded before Kafka (root.load_local) ------------------------------------------------------------------
    settings: Settings
    metrics: Metrics
    unwraps: UnwrapAudit
    linkage: LinkageKey
    mask_key: bytes
    adapter_settings: AdapterSettings
    keys: KeyStore
    protocol: Protocol
    api_keys: ApiKeyStore
    sealers: Sealers
    # --- Kafka and the audit trail ------------------------------------------------------------------------------
    kafka: KafkaLink
    producer: AIOKafkaProducer
    audit: AuditEmitter
    audit_store: AuditStore
    epoch_state: EpochState  # what the start found of Kafka (broker/service/epoch.py)
    cursor_codec: CursorCodec
    delivery_reader: DeliveryReader
    # --- the registers: one field per entry of broker/stores/registry.py REGISTERS (root.open_registers fills them
    # by name, so an entry without its field, or a field without its entry, fails the construction)
    delivered: DeliveredLog
    cursors: CursorStore
    first_served: FirstServed
    consent: ConsentRegister
    cases: CaseRegister
    identities: IdentityRegister
    erasures: ErasureRegister
    held: HeldDeliveries
    referrals: ReferralRegister  # shares waiting for a recorded human decision
    determinations: DeterminationRegister  # s47(9) requests, adult-at-risk determinations
    history: HistoryRegister  # the hub watch's history, enquiries and clocks per child (issue 16)
    # --- learnt while running -----------------------------------------------------------------------------------
    # Whether the cluster grants transactional producers: unknown until the first share worker asks (share.py)
    kafka_transactions: bool | None = None
    held_recheck_seconds: float = 2.0  # how often held deliveries' subscriber keys are tried again
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    # --- Kafka --------------------------------------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap

    @property
    def kafka_security(self) -> dict[str, Any]:
        """TLS/SASL options for every client; a Kafka this process started is plain loopback."""
        return self.kafka.security

    @property
    def embedded(self) -> EmbeddedKafka | None:
        return self.kafka.embedded

    @property
    def local_kafka(self) -> ApacheKafka | None:  # make run on Java 17+: a durable node under <data_dir>/kafka
        return self.kafka.local_kafka

    @property
    def local_kafka_note(self) -> str:  # why the embedded Tansu runs instead of Apache Kafka, when it does
        return self.kafka.local_kafka_note

    @property
    def kafka_in_use(self) -> str:
        return self.kafka.in_use

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def required_topics(self) -> list[str]:
        """Every topic the service needs: the layout's (broker/kafka/topology.py) and the epoch marker topic."""
        return required_topics(self.settings, self.protocol)

    # --- subscribers' keys --------------------------------------------------------------------------------------
    def seal_for(self, subscriber: str, released: dict[str, Any]) -> bytes:
        return self.sealers.seal_for(subscriber, released)

    def check_subscriber_keys(self, *, warn: bool = False) -> dict[str, str]:
        return self.sealers.check_keys(warn=warn)

    @property
    def subscriber_faults(self) -> dict[str, str]:
        """subscriber -> why it cannot be sealed to now (its deliveries are held; /readyz says degraded)."""
        return self.sealers.faults

    # --- registers ----------------------------------------------------------------------------------------------
    def consent_for(self, subject: str) -> ConsentState | None:
        return self.consent.get(subject)

    def consent_for_many(self, subjects: Iterable[str]) -> dict[str, ConsentState | None]:
        """`consent_for` of a batch's children in one register read (every subject a key, None if none held)."""
        return self.consent.get_many(subjects)

    def registers(self) -> list[Register]:
        """Every register, in broker/stores/registry.py's order."""
        return [getattr(self, spec.attr) for spec in REGISTERS]

    def stores_status(self) -> str:
        return stores_status(self.registers())

    # --- crypto at the edge of Kafka ----------------------------------------------------------------------------
    def protect(self, event: dict[str, Any]) -> dict[str, Any]:
        return protect_event(event, self.keys)

    def reveal(self, protected: dict[str, Any]) -> Any:
        return reveal_event(protected, self.keys)

    def seal_deadletter_input(self, data: bytes, content_sha256: str) -> str:
        return protect_blob(data, f"deadletter:{content_sha256}", self.keys)

    def open_deadletter_input(self, sealed: str, content_sha256: str) -> bytes:
        return reveal_blob(sealed, f"deadletter:{content_sha256}", self.keys)

    # --- audit --------------------------------------------------------------------------------------------------
    def audit_record(self, kind: str, **fields: Any) -> dict[str, Any]:
        return build_audit_record(kind, **fields)  # it leaves out fields set to None

    async def emit_audit(self, records: list[dict[str, Any]], producer: AIOKafkaProducer | None = None) -> None:
        """Audit records to the audit topic, with the unwraps waiting (broker/service/audit_emitter.py)."""
        await self.audit.emit(records, producer)

    # --- workers ------------------------------------------------------------------------------------------------
    def start_workers(self, share_workers: int = 1, audit_indexer: bool = True) -> None:
        # Imported here: the workers' modules import the layers below, never this one (layer contract in pyproject)
        from broker.service.audit_indexer import run_audit_indexer
        from broker.service.erasure import run_erasure_notices
        from broker.service.held import run_held_release
        from broker.service.hub_watch import run_hub_watch
        from broker.service.insight_watch import run_insight_watch
        from broker.service.kafka_reads import run_kafka_reads
        from broker.service.malloc_trim import run_malloc_trim
        from broker.service.share import run_share_worker

        # every process, the HTTP-only service too: glibc keeps freed pages (broker/service/malloc_trim.py)
        self.tasks.append(asyncio.create_task(run_malloc_trim(self.stop_event)))
        for i in range(share_workers):
            self.tasks.append(asyncio.create_task(run_share_worker(self, self.stop_event, f"share-{i}")))
        if share_workers:  # one per process: releases what a subscriber's unusable key held back
            self.tasks.append(asyncio.create_task(run_held_release(self, self.stop_event)))
        if audit_indexer:  # a consumer-group member: of all the processes that run one, one indexes at a time
            self.tasks.append(asyncio.create_task(run_audit_indexer(self, self.stop_event)))
        if audit_indexer and self.settings.kafka_reads_interval_seconds > 0:  # Kafka subscribers' reads, audited
            self.tasks.append(asyncio.create_task(
                run_kafka_reads(self, self.stop_event, self.settings.kafka_reads_interval_seconds)))
        if share_workers:  # publishes the person.erased notices a CLI shred left owed (it has no Kafka producer)
            self.tasks.append(asyncio.create_task(run_erasure_notices(self, self.stop_event)))
        if share_workers and self.protocol.hub.watches:  # one consumer group: of all the processes, one watches a child
            self.tasks.append(asyncio.create_task(run_hub_watch(self, self.stop_event)))
        if share_workers and self.settings.insight_watch_interval_seconds > 0:  # a rise twice has one id: dropped
            self.tasks.append(asyncio.create_task(run_insight_watch(self, self.stop_event)))

    def workers_alive(self) -> bool:
        return all(not t.done() for t in self.tasks)

    async def stop(self) -> None:
        self.stop_event.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), timeout=5)
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.delivery_reader.close()
        with contextlib.suppress(Exception):
            await self.producer.stop()
        for register in self.registers():
            register.close()
        self.audit_store.close()
        await self.kafka.close()


if TYPE_CHECKING:  # the checker proves the Runtime gives every router and worker what its Protocol names
    from broker.service import ports

    def _gives_every_part(rt: Runtime) -> tuple[
            ports.SharePorts, ports.HeldPorts, ports.IndexerPorts, ports.AdminPorts, ports.ConsentReviewPorts,
            ports.DecidingPorts, ports.IgPolicyPorts, ports.HealthPorts, ports.ServingPorts, ports.IntakePorts]:
        return rt, rt, rt, rt, rt, rt, rt, rt, rt, rt
