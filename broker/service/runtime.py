"""Everything a running broker holds: Kafka (embedded or external), keys, protocol, stores, metrics, audit emitter.

Started once per process by `mash-broker run` / `mash-broker worker`; the HTTP app and the share workers use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from adapters.kit.interface import DEFAULT_SETTINGS
from adapters.kit.registry import AGENCIES
from broker.access.apikeys import ApiKeyStore
from broker.adapter_settings import AdapterSettingsError, adapter_settings
from broker.audit import audit_record as build_audit_record
from broker.audit.store import AuditStore, open_audit_store
from broker.clock import now_iso
from broker.config import Settings
from broker.crypto import CryptoError, open_key_provider, protect_blob, protect_event, reveal_blob, reveal_event
from broker.crypto.hpke_keys import generate_subscriber_keypair
from broker.crypto.seal import DeliverySealer
from broker.errors import BrokerError
from broker.kafka.admin import ensure_topics
from broker.kafka.apache import KAFKA_VERSION, LOCAL_KAFKA_ENV, ApacheKafka, KafkaUnavailable, local_kafka_choice
from broker.kafka.clients import producer
from broker.kafka.embedded import EmbeddedKafka
from broker.kafka.security import kafka_client_options
from broker.kafka.topology import TopicSpec, topic_plan
from broker.logging import get_logger
from broker.pipeline.identify import LinkageKey
from broker.policy import ConsentState, PolicyError, Protocol, ProtocolError, key_problems, load_protocol
from broker.policy.keys import decode_key
from broker.secrets import SecretError, linkage_key, mask_key, write_secret_file
from broker.service.delivery import CursorCodec, DeliveryReader, cursor_key
from broker.service.epoch import EpochState, epoch_topic, reconcile_kafka_epoch
from broker.service.messages import encode
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
from broker.stores.migrate import sqlite_registers
from broker.stores.registry import REGISTERS
from broker.stores.served import FirstServed

log = get_logger("mash.runtime")
AUDIT_CHUNK = 200  # records per audit message: well under Kafka's default 1 MB message limit


class StartupFailed(BrokerError, RuntimeError):
    """The service could not start (keys, protocol, Kafka): reported in one plain line, exit status 2."""


# What a misconfigured start raises: missing or unsafe keys, an invalid protocol, an unusable KMS, bad settings.
STARTUP_ERRORS = (SecretError, ProtocolError, PolicyError, CryptoError, OSError, StartupFailed)


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.embedded: EmbeddedKafka | None = None
        self.local_kafka: ApacheKafka | None = None  # make run on Java 17+: a durable node under <data_dir>/kafka
        self.local_kafka_note = ""  # why the embedded Tansu runs instead of Apache Kafka, when it does
        self.bootstrap = settings.kafka_bootstrap_servers or ""
        self.producer: AIOKafkaProducer | None = None
        self.linkage: LinkageKey | None = None
        self.protocol: Protocol | None = None
        self.keys: Any = None
        self.api_keys = ApiKeyStore(settings.data_dir / "api-keys.json")
        self.delivered: DeliveredLog | None = None
        self.audit_store: AuditStore | None = None
        self.cursors: CursorStore | None = None
        self.first_served: FirstServed | None = None
        self.consent: ConsentRegister | None = None
        self.cases: CaseRegister | None = None
        self.identities: IdentityRegister | None = None
        self.erasures: ErasureRegister | None = None
        self.held: HeldDeliveries | None = None
        self.referrals: ReferralRegister | None = None  # shares waiting for a recorded human decision
        self.determinations: DeterminationRegister | None = None  # s47(9) requests, adult-at-risk determinations
        self.epoch_state: EpochState | None = None  # what the start found of Kafka (broker/service/epoch.py)
        # Whether the cluster grants transactional producers: found once by the first share worker (share.py)
        self.kafka_transactions: bool | None = None
        self.cursor_codec: CursorCodec | None = None
        self.subscriber_faults: dict[str, str] = {}  # subscriber -> why it cannot be sealed to now
        self.held_recheck_seconds = 2.0  # how often held deliveries' subscriber keys are tried again
        self._sealers: dict[str, DeliverySealer] = {}
        self.delivery_reader: DeliveryReader | None = None
        self.mask_key = b""
        self.adapter_settings = DEFAULT_SETTINGS  # read from Settings once, in load_local
        self.stop_event = asyncio.Event()
        self.tasks: list[asyncio.Task[Any]] = []
        self._pending_audit: list[dict[str, Any]] = []

    @property
    def kafka_security(self) -> dict[str, Any]:
        """TLS/SASL options for every client; the embedded broker is plain loopback."""
        local = self.embedded is not None or self.local_kafka is not None
        return {} if local else kafka_client_options(self.settings)

    @property
    def kafka_in_use(self) -> str:
        """Which Kafka this process uses, in words (the start line and /readyz, which is public: no addresses, paths
        or credentials)."""
        if self.local_kafka is not None:
            return f"Apache Kafka {KAFKA_VERSION}, a durable single node in the data directory (kafka/)"
        if self.embedded is not None:
            return "the embedded Tansu (memory only, for development)"
        return "the cluster at KAFKA_BOOTSTRAP_SERVERS"

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def load_local(self) -> Runtime:
        """Keys, protocol and development credentials: everything that can fail before Kafka is touched, so that a
        misconfiguration is reported in one plain line (STARTUP_ERRORS) instead of a server traceback."""
        if self.protocol is not None:
            return self
        s = self.settings
        if s.store_url and (left := sqlite_registers(s.data_dir)):
            raise StartupFailed(f"MASH_STORE_URL is set but {', '.join(left)} in {s.data_dir} still hold registers "
                                "(consent, delivered log...): run `mash-broker stores migrate` first")
        if s.oidc_issuer and not s.oidc_audience:
            raise StartupFailed("MASH_OIDC_ISSUER is set without MASH_OIDC_AUDIENCE: tokens issued for any other "
                                "application would be accepted")
        s.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # keys, registers, audit: the owner's only
        self.linkage = linkage_key(s.data_dir, s.linkage_key_version, create=s.dev_mode)
        self.mask_key = mask_key(s.data_dir, create=s.dev_mode)
        try:
            self.adapter_settings = adapter_settings(s)
        except AdapterSettingsError as exc:
            raise StartupFailed(str(exc)) from None
        self.keys = open_key_provider(s.data_dir, create=s.dev_mode, on_unwrap=self._on_unwrap)
        self.protocol = load_protocol(s.protocol_file)
        if s.dev_mode:
            self._dev_credentials()
            self._dev_subscriber_keys()
        return self

    async def start(self) -> Runtime:
        s = self.settings
        self.load_local()
        if not self.bootstrap:
            await self._start_local_kafka()
        created = await ensure_topics(self.bootstrap, self._topic_plan(), s.kafka_replication_factor,
                                      **self.kafka_security)
        log.info("topics_ready", created=created)
        self.producer = producer(self.bootstrap, **self.kafka_security)
        await self.producer.start()
        self.open_registers()
        self.audit_store = open_audit_store(s.data_dir, s.audit_url, create_key=True)
        # Does Kafka still hold what the registers point at? If not, say so and clear those positions.
        self.epoch_state = await reconcile_kafka_epoch(self, created)
        self.cursor_codec = CursorCodec(cursor_key(self.mask_key), self.epoch_state.epoch)
        self.delivery_reader = DeliveryReader(self.bootstrap, self.kafka_security)
        self.check_subscriber_keys(warn=True)
        await self._record_protocol_in_force()
        return self

    async def _start_local_kafka(self) -> None:
        """No KAFKA_BOOTSTRAP_SERVERS: Apache Kafka (durable, under <data_dir>/kafka) where Java 17+ and its jars are
        to hand, else the embedded Tansu; MASH_LOCAL_KAFKA=apache|tansu insists on one (auto: the default)."""
        choice = local_kafka_choice(os.environ.get(LOCAL_KAFKA_ENV))
        if choice != "tansu":
            try:
                self.local_kafka = await ApacheKafka(nodes=1, data_dir=self.data_dir / "kafka",
                                                     wait_for_previous=30.0).astart()
            except KafkaUnavailable as exc:
                if choice == "apache":
                    raise StartupFailed(f"Apache Kafka (MASH_LOCAL_KAFKA=apache) unavailable: {exc}") from None
                self.local_kafka_note = str(exc)
            else:
                self.bootstrap = self.local_kafka.bootstrap_servers
                log.info("local_kafka_started", kind="apache", version=KAFKA_VERSION, bootstrap=self.bootstrap)
                return
        self.embedded = EmbeddedKafka().start()
        self.bootstrap = self.embedded.bootstrap_servers
        log.info("embedded_kafka_started", bootstrap=self.bootstrap, pid=self.embedded.pid)

    async def _record_protocol_in_force(self) -> None:
        """A protocol_change audit record when the protocol in force differs from the last one recorded."""
        p = self.protocol
        assert p is not None and self.audit_store is not None  # loaded by start() before this runs
        history = self.audit_store.protocol_history()
        last = history[-1]["record"] if history else None
        digest = hashlib.sha256(self.settings.protocol_file.read_bytes()).hexdigest()
        if last and (last.get("protocol_id"), last.get("protocol_version"), last.get("content_sha256")) == \
                (p.id, p.version, digest):
            return
        await self.emit_audit([self.audit_record(
            "protocol_change", time=now_iso(), actor="runtime", protocol_id=p.id, protocol_version=p.version,
            previous_version=last.get("protocol_version") if last else None, content_sha256=digest,
            record_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"protocol:{p.id}:{p.version}:{digest}:"
                                     f"{last.get('record_id') if last else ''}")))])

    def _dev_credentials(self) -> None:
        """make run: one API key per role and scope, written once to <data_dir>/dev-credentials.json (0600)."""
        path = self.settings.data_dir / "dev-credentials.json"
        if path.exists() or self.api_keys.principals():
            return
        assert self.protocol is not None  # loaded by start() before this runs
        wanted: list[tuple[str, str | None]] = [("intake", a) for a in AGENCIES]
        wanted += [("subscriber", n) for n in self.protocol.subscribers]
        wanted += [("ig_auditor", None), ("admin", None)] + [("decision_maker", p) for p in self.protocol.partners]
        creds = {}
        for role, scope in wanted:
            key, principal = self.api_keys.create(role, scope)
            creds[principal.grant] = key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(creds, f, indent=1)
        log.info("dev_credentials_written", path=str(path))

    def _dev_subscriber_keys(self) -> None:
        """make run: every subscriber that reads its public key from a file gets a development key pair in the data
        directory (<data_dir>/subscriber-keys/<name>.key for the development subscriber client, <name>.pub), made
        once, and the protocol in force points at that .pub. The protocol file and the key files beside it are never
        written: two data directories started from one protocol (two developers, parallel tests) each keep their own
        keys instead of overwriting each other's, and a real key beside the protocol is never replaced."""
        assert self.protocol is not None  # loaded by start() before this runs
        keys_dir = self.settings.data_dir / "subscriber-keys"
        redirected = {}
        for sub in self.protocol.subscribers.values():
            if sub.key_file is None:  # an inline public key: the protocol's own
                continue
            private_file, public_file = keys_dir / f"{sub.name}.key", keys_dir / f"{sub.name}.pub"
            usable = private_file.exists() and public_file.exists() and \
                decode_key(public_file.read_bytes(), sub.key_suite) is not None
            if not usable:
                private, public_b64 = generate_subscriber_keypair(sub.key_suite)
                private_file.unlink(missing_ok=True)
                write_secret_file(private_file, private)
                public_file.write_text(public_b64 + "\n")
                log.info("dev_subscriber_key_generated", subscriber=sub.name)
            redirected[sub.name] = dataclasses.replace(sub, key_file=public_file)
        if redirected:
            self.protocol = dataclasses.replace(self.protocol,
                                                subscribers={**self.protocol.subscribers, **redirected})

    def seal_for(self, subscriber: str, released: dict[str, Any]) -> bytes:
        """The released view sealed to the subscriber's public key (fails, never plaintext, without one)."""
        sealer = self._sealers.get(subscriber)
        if sealer is None:
            assert self.protocol is not None  # loaded by start()
            sub = self.protocol.subscribers[subscriber]
            sealer = self._sealers[subscriber] = DeliverySealer(subscriber, sub.public_key(), sub.key_suite)
        return sealer.seal(released)

    def check_subscriber_keys(self, *, warn: bool = False) -> dict[str, str]:
        """Which subscribers cannot be sealed to now, and why (one plain warning line each with `warn`): their
        deliveries are held (broker/service/held.py) and /readyz names them as degraded."""
        assert self.protocol is not None  # loaded by start()
        faults: dict[str, str] = {}
        for sub in self.protocol.subscribers.values():
            if problems := key_problems([sub]):
                faults[sub.name] = problems[0]
                if warn:
                    log.warning("subscriber_key_unusable", subscriber=sub.name, detail=problems[0] +
                                ": its deliveries are held until the key loads; the other subscribers are unaffected")
        self.subscriber_faults = faults
        return faults

    def consent_for(self, subject: str) -> ConsentState | None:
        return self.consent.get(subject) if self.consent is not None else None

    def _topic_plan(self) -> list[TopicSpec]:
        """The layout's topics for this protocol (broker/kafka/topology.py: names, partitions, retention)."""
        s = self.settings
        assert self.protocol is not None  # loaded by start()
        return topic_plan(s.topic_prefix, s.event_partitions, self.protocol.subscribers)

    def required_topics(self) -> list[str]:
        return [t.name for t in self._topic_plan()] + [epoch_topic(self.settings.topic_prefix)]

    def start_workers(self, share_workers: int = 1, audit_indexer: bool = True) -> None:
        from broker.service.audit_indexer import run_audit_indexer
        from broker.service.held import run_held_release
        from broker.service.share import run_share_worker

        for i in range(share_workers):
            self.tasks.append(asyncio.create_task(run_share_worker(self, self.stop_event, f"share-{i}")))
        if share_workers:  # one per process: releases what a subscriber's unusable key held back
            self.tasks.append(asyncio.create_task(run_held_release(self, self.stop_event)))
        if audit_indexer:  # a consumer-group member: of all the processes that run one, one indexes at a time
            self.tasks.append(asyncio.create_task(run_audit_indexer(self, self.stop_event)))
        if share_workers:  # publishes the person.erased notices a CLI shred left owed (it has no Kafka producer)
            from broker.service.erasure import run_erasure_notices

            self.tasks.append(asyncio.create_task(run_erasure_notices(self, self.stop_event)))

    def workers_alive(self) -> bool:
        return all(not t.done() for t in self.tasks)

    def open_registers(self) -> None:
        """Every register of broker/stores/registry.py's REGISTERS, each as its attribute (rt.cases, rt.identities...):
        PostgreSQL shared by every pod (MASH_STORE_URL), else SQLite files in the data directory."""
        for spec in REGISTERS:
            setattr(self, spec.attr, spec.open(self.settings.data_dir, self.settings.store_url))

    def _registers(self) -> list[Any]:
        """The registers that are open (every one of broker/stores/registry.py's REGISTERS once `start` has run)."""
        return [r for spec in REGISTERS if (r := getattr(self, spec.attr)) is not None]

    def stores_status(self) -> str:
        try:
            registers = self._registers()
            assert len(registers) == len(REGISTERS), "registers not open"
            for register in registers:
                register.db.query("SELECT 1")
        except Exception as exc:
            return f"unavailable ({type(exc).__name__})"
        return "ok"

    async def stop(self) -> None:
        self.stop_event.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), timeout=5)
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.delivery_reader is not None:
            with contextlib.suppress(Exception):
                await self.delivery_reader.close()
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.stop()
        for store in (*self._registers(), self.audit_store):
            if store is not None:
                store.close()
        if self.embedded is not None:
            self.embedded.stop()
            log.info("embedded_kafka_stopped")
        if self.local_kafka is not None:
            forced = await self.local_kafka.astop()
            log.info("local_kafka_stopped", forced=forced)

    # --- crypto at the edge of Kafka -------------------------------------------------------------------------
    def protect(self, event: dict[str, Any]) -> dict[str, Any]:
        return protect_event(event, self.keys)

    def reveal(self, protected: dict[str, Any]) -> Any:
        return reveal_event(protected, self.keys)

    def seal_deadletter_input(self, data: bytes, content_sha256: str) -> str:
        return protect_blob(data, f"deadletter:{content_sha256}", self.keys)

    def open_deadletter_input(self, sealed: str, content_sha256: str) -> bytes:
        return reveal_blob(sealed, f"deadletter:{content_sha256}", self.keys)

    # --- audit -----------------------------------------------------------------------------------------------
    def audit_record(self, kind: str, **fields: Any) -> dict[str, Any]:
        return build_audit_record(kind, **fields)  # it leaves out fields set to None

    def _on_unwrap(self, key_id: str, scope: str, reason: str) -> None:
        """Every KMS unwrap is counted and audit-logged with the event that needed it (sent with the next batch)."""
        self.metrics.key_unwraps.inc()
        event_id = reason.removeprefix("event ") if reason.startswith("event ") else None
        self._pending_audit.append(self.audit_record(
            "key_unwrap", time=now_iso(), actor="keystore", key_id=key_id,
            subject=scope if scope.startswith("lt") else None, event_id=event_id,
            target=None if scope.startswith("lt") else scope.split(":", 1)[0]))

    async def emit_audit(self, records: list[dict[str, Any]], producer: AIOKafkaProducer | None = None) -> None:
        """Audit records go to the audit topic, one message per call (a JSON array: one produce, not one per record);
        the indexer chains them into the audit store. A share worker passes its transactional producer: the audit
        of a batch is committed, or aborted, with the batch."""
        out = producer or self.producer
        assert out is not None
        records, self._pending_audit = [*self._pending_audit, *records], []
        sends = [await out.send(self.settings.topics.audit, encode(records[i:i + AUDIT_CHUNK]))
                 for i in range(0, len(records), AUDIT_CHUNK)]
        await asyncio.gather(*sends)
