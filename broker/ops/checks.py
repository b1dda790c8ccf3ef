"""Health checks for an installation, each returning a CheckResult in plain words; `mash-broker doctor` renders them.

Checks read the environment (files, the Kafka cluster) but never change it, and never print a secret or a record.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from broker.config import Settings
from broker.kafka.security import kafka_client_options
from broker.ops.topology import topic_plan

Status = Literal["ok", "info", "warning", "problem"]
KEY_BYTES = 32
# Files under the data directory that hold secrets besides everything in keys/.
SECRET_FILES = ("api-keys.json", "dev-credentials.json")


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: str
    status: Status
    detail: str

    @property
    def healthy(self) -> bool:
        return self.status != "problem"


@dataclass(frozen=True, slots=True)
class ProtocolFinding:
    result: CheckResult
    subscribers: tuple[str, ...] | None  # None: the protocol could not be read


@dataclass(frozen=True, slots=True)
class KafkaFinding:
    result: CheckResult
    topics: frozenset[str] | None  # None: no cluster was reached (or none is configured)


async def check_kafka(settings: Settings, timeout: float = 5.0) -> KafkaFinding:
    """Can the configured cluster be reached? Unset: the embedded broker will be started by `mash-broker run`."""
    from aiokafka.admin import AIOKafkaAdminClient

    bootstrap = settings.kafka_bootstrap_servers
    if not bootstrap:
        return KafkaFinding(CheckResult(
            "kafka", "info", "KAFKA_BOOTSTRAP_SERVERS is not set: `mash-broker run` will start the embedded broker "
            "(memory only, for development); set it to use a real cluster"), None)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="mash-broker-doctor",
                                request_timeout_ms=int(timeout * 1000), **kafka_client_options(settings))
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
            topics = frozenset(await admin.list_topics())
    except Exception as exc:
        return KafkaFinding(CheckResult(
            "kafka", "problem", f"cannot reach Kafka at {bootstrap} ({type(exc).__name__}): check "
            "KAFKA_BOOTSTRAP_SERVERS, the network and the TLS/SASL settings"), None)
    finally:
        await admin.close()
    return KafkaFinding(CheckResult("kafka", "ok", f"reached {bootstrap} ({len(topics)} topics)"), topics)


# --- what kind of Kafka, whether it has transactions, how durable each topic is ----------------------------------
EMBEDDED_CLUSTER_ID = "mash-broker-embedded"  # broker/kafka/embedded.py names its cluster so


def kafka_kind(api_versions: dict[int, tuple[int, int]], cluster_id: str | None) -> str:
    """The Kafka's kind and version as far as its ApiVersions answer tells (no broker reports its release): Apache
    Kafka 4 dropped Fetch below v4 and serves Produce v12 and later; 2.8 to 3.9 serve Produce v9 to v11."""
    if cluster_id == EMBEDDED_CLUSTER_ID:
        return "the embedded Tansu broker (memory only, no transactions)"
    produce, fetch = api_versions.get(0, (0, 0)), api_versions.get(1, (0, 0))
    levels = f"Produce v{produce[1]}, Fetch v{fetch[0]}-v{fetch[1]}, {len(api_versions)} APIs"
    if produce[1] >= 12 and fetch[0] >= 4:
        return f"Apache Kafka 4.x or a broker of its API level ({levels})"
    if produce[1] >= 9:
        return f"Apache Kafka 2.8-3.x or a broker of its API level ({levels})"
    return f"an older Kafka or a Kafka-compatible broker ({levels})"


@dataclass(frozen=True, slots=True)
class TopicDurability:
    topic: str
    replication: int  # the fewest replicas of any partition
    min_insync: int | None  # None: the broker does not say (Tansu answers DescribeConfigs with nothing)


def durability_result(rows: Iterable[TopicDurability], wanted_replication: int) -> CheckResult:
    """Each topic's replication factor and min.insync.replicas, against MASH_KAFKA_REPLICATION_FACTOR: with acks=all
    a write is acknowledged once min.insync.replicas replicas have it, so that is the number of node losses (minus
    one) an acknowledged record survives."""
    rows = list(rows)
    if not rows:
        return CheckResult("topic durability", "info", "not checked: none of the broker's topics exist yet")
    text = "; ".join(f"{r.topic}: replication {r.replication}, min.insync.replicas "
                     f"{'not reported' if r.min_insync is None else r.min_insync}" for r in rows)
    thin = [r.topic for r in rows if r.replication < wanted_replication]
    one_copy = [r.topic for r in rows if r.replication > 1 and r.min_insync is not None and r.min_insync < 2]
    if thin:
        return CheckResult("topic durability", "problem", f"fewer replicas than MASH_KAFKA_REPLICATION_FACTOR "
                           f"({wanted_replication}) on {', '.join(thin)}; {text}")
    if one_copy:
        return CheckResult("topic durability", "warning", f"min.insync.replicas 1 on {', '.join(one_copy)}: an "
                           f"acknowledged record may sit on one node only (set 2 with 3 replicas); {text}")
    return CheckResult("topic durability", "ok", text)


async def check_kafka_engine(settings: Settings, present: frozenset[str] | None, subscribers: Iterable[str] | None,
                             timeout: float = 20.0) -> list[CheckResult]:
    """The Kafka's kind and version (ApiVersions, metadata), whether it grants a transactional producer (what
    exactly-once delivery needs: broker/service/share.py), and each broker topic's replication and
    min.insync.replicas (DescribeConfigs). Starting the probe producer registers one transactional id,
    `<share group>.doctor`, under the share workers' ACL prefix; nothing is written to any topic."""
    if present is None:
        return [CheckResult("kafka kind", "info", "not checked: no Kafka cluster reached (unset: `mash-broker run` "
                            "starts the embedded Tansu broker, at-least-once delivery with duplicates dropped)")]
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from broker.kafka.clients import start_transactional

    bootstrap, security = settings.kafka_bootstrap_servers or "", kafka_client_options(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="mash-broker-doctor",
                                request_timeout_ms=int(timeout * 1000), **security)
    required = [t.name for t in topic_plan(settings.topic_prefix, settings.event_partitions, subscribers or ())]
    names = [name for name in required if name in present]
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
            cluster = await admin.describe_cluster()
            node = cluster["brokers"][0]["node_id"]
            versions = dict((await admin._client._get_conn(node))._versions)  # the ApiVersions answer aiokafka keeps
            described = await admin.describe_topics(names) if names else []
            configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names]) \
                if names else []
    except Exception as exc:
        return [CheckResult("kafka kind", "problem", f"could not describe the cluster ({type(exc).__name__})")]
    finally:
        await admin.close()
    isr: dict[str, int | None] = {}
    for response in configs:
        for resource in response.resources:
            entries = {entry[0]: entry[1] for entry in resource[4]}
            isr[resource[3]] = int(entries["min.insync.replicas"]) if "min.insync.replicas" in entries else None
    rows = [TopicDurability(t["topic"], min((len(p["replicas"]) for p in t["partitions"]), default=0),
                            isr.get(t["topic"])) for t in described if not t["error_code"]]
    try:
        out, why = await start_transactional(bootstrap, f"{settings.group('share')}.doctor", **security)
    except Exception as exc:
        out, why = None, f"unreachable: {type(exc).__name__}"
    if out is not None:
        await out.stop()
        transactions = CheckResult("transactions", "ok", "a transactional producer starts: share workers deliver "
                                   "exactly once (one transaction per batch; readers read_committed)")
    else:
        transactions = CheckResult("transactions", "info" if cluster.get("cluster_id") == EMBEDDED_CLUSTER_ID
                                   else "warning", f"refused ({why}): share workers fall back to at-least-once "
                                   "delivery with duplicates dropped by the delivered log; on Apache Kafka grant the "
                                   "broker's principal Write and Describe on TransactionalId prefix "
                                   f"{settings.group('share')}. (deploy/)")
    return [CheckResult("kafka kind", "ok", kafka_kind(versions, cluster.get("cluster_id"))), transactions,
            durability_result(rows, settings.kafka_replication_factor)]


