"""Erasure's shell: shred and record a child (API and CLI), refuse resends at intake, hide deliveries from HTTP,
publish and deliver the `person.erased` notice. The rules are pure, in broker/pipeline/erasure.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from adapters.kit.events import EVENT_NAMESPACE_BYTES, uuid5_text
from adapters.kit.interface import Rejection
from broker.aio import blocking
from broker.audit import audit_record
from broker.clock import now_iso
from broker.crypto.envelope import protect_event
from broker.crypto.keystore import ShredReport, shred_child
from broker.logging import get_logger
from broker.pipeline.erasure import (
    NOTICE_REASON,
    NOTICE_SCOPE,
    NOTICE_TYPE,
    DeliveryFacts,
    hidden,
    iso_ms,
    notice_event,
    refuse_erased,
)
from broker.policy.decision import delivered_record_id
from broker.schema.envelope import linkage_token
from broker.service.messages import encode, event_headers, header

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

    from broker.audit.store import AuditStore
    from broker.service.ports import ErasurePorts
    from broker.stores.erasures import ErasureRegister
    from broker.stores.registry import Forgets

log = get_logger("mash.erasure")
_PAGE = 10_000  # the audit store's largest search page
NOTICE_EVERY_S = 2.0
_announcing: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


def _audited(audit: AuditStore | None, kind: str, tokens: Iterable[str]) -> list[dict[str, Any]]:
    """Every audit record of this kind about these tokens, all pages (pruned ones have no body and are left out)."""
    out: list[dict[str, Any]] = []
    if audit is None:
        return out
    for token in dict.fromkeys(tokens):
        before: int | None = None
        while True:
            page = audit.search(kind=kind, subject=token, limit=_PAGE, before_seq=before)
            out += [e["record"] for e in page if e.get("record")]
            if len(page) < _PAGE:
                break
            before = page[-1]["seq"]
    return out


def received_before(audit: AuditStore | None, tokens: Sequence[str]) -> list[tuple[str, str]]:
    """(event id, token) of every event the audit log says was published about these tokens (notices aside)."""
    return [(r["event_id"], r["subject"]) for r in _audited(audit, "event_published", tokens)
            if r.get("event_type") != NOTICE_TYPE]


def known_child(identities: Any, audit: AuditStore | None, token: str, keys: Any = None) -> bool:
    """Whether the broker has received records about the child `token` names: the identity register links every
    token at intake (before the 202); the audit log and the keystore (data keys made for it) cover the rest.

    Consent and erasure are recorded only for a known child: a token is a pseudonym no one can proofread, and a
    mistyped one would record an act about nobody while the answer said it was done."""
    if identities.known([token]).child_of or (keys is not None and keys.holds(token)):
        return True
    return audit is not None and bool(audit.search(subject=token, limit=1))


def erase_child(keys: Any, erasures: ErasureRegister, audit: AuditStore | None, tokens: list[str], actor: str,
                at: str | None = None, *, forget: Sequence[Forgets]) -> tuple[list[ShredReport], dict[str, Any]]:
    """Erase one child under every token it carried (current first): the erasure register first (so that a shred
    that fails half way still hides and refuses the child's data, and can be run again), then the data keys. A
    `person.erased` notice is owed (for a first erasure, or one that destroyed keys made since: data received after
    an earlier erasure); the service publishes it. `forget`: the registers that hold plain facts about the child
    (broker/stores/registry.py's FORGOTTEN_ON_SHRED: no default, so no caller leaves one out), each deleting them
    under every token (`forget(tokens)`), after the erasure is recorded. Returns the shred reports and the summary."""
    at = at or now_iso()
    before = received_before(audit, tokens)
    first = not erasures.erased_at(tokens)
    erasures.record(tokens, at, actor)
    erasures.record_events(before)
    for register in forget:
        register.forget(tokens)
    reports, summary = shred_child(keys, tokens, before)
    if first or summary["data_keys_shredded"]:  # a retry that destroyed nothing new tells no one again
        erasures.owe_notice(tokens, at)
    return reports, {**summary, "erased_at": at, "events_erased": len({e for e, _ in before})}


def key_shred_records(reports: list[ShredReport], summary: dict[str, Any], actor: str) -> list[dict[str, Any]]:
    """The `key_shred` audit records of one erasure: one per token that held keys, and always one for the child."""
    return [audit_record("key_shred", time=summary["erased_at"], actor=actor, subject=r.scope, count=r.data_keys,
                         reason="crypto-shredding on request")
            for r in reports if r.data_keys or r.scope == summary["subject"]]


# --- intake --------------------------------------------------------------------------------------------------------
def erasure_blocks(rt: ErasurePorts, events: list[dict[str, Any]], source: str = "request",
                   received_at: str | None = None) -> tuple[list[dict[str, Any]], list[Rejection]]:
    """(events to publish, rejections) for a request's resolved events: an erased child's events received before
    its erasure are refused (broker/pipeline/erasure.py). Call it right after `_resolve`, before anything is
    protected; one register query when no child of the request is erased.

    `received_at`, for a reprocessed dead letter: when its input was first received. Every event about a child
    erased since then is refused: the input is old data, whatever its event ids.
    """
    if rt.erasures is None or not events:
        return events, []
    erased = rt.erasures.erased_at({linkage_token(e) for e in events})
    if not erased:
        return events, []
    mine = {e["event_id"] for e in events if linkage_token(e) in erased}
    if received_at is not None:
        before = {e["event_id"] for e in events if linkage_token(e) in erased
                  and received_at <= erased[linkage_token(e)]}
    else:
        before = rt.erasures.erased_events(mine)
    if mine - before:  # published just before the erasure, while the audit indexer had not stored it yet
        before |= published_before(rt.audit_store, erased, mine)
    return refuse_erased(events, erased, before, source)


def published_before(audit: AuditStore | None, erased: dict[str, str], event_ids: set[str]) -> set[str]:
    """Which of `event_ids` the audit log says were published about an erased child (`erased`: token -> when)
    before its erasure (the intake planner's facts, broker/pipeline/intake_plan.py)."""
    return {r["event_id"] for r in _audited(audit, "event_published", erased)
            if r["event_id"] in event_ids and r["time"] < erased[r["subject"]]}


# --- HTTP delivery -------------------------------------------------------------------------------------------------
def unerased(rt: ErasurePorts, records: list[ConsumerRecord]) -> list[ConsumerRecord]:
    """The delivery records HTTP may serve: those about an erased child made before its erasure are dropped (the
    caller's cursor still moves past them). One register query per page when no erased child is among them."""
    if rt.erasures is None or not records:
        return records
    erased = rt.erasures.erased_at({r.key.decode() for r in records if r.key})
    if not erased:
        return records
    facts = [DeliveryFacts(r.key.decode() if r.key else "", header(r.headers, "event_id"), r.timestamp,
                           header(r.headers, "event_type") == NOTICE_TYPE) for r in records]
    ids = rt.erasures.erased_events(f.event_id for f in facts if f.token in erased and f.event_id)
    mask = hidden(facts, {t: iso_ms(at) for t, at in erased.items()}, ids)
    return [r for r, gone in zip(records, mask, strict=True) if not gone]


# --- the notice ----------------------------------------------------------------------------------------------------
async def announce_owed(rt: ErasurePorts, actor: str = "erasure") -> int:
    """Publish every `person.erased` notice the erasure register owes (API and CLI shreds alike); a notice stays
    owed until Kafka acknowledged it. Returns how many were published. One at a time per process (the shred's own
    call and the notifier); two processes may both publish a notice: the same event id, delivered once."""
    lock = _announcing.setdefault(rt, asyncio.Lock())
    async with lock:
        return await _announce(rt, actor)


async def _announce(rt: ErasurePorts, actor: str) -> int:
    done = 0
    for tokens, erased_at in await blocking(rt.erasures.notices_owed):
        event = notice_event(tokens, erased_at)
        protected = await blocking(protect_event, event, rt.keys, scope=NOTICE_SCOPE)  # may make a data key
        await (await rt.producer.send(rt.settings.topics.events, encode(protected), key=tokens[0].encode(),
                                      headers=event_headers(event)))
        await rt.emit_audit([rt.audit_record("event_published", time=now_iso(), actor=actor,
                                             event_id=event["event_id"], event_type=NOTICE_TYPE, subject=tokens[0],
                                             reason=NOTICE_REASON)])
        await blocking(rt.erasures.announced, tokens[0], erased_at, now_iso())
        done += 1
    return done


async def run_erasure_notices(rt: ErasurePorts, stop: asyncio.Event, every: float = NOTICE_EVERY_S) -> None:
    """Background task: publish owed notices (a CLI shred cannot: it has no Kafka producer)."""
    while not stop.is_set():
        try:
            await announce_owed(rt)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Kafka down, a register busy: the notice stays owed, tried again
            log.warning("erasure_notice_unpublished", reason=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


def past_recipients(rt: ErasurePorts, tokens: Sequence[str]) -> set[str]:
    """Every subscriber ever sent a delivery about these tokens: the recipients register, and the audit log's
    deliveries for what was delivered before the register existed (who a `person.erased` notice goes to)."""
    return rt.delivered.recipients(tokens) | {r["subscriber"] for r in _audited(rt.audit_store, "delivered", tokens)
                                              if r.get("subscriber")}


async def deliver_notice(rt: ErasurePorts, event: dict[str, Any], token: str, sent: set[tuple[str, str]],
                         now: str, producer: Any = None,
                         ) -> tuple[list[Any], list[tuple[str, str, str]], list[dict[str, Any]]]:
    """The share worker's handling of a `person.erased` notice: sealed to every subscriber of the protocol that was
    ever sent a delivery about any of the erased tokens (the recipients register, and the audit log's deliveries
    for what was delivered before it existed), whatever the rules. (sends, delivered-log marks, audit records)."""
    producer = producer or rt.producer  # the share worker's transactional one, so the notice commits with its batch
    told = await blocking(past_recipients, rt, event["payload"]["erased_tokens"])
    sends, marks, audits = [], [], []
    for subscriber in sorted(told & set(rt.protocol.subscribers)):
        if (subscriber, event["event_id"]) in sent:
            rt.metrics.duplicates.labels(subscriber).inc()
            continue
        try:
            sealed = rt.seal_for(subscriber, event)
        except Exception as exc:  # one subscriber's unusable key must not keep the notice from the others
            log.error("erasure_notice_unsealed", subscriber=subscriber, reason=type(exc).__name__)
            continue
        sent.add((subscriber, event["event_id"]))
        decision_id = uuid5_text(EVENT_NAMESPACE_BYTES, f"erasure-notice\x1f{event['event_id']}\x1f{subscriber}")
        headers = [("event_id", event["event_id"].encode()), ("decision_id", decision_id.encode()),
                   ("protocol_version", str(rt.protocol.version).encode()), ("event_type", NOTICE_TYPE.encode())]
        sends.append(await producer.send(rt.settings.topics.deliver(subscriber), sealed, key=token.encode(),
                                         headers=headers))
        marks.append((subscriber, event["event_id"], decision_id))
        audits.append(rt.audit_record("delivered", time=now, actor="share", subject=token, subscriber=subscriber,
                                      record_id=delivered_record_id(decision_id, subscriber),
                                      event_id=event["event_id"], decision_id=decision_id, reason=NOTICE_REASON))
    return sends, marks, audits
