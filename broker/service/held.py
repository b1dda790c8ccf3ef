"""Releasing held deliveries: once a subscriber's public key loads again, what was held for it is delivered, in order.

The share stage holds a delivery (broker/stores/held.py) when its subscriber cannot be sealed to, commits the batch
and goes on for everyone else. This loop, one per process that runs share workers, tries each held subscriber's key
every `Runtime.held_recheck_seconds`, and when it loads reads the held events again from the events topic (by
partition and offset), decides again and delivers. It also retries a person's decided shares whose delivery is
still owed (`retry_decided`, broker/service/decisions.py).

Decided again, not replayed: the release is the disclosure, so it follows the consent, case state, erasures and
protocol in force when it is made. A held delivery the protocol now withholds, whose child was erased, or whose
event the events topic no longer holds (its retention ran out while the key was broken: the agency must resend) is
dropped with an audit record saying why, so that it cannot hold the subscriber's later deliveries for ever. The
delivered log is checked before each release, so nothing is delivered twice by one process; two processes releasing
the same rows at the same instant can each send a copy, which HTTP pull serves once (broker/stores/served.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker.aio import blocking
from broker.clock import now_iso
from broker.crypto import KeyUnavailable, KmsError
from broker.logging import get_logger
from broker.pipeline.cases import case_transition
from broker.pipeline.share import share
from broker.policy.decision import delivered_record_id
from broker.schema.envelope import linkage_token
from broker.service.decisions import retry_decided
from broker.service.facts import read_facts
from broker.service.messages import decode
from broker.service.positions import read_positions
from broker.service.share import SEAL_FAULTS
from broker.stores.held import Held

if TYPE_CHECKING:
    from broker.pipeline.register_facts import BatchFacts
    from broker.policy import ConsentState
    from broker.policy.facts import CaseFacts
    from broker.service.ports import HeldPorts

log = get_logger("mash.held")


async def run_held_release(rt: HeldPorts, stop: asyncio.Event) -> None:
    """Supervised like a share worker: an error is logged and the loop goes on after the next pause."""
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=rt.held_recheck_seconds)
        if stop.is_set():
            return
        try:
            await release_round(rt)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("held_release_failed")


async def release_round(rt: HeldPorts) -> dict[str, int]:
    """One pass: refresh which subscribers cannot be sealed to, and release what the others have held."""
    faults = rt.check_subscriber_keys()
    released: dict[str, int] = {}
    for subscriber in sorted(await blocking(rt.held.counts)):
        if subscriber in faults or subscriber not in rt.protocol.subscribers:
            continue  # still unusable (or removed from the protocol: kept, and named in /readyz, until it returns)
        while rows := await blocking(rt.held.oldest, subscriber):
            done = await release_held(rt, subscriber, rows)
            released[subscriber] = released.get(subscriber, 0) + done
            if done < len(rows):  # some events could not be read back: stop here, keep order, try next round
                break
        if not (await blocking(rt.held.counts)).get(subscriber):
            log.info("held_deliveries_released", subscriber=subscriber, count=released.get(subscriber, 0))
    # a person's decided shares still owed (broker/service/decisions.py)
    if getattr(rt, "referrals", None) is not None and (settled := await retry_decided(rt)):
        log.info("decided_deliveries_settled", count=settled)
    return released


async def release_held(rt: HeldPorts, subscriber: str, rows: list[Held]) -> int:
    """Deliver (or drop, saying why) the held rows in order; returns how many are done. Stops at the first row
    whose event cannot be read back or revealed, so that what follows it stays behind it. The rows' events are
    revealed first, and the registers read once for all their children (not once per row), just before sending."""
    records, highest = await read_positions(rt, rt.settings.topics.events, ((h.partition, h.offset) for h in rows))
    events = await blocking(_reveal_rows, rt, rows, records, highest)
    registers = await blocking(_registers_at_release, rt, [e for e in events.values() if isinstance(e, dict)])
    done: list[str] = []
    audits: list[dict[str, Any]] = []
    now = now_iso()
    for n, row in enumerate(rows):
        # checked row by row, just before the send: another process's release loop may have sent it meanwhile
        if await blocking(rt.delivered.sent, [subscriber], [row.event_id]):
            done.append(row.event_id)
            continue
        event = events.get(n)
        if event is None:  # not readable now, or a key outage: keep the order, try again next round
            break
        if isinstance(event, Exception):
            raise event  # a fault revealing it, raised where the row-by-row release met it (the round logs it)
        if isinstance(event, str):  # GONE
            # Gone from the events topic (retention ran out while the key was broken): cannot be delivered from
            # here; dropped with a record saying so, so the subscriber's later deliveries are not held for ever.
            log.warning("held_event_gone", subscriber=subscriber, event_id=row.event_id,
                        position=f"{row.partition}/{row.offset}")
            audits.append(rt.audit_record(
                "admin_action", time=now, actor="share", action="delivery.held_dropped", subscriber=subscriber,
                event_id=row.event_id, reason="event no longer on the events topic: the agency must resend it"))
            done.append(row.event_id)
            continue
        token = linkage_token(event)
        outcome = await _release_one(rt, subscriber, event, token, now, audits, registers.for_event(event, token))
        if outcome is None:  # the key failed again between the check and the seal
            break
        done.append(row.event_id)
    await rt.emit_audit(audits)
    await blocking(rt.held.release, subscriber, done)
    return len(done)


GONE = "gone"  # a held row whose event the events topic no longer holds


def _reveal_rows(rt: HeldPorts, rows: list[Held], records: Mapping[tuple[int, int], Any],
                 highest: Mapping[int, int]) -> dict[int, dict[str, Any] | str | Exception]:
    """Row index -> its event in the clear, GONE, or the fault revealing it; a row not readable now (or a key
    outage) ends the map there, as it ends the release."""
    out: dict[int, dict[str, Any] | str | Exception] = {}
    for n, row in enumerate(rows):
        msg = records.get((row.partition, row.offset))
        if msg is None and highest.get(row.partition, -1) > row.offset:
            out[n] = GONE
            continue
        if msg is None:
            break
        try:
            out[n] = rt.reveal(decode(msg.value)).event  # the key store
        except (KeyUnavailable, KmsError):
            break  # an outage: try again next round
        except Exception as exc:  # raised when the release reaches this row, after the rows before it are done
            out[n] = exc
            break
    return out


async def _release_one(rt: HeldPorts, subscriber: str, event: dict[str, Any], token: str, now: str,
                       audits: list[dict[str, Any]], at_release: tuple[ConsentState | None, CaseFacts] | None,
                       ) -> str | None:
    """Decide again for `subscriber` and deliver, or drop with an audit record: "delivered", "dropped", or None if
    the subscriber still cannot be sealed to. `at_release`: the registers now (None: the child was erased since)."""
    if at_release is None:
        audits.append(_dropped(rt, now, subscriber, event, token, "child erased while the delivery was held"))
        return "dropped"
    consent, facts = at_release
    for decision, released in share(rt.protocol, event, consent=consent, facts=facts, mask_key=rt.mask_key):
        if decision.subscriber != subscriber:
            continue
        if released is None:
            audits.append(_dropped(rt, now, subscriber, event, token, "decided again at release: withheld",
                                   decision_id=decision.decision_id))
            return "dropped"
        try:
            sealed = rt.seal_for(subscriber, released)
        except SEAL_FAULTS:
            return None
        headers = [("event_id", decision.event_id.encode()), ("decision_id", decision.decision_id.encode()),
                   ("protocol_version", str(rt.protocol.version).encode())]
        acked = await rt.producer.send_and_wait(rt.settings.topics.deliver(subscriber), sealed, key=token.encode(),
                                                headers=headers)
        await blocking(rt.delivered.mark, [(subscriber, decision.event_id, decision.decision_id)])
        audits.append(rt.audit_record("delivered", time=now, actor="share", subject=token, subscriber=subscriber,
                                      record_id=delivered_record_id(decision.decision_id, subscriber),
                                      event_id=decision.event_id, decision_id=decision.decision_id,
                                      topic=acked.topic, partition=acked.partition, offset=acked.offset))
        return "delivered"
    audits.append(_dropped(rt, now, subscriber, event, token, "decided again at release: no decision"))
    return "dropped"


@dataclass(frozen=True)
class _AtRelease:
    """What the registers say now of the held events' children, read once for the release (one query each)."""

    erased: frozenset[str]
    cases: Mapping[str, bool | None]
    facts: BatchFacts
    consent: Mapping[str, ConsentState | None]

    def for_event(self, event: dict[str, Any], token: str) -> tuple[ConsentState | None, CaseFacts] | None:
        """(consent, register facts) for deciding a held event again now; None when its child was erased since."""
        if token in self.erased:
            return None
        transition = case_transition(event)
        case_open = transition if transition is not None else self.cases.get(token)
        return self.consent.get(token), self.facts.for_event(token, case_open)


def _registers_at_release(rt: HeldPorts, events: list[dict[str, Any]]) -> _AtRelease:
    tokens = list(dict.fromkeys(linkage_token(e) for e in events))
    erasures = getattr(rt, "erasures", None)
    erased = frozenset(erasures.erased_at(tokens)) if erasures is not None and tokens else frozenset()
    live = [t for t in tokens if t not in erased]
    return _AtRelease(erased, rt.cases.open_states(live), read_facts(rt, live), rt.consent_for_many(live))


def _dropped(rt: HeldPorts, now: str, subscriber: str, event: dict[str, Any], token: str, reason: str,
             decision_id: str | None = None) -> dict[str, Any]:
    return rt.audit_record("admin_action", time=now, actor="share", action="delivery.held_dropped", subject=token,
                           subscriber=subscriber, event_id=event["event_id"], decision_id=decision_id, reason=reason)
