"""The hub watch: its own consumer group on the events topic, keeping the history register and raising the hub's
events (issue 16). Read, plan (broker/pipeline/hub/plan.py), produce, write, commit, in that order: a crash before
the write redoes the batch, and the derived ids make the redo produce the same events, which the share stage's
delivered log drops. The hub's events go back onto the events topic under the child's token, protected like any
event, and reach the hub's subscriber through the protocol's rules (never by themselves). Every few seconds the
running clocks are settled against the clock (here, at the edge) and the delivered log's delivery times (an
Encompass clock is met only by a delivery before its deadline): a met or breached clock is audited (`hub_clock`) and
counted, and a breach raises `mash.clock_breached`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from broker.aio import blocking
from broker.audit.record import built_record
from broker.clock import now_iso
from broker.crypto import KeyUnavailable, KmsError
from broker.insight.facts import insight_facts
from broker.kafka.clients import group_consumer
from broker.logging import get_logger
from broker.pipeline.hub.calendar import Calendar, CalendarError, build_calendar
from broker.pipeline.hub.history import Clock, derived_id
from broker.pipeline.hub.plan import (
    LINKED,
    HubFacts,
    HubPlan,
    breach_event,
    history_reads,
    plan_hub,
    reads,
    settle,
)
from broker.pipeline.hub.reveal import hub_view
from broker.schema.loader import SCHEMA_VERSION
from broker.schema.validate import validate_event
from broker.service.messages import decode, encode, event_headers, header
from broker.service.supervise import supervised

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

    from broker.service.runtime import Runtime

log = get_logger("mash.hub_watch")
ACTOR = "hub-watch"
MET = "clock met: the hub decided, or the incident reached the school's designated safeguarding lead, in time"
BREACHED = "clock breached: not done by the time the protocol's calendar allows"


def load_calendar(path: Path) -> Calendar:
    """The calendar file and the bank holidays file it names (relative to it). CalendarError names the file and
    the field, never a value."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        banks_file = path.parent / str(config.get("bank_holidays_file", "england-bank-holidays.yaml"))
        banks = (yaml.safe_load(banks_file.read_text(encoding="utf-8")) or {}).get("dates", [])
        return build_calendar(config, banks)
    except CalendarError as exc:
        raise CalendarError(f"{path}: {exc}") from None
    except (OSError, yaml.YAMLError, AttributeError) as exc:
        raise CalendarError(f"{path}: cannot read the calendar ({type(exc).__name__})") from None


async def run_hub_watch(rt: Runtime, stop: asyncio.Event) -> None:
    """Supervised like the share workers: a crash is logged, the watch rejoins its group, uncommitted work is redone."""
    try:
        calendar = load_calendar(rt.settings.calendar_file)
    except CalendarError as exc:  # the clocks cannot run on a calendar they cannot read: say which file, and stop
        log.error("hub_watch_calendar_unusable", detail=str(exc))
        raise
    await supervised(stop, lambda: _watch(rt, stop, calendar), log=log, crashed="hub_watch_crashed",
                     restarts=rt.metrics.worker_restarts)


async def _watch(rt: Runtime, stop: asyncio.Event, calendar: Calendar) -> None:
    consumer = group_consumer(rt.bootstrap, rt.settings.group("hub-watch"), **rt.kafka_security)
    consumer.subscribe([rt.settings.topics.events])
    loop = asyncio.get_running_loop()
    try:
        await consumer.start()
        log.info("hub_watch_started")
        due = 0.0
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            messages = [m for msgs in batch.values() for m in msgs]
            if messages:
                await process_batch(rt, messages, calendar)
                await consumer.commit()
            if loop.time() >= due:
                await settle_clocks(rt, now_iso())
                due = loop.time() + rt.settings.hub_clock_interval_seconds
    finally:
        await consumer.stop()


def _events(rt: Runtime, messages: list[ConsumerRecord]) -> list[dict[str, Any]]:
    """The batch in order, each event cut to the fields the planner reads and those revealed (hub_view); an erased
    child's events and undecodable messages are left out (the share stage dead-letters poison; the watch only
    reads). A message whose `event_type` header names a type the plan never reads (the hub's own events, read back,
    and erasure notices: 23% of the watch's messages over the bench's mix) is passed over unopened: the plan drops
    it anyway, after decoding and revealing it and reading its child's registers. Only the broker's own producers
    write the events topic, and each sets the header from the event it publishes; a message without one is opened."""
    rules = rt.protocol.hub
    out = []
    for msg in messages:
        event_type = header(msg.headers, "event_type")
        if event_type is not None and not reads(event_type, rules):
            continue
        try:
            revealed = rt.reveal(hub_view(decode(msg.value)))  # only the fields the planner reads
        except (KeyUnavailable, KmsError):
            raise  # an outage, not a bad message: nothing is committed, the batch is read again
        except Exception as exc:
            log.warning("hub_watch_skipped", position=f"{msg.partition}:{msg.offset}", reason=type(exc).__name__)
            continue
        if not revealed.shredded:
            out.append(revealed.event)
    return out


