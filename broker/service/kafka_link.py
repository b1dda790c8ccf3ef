"""Which Kafka this process uses: the cluster at KAFKA_BOOTSTRAP_SERVERS, or one it starts itself.

Without KAFKA_BOOTSTRAP_SERVERS, Apache Kafka (durable, under <data_dir>/kafka) where Java 17+ and its jars are to
hand, else the embedded Tansu (memory only); MASH_LOCAL_KAFKA=apache|tansu insists on one (auto: the default).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from broker.config import Settings
from broker.errors import BrokerError
from broker.kafka.apache import KAFKA_VERSION, LOCAL_KAFKA_ENV, ApacheKafka, KafkaUnavailable, local_kafka_choice
from broker.kafka.embedded import EmbeddedKafka, free_port
from broker.kafka.security import kafka_client_options
from broker.logging import get_logger

log = get_logger("mash.runtime")


class StartupFailed(BrokerError, RuntimeError):
    """The service could not start (keys, protocol, Kafka): reported in one plain line, exit status 2."""


@dataclass(frozen=True, kw_only=True, eq=False)
class KafkaLink:
    bootstrap: str
    security: dict[str, Any] = field(default_factory=dict)  # TLS/SASL options for every client; none on loopback
    embedded: EmbeddedKafka | None = None  # the embedded Tansu this process started, if it did
    local_kafka: ApacheKafka | None = None  # the durable single Apache Kafka node this process started, if it did
    local_kafka_note: str = ""  # why the embedded Tansu runs instead of Apache Kafka, when it does

    @property
    def in_use(self) -> str:
        """Which Kafka, in words (the start line and /readyz, which is public: no addresses, paths or credentials)."""
        if self.local_kafka is not None:
            return f"Apache Kafka {KAFKA_VERSION}, a durable single node in the data directory (kafka/)"
        if self.embedded is not None:
            return "the embedded Tansu (memory only, for development)"
        return "the cluster at KAFKA_BOOTSTRAP_SERVERS"

    async def close(self) -> None:
        """Stops the Kafka this process started (an external cluster is left alone)."""
        if self.embedded is not None:
            self.embedded.stop()
            log.info("embedded_kafka_stopped")
        if self.local_kafka is not None:
            forced = await self.local_kafka.astop()
            log.info("local_kafka_stopped", forced=forced)


async def open_kafka(settings: Settings) -> KafkaLink:
    if settings.kafka_bootstrap_servers:
        return KafkaLink(bootstrap=settings.kafka_bootstrap_servers, security=kafka_client_options(settings))
    choice = local_kafka_choice(os.environ.get(LOCAL_KAFKA_ENV))
    note = ""
    if choice != "tansu":
        try:
            local = await ApacheKafka(nodes=1, data_dir=settings.data_dir / "kafka", wait_for_previous=30.0,
                                      broker_port=settings.local_kafka_port).astart()
        except KafkaUnavailable as exc:
            if choice == "apache":
                raise StartupFailed(f"Apache Kafka (MASH_LOCAL_KAFKA=apache) unavailable: {exc}") from None
            note = str(exc)
        else:
            log.info("local_kafka_started", kind="apache", version=KAFKA_VERSION, bootstrap=local.bootstrap_servers)
            return KafkaLink(bootstrap=local.bootstrap_servers, local_kafka=local)
    embedded = EmbeddedKafka(port=settings.local_kafka_port or free_port()).start()
    log.info("embedded_kafka_started", bootstrap=embedded.bootstrap_servers, pid=embedded.pid)
    return KafkaLink(bootstrap=embedded.bootstrap_servers, embedded=embedded, local_kafka_note=note)
