"""The composition root: the one place that builds a running broker's parts, each whole before anything uses it.

Two steps, so that a misconfiguration is one plain line before anything connects:

1. `load_local(settings)`: keys, protocol, linkage and mask keys, adapter settings, API keys, sealers (no Kafka,
   no registers); fails with one of STARTUP_ERRORS.
2. `await open_runtime(local, await open_kafka(settings))`: topics ensured, the producer started (idempotent where
   the cluster grants a producer id: broker/kafka/clients.py `start_producer`), every register of
   broker/stores/registry.py opened, the audit store opened, the Kafka epoch reconciled, the delivery reader made, and
   then the `Runtime` built with every part in place. What is opened is closed again if a later step fails.

Workers and routers receive the Runtime typed as a narrow Protocol of what they use (broker/service/ports.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

from adapters.kit.registry import AGENCIES
from broker.access.apikeys import ApiKeyStore
from broker.adapter_settings import AdapterSettingsError, adapter_settings
from broker.audit import audit_record
from broker.audit.store import open_audit_store
from broker.clock import now_iso
from broker.config import Settings
from broker.crypto import CryptoError, KeyStore, open_key_provider
from broker.crypto.hpke_keys import generate_subscriber_keypair
from broker.kafka.admin import ensure_topics
from broker.kafka.clients import start_producer
from broker.logging import get_logger
from broker.policy import PolicyError, Protocol, ProtocolError, load_protocol
from broker.policy.change import protocol_change_diff
from broker.policy.keys import decode_key
from broker.secrets import SecretError, linkage_key, mask_key, write_secret_file
from broker.service.audit_emitter import AuditEmitter, UnwrapAudit
from broker.service.delivery import CursorCodec, DeliveryReader, cursor_key
from broker.service.epoch import EpochParts, reconcile_kafka_epoch
from broker.service.kafka_link import KafkaLink, StartupFailed, open_kafka
from broker.service.metrics import Metrics
from broker.service.runtime import Local, Runtime
from broker.service.sealers import Sealers
from broker.service.topics import service_topic_plan
from broker.stores.migrate import sqlite_registers
from broker.stores.registry import REGISTERS, Register

__all__ = ["STARTUP_ERRORS", "Local", "StartupFailed", "load_local", "open_broker", "open_kafka", "open_registers",
           "open_runtime"]

log = get_logger("mash.runtime")

# What a misconfigured start raises: missing or unsafe keys, an invalid protocol, an unusable KMS, bad settings.
STARTUP_ERRORS = (SecretError, ProtocolError, PolicyError, CryptoError, OSError, StartupFailed)


def load_local(settings: Settings) -> Local:
    """Everything that can fail before Kafka is touched, so a misconfiguration is one plain line (STARTUP_ERRORS)
    instead of a server traceback."""
    s = settings
    if s.store_url and (left := sqlite_registers(s.data_dir)):
        raise StartupFailed(f"MASH_STORE_URL is set but {', '.join(left)} in {s.data_dir} still hold registers "
                            "(consent, delivered log...): run `mash-broker stores migrate` first")
    if s.oidc_issuer and not s.oidc_audience:
        raise StartupFailed("MASH_OIDC_ISSUER is set without MASH_OIDC_AUDIENCE: tokens issued for any other "
                            "application would be accepted")
    s.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # keys, registers, audit: the owner's only
    metrics = Metrics()
    unwraps = UnwrapAudit(metrics)
    linkage = linkage_key(s.data_dir, s.linkage_key_version, create=s.dev_mode)
    masking = mask_key(s.data_dir, create=s.dev_mode)
    try:
        adapters = adapter_settings(s)
    except AdapterSettingsError as exc:
        raise StartupFailed(str(exc)) from None
    keys: KeyStore = open_key_provider(s.data_dir, create=s.dev_mode, on_unwrap=unwraps)
    protocol = load_protocol(s.protocol_file)
    api_keys = ApiKeyStore(s.data_dir / "api-keys.json")
    if s.dev_mode:
        _dev_credentials(s.data_dir, api_keys, protocol)
        protocol = _dev_subscriber_keys(s.data_dir, protocol)
    return Local(settings=s, metrics=metrics, unwraps=unwraps, linkage=linkage, mask_key=masking,
                 adapter_settings=adapters, keys=keys, protocol=protocol, api_keys=api_keys,
                 sealers=Sealers(protocol))


def _dev_credentials(data_dir: Path, api_keys: ApiKeyStore, protocol: Protocol) -> None:
    """make run: one API key per role and scope, written once to <data_dir>/dev-credentials.json (0600)."""
    path = data_dir / "dev-credentials.json"
    if path.exists() or api_keys.principals():
        return
    wanted: list[tuple[str, str | None]] = [("intake", a) for a in AGENCIES]
    wanted += [("subscriber", n) for n in protocol.subscribers]
    wanted += [("ig_auditor", None), ("admin", None), ("insight", None)]  # insight: the board's page (issue 17)
    wanted += [("decision_maker", p) for p in protocol.partners]
    wanted += [("hub_decision", n) for n, s in protocol.subscribers.items() if s.role == "mash_hub"]  # issue 16
    creds = {}
    for role, scope in wanted:
        key, principal = api_keys.create(role, scope)
        creds[principal.grant] = key
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(creds, f, indent=1)
    log.info("dev_credentials_written", path=str(path))


def _dev_subscriber_keys(data_dir: Path, protocol: Protocol) -> Protocol:
    """make run: every subscriber that reads its public key from a file gets a development key pair in the data
    directory (<data_dir>/subscriber-keys/<name>.key for the development subscriber client, <name>.pub), made
    once, and the protocol in force points at that .pub. The protocol file and the key files beside it are never
    written: two data directories started from one protocol (two developers, parallel tests) each keep their own
    keys instead of overwriting each other's, and a real key beside the protocol is never replaced."""
    keys_dir = data_dir / "subscriber-keys"
    redirected = {}
    for sub in protocol.subscribers.values():
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
    if not redirected:
        return protocol
    return dataclasses.replace(protocol, subscribers={**protocol.subscribers, **redirected})