async def _publish(rt: Runtime, events: list[dict[str, Any]]) -> None:
    """The hub's events onto the events topic, validated (fail closed) and protected; waits for every ack."""
    for event in events:
        problems = validate_event(event)
        if problems:  # a planner bug, never data: refuse to publish rather than publish off-contract
            raise ValueError(f"hub event {event['event_type']} fails the schema: "
                             + "; ".join(str(p) for p in problems[:3]))
    protected = await blocking(lambda: [encode(rt.protect(e)) for e in events])  # the key store may mint a key
    sends = [await rt.producer.send(rt.settings.topics.events, value,
                                    key=e["subject"]["linkage"]["token"].encode(), headers=event_headers(e))
             for e, value in zip(events, protected, strict=True)]
    await asyncio.gather(*sends)


async def process_batch(rt: Runtime, messages: list[ConsumerRecord], calendar: Calendar) -> HubPlan:
    events = await blocking(_events, rt, messages)  # unwrapping data keys may wait on the key store or KMS
    facts = await blocking(_facts, rt, events)
    plan = plan_hub(events, facts, rt.protocol.hub, calendar, rt.protocol.risk_scales)
    await _publish(rt, plan.events)
    await blocking(rt.history.apply, plan)
    now = now_iso()
    await rt.emit_audit([_published_audit(rt, e, now) for e in plan.events]
                        + [_clock_audit(rt, c, "met", at) for c, at in plan.stopped])
    for metric, label in plan.counts:
        if metric == "enquiry":
            rt.metrics.hub_enquiries.labels(label).inc()
        elif metric == "cumulative_concern":
            rt.metrics.hub_cumulative.labels(label).inc()
        elif metric == "repeat_referral":
            rt.metrics.hub_repeat_referrals.inc()
    for clock, _ in plan.stopped:
        rt.metrics.hub_clocks.labels(clock.kind, "met").inc()
    return plan


def _facts(rt: Runtime, events: list[dict[str, Any]]) -> HubFacts:
    """The history register's view of the batch's children, under the tokens the identity register says they carry
    now, else the tokens the watch itself folded them into (one read of each register): of their histories, only
    what the plan can look at, so a batch's read does not grow with each child's history."""
    tokens = list(dict.fromkeys(e["subject"]["linkage"]["token"] for e in events))
    child_of = rt.identities.known(tokens).child_of
    current = {t: child_of[t] for t in tokens if child_of.get(t, t) != t}
    wanted = [*tokens, *current.values()]
    wanted += [e["payload"]["superseded_token"] for e in events if e["event_type"] == LINKED]
    facts = rt.history.facts(wanted, history_reads(events, rt.protocol.hub).following(current))
    facts.current = {**facts.current, **current}
    return facts


# The watch's audit records are built, not re-validated (broker/audit/record.py built_record): fixed kinds and
# fields, checked where they are read from outside (the audit store validates each before chaining it), and every
# record the watch builds over the bench's mix is validated by tests/hub/test_hub_watch_differential.py.
def _published_audit(rt: Runtime, event: dict[str, Any], at: str) -> dict[str, Any]:
    """Every event the watch raises is audited as published (with the codes the measures break it down by)."""
    return built_record("event_published", time=at, actor=ACTOR, event_id=event["event_id"],
                        event_type=event["event_type"], subject=event["subject"]["linkage"]["token"],
                        reason="raised for the MASH hub by the hub watch (protocol hub section)",
                        insight=insight_facts(event))


def _clock_audit(rt: Runtime, clock: Clock, outcome: str, at: str) -> dict[str, Any]:
    return built_record("hub_clock", time=at, actor=ACTOR, subject=clock.token, event_id=clock.event_id,
                        event_type=clock.event_type, action=outcome, target=clock.kind,
                        record_id=derived_id("hub_clock", clock.clock_id, outcome),
                        reason=MET if outcome == "met" else BREACHED)


async def settle_clocks(rt: Runtime, now: str) -> None:
    """Settle every running clock at `now`: an Encompass clock whose incident reached a subscriber of the
    protocol's role before the clock was due is met (the delivered log's times); a clock past due is breached (the
    hub is told, IG can see both)."""
    rules = rt.protocol.hub
    running = await blocking(rt.history.clocks_to_settle, now)
    if not running:
        return
    schools = [s.name for s in rt.protocol.subscribers.values() if s.role == rules.encompass_role]
    incidents = [c.event_id for c in running if c.kind == "encompass"]
    reached = await blocking(rt.delivered.sent_at, schools, incidents) if schools and incidents else {}
    settled = settle(running, reached, now)
    if not settled.met and not settled.breached:
        return
    breaches = [breach_event(c, SCHEMA_VERSION, now) for c in settled.breached]
    await _publish(rt, breaches)
    await blocking(rt.history.settle, settled.met, settled.breached, now)
    await rt.emit_audit([_clock_audit(rt, c, "met", at) for c, at in settled.met]
                        + [_clock_audit(rt, c, "breached", now) for c in settled.breached]
                        + [_published_audit(rt, e, now) for e in breaches])
    for clock, _ in settled.met:
        rt.metrics.hub_clocks.labels(clock.kind, "met").inc()
    for clock in settled.breached:
        rt.metrics.hub_clocks.labels(clock.kind, "breached").inc()
        log.warning("hub_clock_breached", clock=clock.kind, event_id=clock.event_id)