def check_topics(settings: Settings, present: frozenset[str] | None, subscribers: Iterable[str] | None) -> CheckResult:
    """The topics a running deployment needs: the broker's three, plus one delivery topic per protocol subscriber."""
    if present is None:
        return CheckResult("topics", "info", "not checked: no Kafka cluster reached")
    required = [t.name for t in topic_plan(settings.topic_prefix, settings.event_partitions, subscribers or ())]
    missing = [name for name in required if name not in present]
    scope = "" if subscribers is not None else " (delivery topics not checked: the protocol could not be read)"
    if missing:
        return CheckResult("topics", "problem", f"missing: {', '.join(missing)}{scope}; they are created at start "
                           "when the broker's principal may create topics, otherwise create them (deploy/README.md)")
    return CheckResult("topics", "ok", f"all {len(required)} required topics exist{scope}")


def check_data_dir(data_dir: Path) -> CheckResult:
    """The data directory must exist (or be creatable) and be writable by this user."""
    target = data_dir if data_dir.exists() else next((p for p in data_dir.parents if p.exists()), Path("."))
    if data_dir.exists() and not data_dir.is_dir():
        return CheckResult("data dir", "problem", f"{data_dir} exists but is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=target, prefix=".doctor-"):
            pass
    except OSError as exc:
        return CheckResult("data dir", "problem", f"{target} is not writable ({type(exc).__name__}): "
                           "set MASH_DATA_DIR to a writable directory")
    if target != data_dir:
        return CheckResult("data dir", "ok", f"{data_dir} does not exist yet; it will be created in {target}")
    return CheckResult("data dir", "ok", f"{data_dir} is writable")


def secret_files(data_dir: Path) -> list[Path]:
    """Files holding secrets: everything under <data_dir>/keys, *.key files, the API key and dev credential files."""
    keys = data_dir / "keys"
    found = [p for p in keys.rglob("*") if p.is_file()] if keys.is_dir() else []
    found += [p for p in data_dir.glob("*.key") if p.is_file()]
    found += [data_dir / name for name in SECRET_FILES if (data_dir / name).is_file()]
    return sorted(set(found))


def check_secret_permissions(data_dir: Path) -> CheckResult:
    """Key files must be readable by their owner only (0600)."""
    files = secret_files(data_dir)
    loose = [p for p in files if p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO)]
    if loose:
        named = ", ".join(f"{p} (mode {stat.S_IMODE(p.stat().st_mode):04o})" for p in loose)
        return CheckResult("key file permissions", "problem",
                           f"readable by group or others: {named}; fix with chmod 600")
    if not files:
        return CheckResult("key file permissions", "info", f"no key files under {data_dir} (keys may come from "
                           "the environment)")
    return CheckResult("key file permissions", "ok", f"{len(files)} key files, all 0600 or stricter")