def open_registers(data_dir: Path, url: str | None, stack: contextlib.ExitStack | None = None) -> dict[str, Any]:
    """Every register of broker/stores/registry.py's REGISTERS, by its attribute name (cases, identities...):
    PostgreSQL shared by every pod (`url`, MASH_STORE_URL), else SQLite files in the data directory. With `stack`,
    each is closed by it; without, the caller closes them (those opened are closed here if one fails to open)."""
    opened: dict[str, Register] = {}
    with contextlib.ExitStack() as failing:
        for spec in REGISTERS:
            register = opened[spec.attr] = spec.open(data_dir, url)
            failing.callback(register.close)
        failing.pop_all()
    if stack is not None:
        for register in opened.values():
            stack.callback(register.close)
    return dict(opened)


async def open_runtime(local: Local, kafka: KafkaLink) -> Runtime:
    """The running broker, every part built. Takes over `kafka`: the Runtime's stop() stops what it started; if this
    fails, what it opened itself is closed again and `kafka` is left to the caller."""
    s = local.settings
    async with contextlib.AsyncExitStack() as opened:
        created = await ensure_topics(kafka.bootstrap, service_topic_plan(s, local.protocol),
                                      s.kafka_replication_factor, **kafka.security)
        log.info("topics_ready", created=created)
        out, refused = await start_producer(kafka.bootstrap, **kafka.security)  # idempotent where granted
        opened.push_async_callback(out.stop)
        _log_producer_mode(refused)
        sync = opened.enter_context(contextlib.ExitStack())
        registers = open_registers(s.data_dir, s.store_url, sync)
        audit_store = open_audit_store(s.data_dir, s.audit_url, create_key=True)
        sync.callback(audit_store.close)
        audit = AuditEmitter(out, s.topics.audit, local.unwraps)
        # Does Kafka still hold what the registers point at? If not, say so and clear those positions.
        epoch_state = await reconcile_kafka_epoch(EpochParts(
            settings=s, bootstrap=kafka.bootstrap, kafka_security=kafka.security, embedded=kafka.embedded is not None,
            producer=out, audit=audit, cursors=registers["cursors"], delivered=registers["delivered"],
            first_served=registers["first_served"], held=registers["held"]), created)
        reader = DeliveryReader(kafka.bootstrap, kafka.security)
        opened.push_async_callback(reader.close)
        rt = Runtime(**local.parts(), kafka=kafka, producer=out, audit=audit, audit_store=audit_store,
                     epoch_state=epoch_state, cursor_codec=CursorCodec(cursor_key(local.mask_key), epoch_state.epoch),
                     delivery_reader=reader, **registers)
        local.sealers.check_keys(warn=True)
        await _record_protocol_in_force(rt)
        opened.pop_all()  # from here the Runtime owns them all: its stop() closes them
    return rt


def _log_producer_mode(refused: str) -> None:
    """Once per process: whether a produce retried after a lost acknowledgement can write an event twice."""
    if not refused:
        log.info("producer_mode", idempotent=True, detail="producer id and sequence numbers: a retried produce is "
                 "written once")
    else:
        log.warning("producer_mode", idempotent=False, reason=refused, detail="this Kafka grants no producer id: "
                    "a produce retried after a lost acknowledgement can write a message twice (of an event on "
                    "sg.events, the share workers' delivered log drops the second copy)")


async def _record_protocol_in_force(rt: Runtime) -> None:
    """A protocol_change audit record when the protocol in force differs from the last one recorded."""
    p = rt.protocol
    history = rt.audit_store.protocol_history()
    last = history[-1]["record"] if history else None
    digest = hashlib.sha256(rt.settings.protocol_file.read_bytes()).hexdigest()
    if last and (last.get("protocol_id"), last.get("protocol_version"), last.get("content_sha256")) == \
            (p.id, p.version, digest):
        return
    # the permission diff from the previous file (kept by hash in <data_dir>/protocols): broker/policy/change.py
    permissions = protocol_change_diff(rt.settings.data_dir, rt.settings.protocol_file, p,
                                       last.get("content_sha256") if last else None)
    await rt.emit_audit([audit_record(
        "protocol_change", time=now_iso(), actor="runtime", protocol_id=p.id, protocol_version=p.version,
        previous_version=last.get("protocol_version") if last else None, content_sha256=digest,
        permission_changes=permissions,
        record_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"protocol:{p.id}:{p.version}:{digest}:"
                                 f"{last.get('record_id') if last else ''}")))])


async def open_broker(local: Local) -> Runtime:
    """open_kafka, then open_runtime; a Kafka this process started is stopped again if the rest fails to open."""
    kafka = await open_kafka(local.settings)
    try:
        return await open_runtime(local, kafka)
    except BaseException:
        await kafka.close()
        raise
