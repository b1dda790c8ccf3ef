"""Doctor checks for the delivery edge: subscriber public keys, held deliveries, and whether Kafka still holds what
the registers remember (the Kafka epoch, broker/service/epoch.py). They read the registers without creating or
changing anything, and never print a secret, a path inside a key or a record."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from broker.config import Settings
from broker.kafka.security import kafka_client_options
from broker.ops.checks import CheckResult
from broker.stores.cursors import CursorStore
from broker.stores.delivered import DeliveredLog
from broker.stores.held import HeldDeliveries


def _query(settings: Settings, file: str, sql: str) -> list[tuple[Any, ...]] | None:
    """Rows from a register, read only (None: the register or its table does not exist yet)."""
    try:
        if settings.store_url:
            import psycopg

            with psycopg.connect(settings.store_url, connect_timeout=5) as pg:
                return [tuple(r) for r in pg.execute(sql).fetchall()]
        path = settings.data_dir / file
        if not path.is_file():
            return None
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
        finally:
            conn.close()
    except Exception:  # a missing table, an unreachable database: the registers check names the latter
        return None


def check_subscriber_keys(settings: Settings, protocol: Any | None) -> CheckResult:
    """Every subscriber's public key loads; a subscriber whose key does not has its deliveries held (the others are
    unaffected), so it is a warning: the service runs, that subscriber receives nothing until the key is fixed."""
    from broker.policy import key_problems

    if protocol is None:
        return CheckResult("subscriber keys", "info", "not checked: the protocol could not be read")
    if settings.dev_mode:
        return CheckResult("subscriber keys", "info", f"dev mode: development key pairs are made in "
                           f"{settings.data_dir / 'subscriber-keys'} at start")
    problems = key_problems(list(protocol.subscribers.values()))
    if problems:
        return CheckResult("subscriber keys", "warning", "; ".join(problems) + ": their deliveries are held until "
                           "the key loads (issue the key with `mash-broker keys generate-subscriber-key`)")
    return CheckResult("subscriber keys", "ok", f"all {len(protocol.subscribers)} subscriber public keys load")


def check_held_deliveries(settings: Settings) -> CheckResult:
    rows = _query(settings, HeldDeliveries.FILE, "SELECT subscriber, COUNT(*) FROM held GROUP BY subscriber")
    if not rows:
        return CheckResult("held deliveries", "ok", "none")
    named = ", ".join(f"{s}: {n}" for s, n in sorted(rows))
    return CheckResult("held deliveries", "warning", f"held until the subscriber's key loads ({named}); the running "
                       "service releases them within seconds of the key being fixed")


async def check_kafka_epoch(settings: Settings, kafka_reached: bool) -> CheckResult:
    """Does Kafka still hold the marker of the epoch the registers remember? If not, the next start clears the
    delivered log, acknowledged cursors, first-served positions and held deliveries (records acknowledged before it
    must be resent)."""
    from broker.service.epoch import markers_on

    epoch = _query(settings, CursorStore.FILE, "SELECT epoch, lost_at FROM kafka_epoch")
    sent = _query(settings, DeliveredLog.FILE, "SELECT COUNT(*) FROM delivered")
    remembered, lost_at = (epoch[0][0], epoch[0][1]) if epoch else (None, None)
    last = f"; the start at {lost_at} found Kafka had lost its topics and reconciled" if lost_at else ""
    if remembered is None:
        return CheckResult("kafka epoch", "info", "no epoch recorded yet: the first start records one")
    if not settings.kafka_bootstrap_servers:
        return CheckResult("kafka epoch", "info" if not lost_at else "warning", "the embedded broker keeps topics in "
                           "memory: every restart loses them, and the start says so and reconciles the registers "
                           f"({sent[0][0] if sent else 0} deliveries remembered){last}")
    if not kafka_reached:
        return CheckResult("kafka epoch", "info", f"not checked: Kafka not reached{last}")
    markers = await markers_on(settings.kafka_bootstrap_servers, settings.topic_prefix,
                               **kafka_client_options(settings))
    if markers is None or remembered not in markers:
        return CheckResult("kafka epoch", "problem", "Kafka does not hold the epoch the registers remember: it has "
                           "lost its topics (or is another cluster); the next start clears the delivered log, "
                           "acknowledged cursors, first-served positions and held deliveries, and records acknowledged "
                           f"before it must be resent by their agencies{last}")
    return CheckResult("kafka epoch", "ok", f"Kafka holds the epoch the registers remember{last}")


def load_protocol_quietly(path: Path) -> Any | None:
    try:
        from broker.policy import load_protocol

        return load_protocol(path)
    except Exception:  # check_protocol reports why
        return None