def check_data_permissions(data_dir: Path) -> CheckResult:
    """The data directory (0700) and its SQLite stores (0600: tokens, consent, case state, the audit trail) must not
    be readable by group or others. A warning, not a problem: the service runs, but another local user could copy the
    registers; fix with chmod."""
    if not data_dir.is_dir():
        return CheckResult("data permissions", "info", f"{data_dir} does not exist yet: it will be created 0700")
    loose = [data_dir] if data_dir.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO) else []
    stores = sorted(p for pattern in ("*.sqlite", "*.sqlite-wal", "*.sqlite-shm") for p in data_dir.glob(pattern))
    loose += [p for p in stores if p.is_file() and p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO)]
    if loose:
        named = ", ".join(f"{p} (mode {stat.S_IMODE(p.stat().st_mode):04o})" for p in loose)
        return CheckResult("data permissions", "warning", f"open to group or others: {named}; fix with "
                           f"chmod 700 {data_dir} and chmod 600 on the store files")
    return CheckResult("data permissions", "ok", f"{data_dir} is 0700 or stricter and its {len(stores)} store "
                       "files 0600 or stricter")


def _protocol_loader() -> Callable[[Path], Any] | None:
    """broker.policy.load_protocol if this build has it (imported lazily: doctor must work without it)."""
    try:
        return importlib.import_module("broker.policy").load_protocol
    except ModuleNotFoundError as exc:
        if exc.name in ("broker.policy",):
            return None
        raise
    except AttributeError:
        return None


