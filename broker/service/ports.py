"""What each part of the shell is given: narrow Protocols over the Runtime (broker/service/runtime.py).

A worker or a route names the Protocol of what it uses, and the checker holds it to that: the share worker cannot
reach the API keys, a route cannot reach the producer it does not need. The Runtime the composition root builds
(broker/service/root.py) satisfies every one of them, and so may a smaller holder (the CLI's `as_decided.Registers`,
a test's own parts). They import only the service's leaf modules (delivery, epoch, metrics), so any module may
import them.

Members are read-only (`@property`) unless the part writes them (the share worker records `kafka_transactions`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer

from adapters.kit.interface import AdapterSettings
from broker.audit.store import AuditStore
from broker.config import Settings
from broker.crypto import KeyStore
from broker.kafka.embedded import EmbeddedKafka
from broker.pipeline.identify import LinkageKey
from broker.policy import ConsentState
from broker.policy import Protocol as SharingProtocol
from broker.service.delivery import CursorCodec, DeliveryReader
from broker.service.epoch import EpochState
from broker.service.metrics import Metrics
from broker.stores.cases import CaseRegister
from broker.stores.consent import ConsentRegister
from broker.stores.cursors import CursorStore
from broker.stores.decisions import ReferralRegister
from broker.stores.delivered import DeliveredLog
from broker.stores.determinations import DeterminationRegister
from broker.stores.erasures import ErasureRegister
from broker.stores.held import HeldDeliveries
from broker.stores.identities import IdentityRegister
from broker.stores.served import FirstServed

# --- building blocks --------------------------------------------------------------------------------------------


class KafkaReads(Protocol):
    """Reading Kafka: the settings (topic names, groups) and where the cluster is."""

    @property
    def settings(self) -> Settings: ...
    @property
    def bootstrap(self) -> str: ...
    @property
    def kafka_security(self) -> dict[str, Any]: ...


class Producing(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def producer(self) -> AIOKafkaProducer: ...


class Auditing(Protocol):
    """Writing audit records (they go through the audit topic to the indexer)."""

    def audit_record(self, kind: str, **fields: Any) -> dict[str, Any]: ...
    async def emit_audit(self, records: list[dict[str, Any]], producer: AIOKafkaProducer | None = None) -> None: ...


class Protected(Protocol):
    """The keystore at the edge of Kafka: events protected on the way in, revealed on the way out."""

    @property
    def keys(self) -> KeyStore: ...
    def protect(self, event: dict[str, Any]) -> dict[str, Any]: ...
    def reveal(self, protected: dict[str, Any]) -> Any: ...


class Sealing(Protocol):
    """Sealing released views to subscribers, and which subscribers cannot be sealed to now."""

    @property
    def protocol(self) -> SharingProtocol: ...
    @property
    def mask_key(self) -> bytes: ...
    @property
    def subscriber_faults(self) -> dict[str, str]: ...
    def seal_for(self, subscriber: str, released: dict[str, Any]) -> bytes: ...
    def consent_for(self, subject: str) -> ConsentState | None: ...
    def consent_for_many(self, subjects: Iterable[str]) -> dict[str, ConsentState | None]: ...


# --- the registers, one member each -----------------------------------------------------------------------------


class HasDelivered(Protocol):
    @property
    def delivered(self) -> DeliveredLog: ...


class HasCursors(Protocol):
    @property
    def cursors(self) -> CursorStore: ...


class HasFirstServed(Protocol):
    @property
    def first_served(self) -> FirstServed: ...


class HasConsent(Protocol):
    @property
    def consent(self) -> ConsentRegister: ...


class HasCases(Protocol):
    @property
    def cases(self) -> CaseRegister: ...


class HasIdentities(Protocol):
    @property
    def identities(self) -> IdentityRegister: ...


class HasErasures(Protocol):
    @property
    def erasures(self) -> ErasureRegister: ...


class HasHeld(Protocol):
    @property
    def held(self) -> HeldDeliveries: ...


class HasReferrals(Protocol):
    @property
    def referrals(self) -> ReferralRegister: ...


class HasDeterminations(Protocol):
    @property
    def determinations(self) -> DeterminationRegister: ...


class HasAuditStore(Protocol):
    @property
    def audit_store(self) -> AuditStore: ...


class HasMetrics(Protocol):
    @property
    def metrics(self) -> Metrics: ...


class HasLinkage(Protocol):
    @property
    def linkage(self) -> LinkageKey: ...


# --- what each module is given ----------------------------------------------------------------------------------


class IndexerPorts(KafkaReads, HasAuditStore, HasMetrics, Protocol):
    """broker/service/audit_indexer.py: reads the audit topic into the audit store."""


class FactsPorts(Auditing, HasCases, HasIdentities, HasDeterminations, Protocol):
    """broker/service/facts.py: the register facts a decision reads (and the s47(9) requests a closed case ends)."""

    @property
    def keys(self) -> KeyStore: ...
    @property
    def protocol(self) -> SharingProtocol: ...


class DeterminationPorts(Auditing, HasAuditStore, HasErasures, HasIdentities, HasDeterminations, Protocol):
    """broker/service/determinations.py: s47(9) requests and adult-at-risk determinations."""

    @property
    def protocol(self) -> SharingProtocol: ...


class ErasurePorts(Producing, Auditing, HasAuditStore, HasDelivered, HasErasures, HasMetrics, Protocol):
    """broker/service/erasure.py: a child's erasure, and the person.erased notices to past recipients."""

    @property
    def keys(self) -> KeyStore: ...
    @property
    def protocol(self) -> SharingProtocol: ...
    def seal_for(self, subscriber: str, released: dict[str, Any]) -> bytes: ...


