"""Everything a running broker holds: Kafka (embedded or external), keys, protocol, stores, metrics, audit emitter.

Started once per process by `mash-broker run` / `mash-broker worker`; the HTTP app and the share workers use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from adapters.kit.registry import AGENCIES
from broker.api.auth import ApiKeyStore
from broker.audit import audit_record as build_audit_record
from broker.config import Settings
from broker.crypto import open_key_provider, protect_blob, protect_event, reveal_blob, reveal_event
from broker.kafka.admin import ensure_topics
from broker.kafka.clients import producer
from broker.kafka.embedded import EmbeddedKafka
from broker.logging import get_logger
from broker.pipeline.identify import LinkageKey
from broker.policy import Protocol, load_protocol
from broker.secrets import linkage_key, mask_key
from broker.service.delivery import DeliveryReader
from broker.service.messages import encode
from broker.service.metrics import Metrics
from broker.stores.cursors import CursorStore
from broker.stores.delivered import DeliveredLog

log = get_logger("mash.runtime")


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.embedded: EmbeddedKafka | None = None
        self.bootstrap = settings.kafka_bootstrap_servers or ""
        self.producer: AIOKafkaProducer | None = None
        self.linkage: LinkageKey | None = None
        self.protocol: Protocol | None = None
        self.keys: Any = None
        self.api_keys = ApiKeyStore(settings.data_dir / "api-keys.json")
        self.delivered: DeliveredLog | None = None
        self.cursors: CursorStore | None = None
        self.delivery_reader: DeliveryReader | None = None
        self.mask_key = b""
        self.stop_event = asyncio.Event()
        self.tasks: list[asyncio.Task[Any]] = []

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    async def start(self) -> Runtime:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.linkage = linkage_key(s.data_dir, s.linkage_key_version, create=s.dev_mode)
        self.mask_key = mask_key(s.data_dir, create=s.dev_mode)
        self.keys = open_key_provider(s.data_dir, create=s.dev_mode)
        self.protocol = load_protocol(s.protocol_file)
        if s.dev_mode:
            self._dev_credentials()
        if not self.bootstrap:
            self.embedded = EmbeddedKafka().start()
            self.bootstrap = self.embedded.bootstrap_servers
            log.info("embedded_kafka_started", bootstrap=self.bootstrap, pid=self.embedded.pid)
        created = await ensure_topics(self.bootstrap, self._topic_plan())
        log.info("topics_ready", created=created)
        self.producer = producer(self.bootstrap)
        await self.producer.start()
        self.delivered = DeliveredLog(s.data_dir / "delivered.sqlite")
        self.cursors = CursorStore(s.data_dir / "cursors.sqlite")
        self.delivery_reader = DeliveryReader(self.bootstrap)
        return self

    def _dev_credentials(self) -> None:
        """make run: one API key per role and scope, written once to <data_dir>/dev-credentials.json (0600)."""
        path = self.settings.data_dir / "dev-credentials.json"
        if path.exists() or self.api_keys.principals():
            return
        wanted = [("intake", a) for a in AGENCIES] + [("subscriber", n) for n in self.protocol.subscribers]
        wanted += [("ig_auditor", None), ("admin", None)]
        creds = {}
        for role, scope in wanted:
            key, principal = self.api_keys.create(role, scope)
            creds[principal.actor] = key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(creds, f, indent=1)
        log.info("dev_credentials_written", path=str(path))

    def _topic_plan(self) -> list[tuple[str, int]]:
        s, topics = self.settings, self.settings.topics
        plan = [(topics.events, s.event_partitions), (topics.deadletter, 1), (topics.audit, 1)]
        return plan + [(topics.deliver(name), 1) for name in self.protocol.subscribers]

    def required_topics(self) -> list[str]:
        return [name for name, _ in self._topic_plan()]

    def start_workers(self, share_workers: int = 1) -> None:
        from broker.service.share import run_share_worker

        for i in range(share_workers):
            self.tasks.append(asyncio.create_task(run_share_worker(self, self.stop_event, f"share-{i}")))

    def workers_alive(self) -> bool:
        return all(not t.done() for t in self.tasks)

    def stores_status(self) -> str:
        try:
            assert self.delivered is not None and self.cursors is not None
            self.delivered.db.execute("SELECT 1").fetchone()
            self.cursors.db.execute("SELECT 1").fetchone()
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
        for store in (self.delivered, self.cursors):
            if store is not None:
                store.close()
        if self.embedded is not None:
            self.embedded.stop()
            log.info("embedded_kafka_stopped")

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
        return build_audit_record(kind, **{k: v for k, v in fields.items() if v is not None})

    async def emit_audit(self, records: list[dict[str, Any]]) -> None:
        """Audit records go to the audit topic; the indexer chains them into the audit store."""
        assert self.producer is not None
        sends = [await self.producer.send(self.settings.topics.audit, encode(r)) for r in records]
        await asyncio.gather(*sends)