def subscriber_names(protocol: Any) -> tuple[str, ...]:
    subs = protocol.subscribers
    return tuple(str(getattr(s, "name", s)) for s in (subs.keys() if isinstance(subs, dict) else subs))


def check_protocol(path: Path, loader: Callable[[Path], Any] | None = None) -> ProtocolFinding:
    """The protocol file exists and loads with the share stage's own loader."""
    if not path.is_file():
        return ProtocolFinding(CheckResult("protocol", "problem", f"protocol file {path} does not exist: set "
                                           "MASH_PROTOCOL_FILE"), None)
    loader = loader or _protocol_loader()
    if loader is None:
        return ProtocolFinding(CheckResult("protocol", "warning", f"{path} exists, but this build has no protocol "
                                           "loader (broker.policy), so its contents were not checked"), None)
    try:
        protocol = loader(path)
    except Exception as exc:
        reason = str(exc).splitlines()[0][:300] if str(exc) else ""
        return ProtocolFinding(CheckResult("protocol", "problem",
                                           f"{path} does not load ({type(exc).__name__}: {reason})"), None)
    names = subscriber_names(protocol)
    return ProtocolFinding(CheckResult("protocol", "ok", f"{path} loads: {len(names)} subscribers"), names)


def check_named_key(data_dir: Path, name: str, version: int, purpose: str, *, dev_mode: bool = False) -> CheckResult:
    """A 32-byte key from MASH_<NAME>_KEY or <data_dir>/keys/<name>-v<N>.key, as broker.secrets reads it."""
    from broker.secrets import SecretError, named_secret

    label = f"{name} key"
    missing = not os.environ.get(f"MASH_{name.upper()}_KEY") and \
        not (data_dir / "keys" / f"{name}-v{version}.key").exists()
    if missing and dev_mode:
        return CheckResult(label, "info", f"no {name} key yet: dev mode generates one at start")
    try:
        secret = named_secret(data_dir, name, version, create=False)
    except SecretError as exc:
        return CheckResult(label, "problem", f"{exc} ({purpose})")
    except (ValueError, OSError) as exc:  # undecodable base64, unreadable file
        return CheckResult(label, "problem", f"{name} key v{version} cannot be read ({type(exc).__name__})")
    source = f"MASH_{name.upper()}_KEY" if os.environ.get(f"MASH_{name.upper()}_KEY") else \
        str(data_dir / "keys" / f"{name}-v{version}.key")
    if len(secret) < KEY_BYTES:
        return CheckResult(label, "problem", f"{name} key v{version} from {source} is {len(secret)} bytes; "
                           f"at least {KEY_BYTES} are needed")
    return CheckResult(label, "ok", f"{name} key v{version} present ({source})")