class IntakePorts(Producing, Auditing, Protected, HasAuditStore, HasConsent, HasIdentities, HasErasures,
                  HasMetrics, HasLinkage, HasCases, HasDeterminations, Protocol):
    """broker/service/intake.py: native records in, protected events and dead letters out."""

    @property
    def protocol(self) -> SharingProtocol: ...
    @property
    def adapter_settings(self) -> AdapterSettings: ...
    def seal_deadletter_input(self, data: bytes, content_sha256: str) -> str: ...


class ReprocessPorts(IntakePorts, KafkaReads, Protocol):
    """broker/service/reprocess.py: a dead letter read back and ingested again."""

    def open_deadletter_input(self, sealed: str, content_sha256: str) -> bytes: ...


class DecisionPorts(KafkaReads, Producing, Auditing, Protected, Sealing, HasDelivered, HasErasures, HasHeld,
                    HasReferrals, HasCases, HasIdentities, HasDeterminations, Protocol):
    """broker/service/decisions.py: a human decision recorded and the decided share sent."""


class HeldPorts(DecisionPorts, Protocol):
    """broker/service/held.py: held deliveries released when their subscriber's key loads again."""

    @property
    def held_recheck_seconds(self) -> float: ...
    def check_subscriber_keys(self, *, warn: bool = False) -> dict[str, str]: ...


class SharePorts(DecisionPorts, HasMetrics, HasAuditStore, Protocol):
    """broker/service/share.py: events decided, sealed and delivered, in Kafka transactions where granted."""

    kafka_transactions: bool | None  # written: found once by the first share worker

    def seal_deadletter_input(self, data: bytes, content_sha256: str) -> str: ...


class ServingPorts(KafkaReads, Auditing, HasCursors, HasFirstServed, HasMetrics, Protocol):
    """broker/api/subscribers.py: deliveries served to subscribers over HTTP."""

    @property
    def protocol(self) -> SharingProtocol: ...
    @property
    def cursor_codec(self) -> CursorCodec: ...
    @property
    def delivery_reader(self) -> DeliveryReader: ...


# --- what each HTTP router is given (broker/api/*.py) -----------------------------------------------------------


class AdminPorts(ReprocessPorts, ErasurePorts, Protocol):
    """broker/api/admin.py: erasure, key shredding, dead letters reprocessed."""


class ConsentReviewPorts(Auditing, HasConsent, Protocol):
    """broker/api/consent_review.py: the first consent register's records, for IG review."""


class DecidingPorts(DecisionPorts, DeterminationPorts, Protocol):
    """broker/api/decisions.py: human decisions, s47(9) requests, adult-at-risk determinations."""


class IgPolicyPorts(HasAuditStore, Protocol):
    """broker/api/ig_policy.py: the protocol in force and its history, for IG."""

    @property
    def protocol(self) -> SharingProtocol: ...


class HealthPorts(KafkaReads, HasHeld, HasMetrics, Protocol):
    """broker/api/health.py: readiness and metrics."""

    @property
    def protocol(self) -> SharingProtocol: ...
    @property
    def embedded(self) -> EmbeddedKafka | None: ...
    @property
    def epoch_state(self) -> EpochState: ...
    @property
    def subscriber_faults(self) -> dict[str, str]: ...
    def required_topics(self) -> list[str]: ...
    def stores_status(self) -> str: ...
    def workers_alive(self) -> bool: ...