def check_registers(settings: Settings) -> CheckResult:
    """Where the registers live, and whether they can be used there (the URL is never printed: it holds a password)."""
    from broker.stores.migrate import sqlite_registers

    if not settings.store_url:
        return CheckResult("registers", "info", f"SQLite files in {settings.data_dir}: one host only; pods that "
                           "share registers need MASH_STORE_URL (PostgreSQL)")
    left = sqlite_registers(settings.data_dir)
    if left:
        return CheckResult("registers", "problem", f"MASH_STORE_URL is set but {', '.join(left)} still hold "
                           "registers: stop the broker and run `mash-broker stores migrate`")
    try:
        import psycopg

        with psycopg.connect(settings.store_url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # the driver's message may carry the URL
        return CheckResult("registers", "problem", f"PostgreSQL at MASH_STORE_URL cannot be used "
                           f"({type(exc).__name__}): check the host, credentials and that psycopg is installed")
    return CheckResult("registers", "ok", "PostgreSQL at MASH_STORE_URL answers")


def check_consent_review(settings: Settings) -> CheckResult:
    """Consent records moved from the first, per-child register that say no and await an IG review: until reviewed
    each is read the stricter way (broker/policy/consent_review.py). Read only; counts, never a token."""
    from broker.ops.delivery_checks import _query
    from broker.stores.consent import MIGRATED_BY, SAYS_NO_SQL, ConsentRegister

    rows = _query(settings, ConsentRegister.FILE, "SELECT COUNT(DISTINCT subject) FROM consent_records WHERE"
                  f" recorded_by = '{MIGRATED_BY}' AND {SAYS_NO_SQL} AND subject NOT IN"
                  " (SELECT subject FROM consent_reviews)")
    if rows is None:  # no register yet, or one from before reviews existed (the broker adds the table on start)
        return CheckResult("consent review", "info", "no consent records from the first register to review")
    waiting = int(rows[0][0])
    if waiting:
        return CheckResult("consent review", "warning", f"{waiting} children's consent records from the first "
                           "register say no and await an IG review (read as an objection and a refusal of every "
                           "kind until then): `mash-broker consent v1-list`")
    return CheckResult("consent review", "ok", "no consent records from the first register await review")


def check_adapters() -> CheckResult:
    """The installed adapter plug-ins: one whose entry point fails to import is a problem (its agency's records in
    that format would be refused as an unknown format), named by entry point and target, never by a traceback."""
    from adapters.kit.registry import all_adapters, load_errors

    broken = load_errors()
    if broken:
        return CheckResult("adapters", "problem", f"{len(broken)} adapter entry point(s) broken: {'; '.join(broken)}. "
                           "Reinstall the plug-in into the broker's environment and restart")
    return CheckResult("adapters", "ok", f"{len(all_adapters())} adapters loaded")


async def run_checks(settings: Settings, protocol_loader: Callable[[Path], Any] | None = None) -> list[CheckResult]:
    """Every check, in the order a person would fix them."""
    protocol = check_protocol(settings.protocol_file, protocol_loader)
    kafka = await check_kafka(settings)
    return [
        check_data_dir(settings.data_dir),
        check_secret_permissions(settings.data_dir),
        check_data_permissions(settings.data_dir),
        check_named_key(settings.data_dir, "linkage", settings.linkage_key_version, "pseudonymous linkage tokens",
                        dev_mode=settings.dev_mode),
        check_named_key(settings.data_dir, "mask", 1, "the protocol's keyed-hash masks", dev_mode=settings.dev_mode),
        protocol.result,
        check_adapters(),
        kafka.result,
        check_topics(settings, kafka.topics, protocol.subscribers),
        *await check_kafka_engine(settings, kafka.topics, protocol.subscribers),
        check_registers(settings),
        check_consent_review(settings),
        *await _delivery_checks(settings, kafka.topics is not None),
    ]


async def _delivery_checks(settings: Settings, kafka_reached: bool) -> list[CheckResult]:
    """Subscriber keys, held deliveries, the Kafka epoch (broker/ops/delivery_checks.py, imported late: it imports
    this module)."""
    from broker.ops import delivery_checks as d

    protocol = d.load_protocol_quietly(settings.protocol_file) if settings.protocol_file.is_file() else None
    return [d.check_subscriber_keys(settings, protocol), d.check_held_deliveries(settings),
            await d.check_kafka_epoch(settings, kafka_reached)]


def healthy(results: Iterable[CheckResult]) -> bool:
    return all(r.healthy for r in results)
