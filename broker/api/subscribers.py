"""Delivery over HTTP: pull with cursor and acknowledgement, and a server-sent events stream.

A subscriber key reads only its own stream; what it reads is sealed to its public key (open it with
broker.crypto.client.SubscriberClient). Every read is audit-logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from broker.aio import blocking
from broker.api.auth import Principal, require
from broker.api.subscriber_models import Acknowledged, DeliveryPage, problems
from broker.clock import now_iso
from broker.errors import Conflict, NotFound
from broker.logging import get_logger
from broker.service.delivery import CURSOR_PREFIX, BadCursor, behind, decode_legacy_cursor
from broker.service.erasure import unerased
from broker.service.ports import ServingPorts
from broker.service.share import delivery_view

log = get_logger("mash.delivery")
router = APIRouter(prefix="/v1/subscribers", tags=["delivery"])
Subscriber = Annotated[Principal, Depends(require("subscriber", scope_param="name"))]


class UnknownSubscriber(NotFound, LookupError):
    """The path names no subscriber of the protocol (404): nothing to read, fail closed."""

    def __init__(self) -> None:
        super().__init__("no such subscriber in the protocol")


class AckBehind(Conflict, ValueError):
    """An acknowledgement behind the acknowledged cursor (409): acknowledgements only move forward."""

    def __init__(self, partitions: list[int]) -> None:
        super().__init__(f"cursor is behind the acknowledged one (partition {', '.join(map(str, partitions))}): "
                         "acknowledgements only move forward; read again with `after` instead")


class Ack(BaseModel):
    cursor: str = Field(min_length=1, max_length=2000, description="A cursor a pull or the stream issued.")


def _acknowledged(rt: Any, name: str) -> dict[int, int]:
    """Where a read without `after` resumes. A cursor acknowledged before cursors were signed is honoured if its
    numbers are in range; one that is not (an old hostile ack) is ignored, so the read starts from the beginning:
    duplicates a subscriber can drop by event id, never a skipped delivery, never a 500."""
    stored = rt.cursors.get(name)
    if not stored:
        return {}
    try:
        return rt.cursor_codec.open(name, stored) if stored.startswith(CURSOR_PREFIX) else \
            decode_legacy_cursor(stored)
    except BadCursor:
        log.warning("acknowledged_cursor_ignored", subscriber=name, reason="not a usable cursor; reading from the "
                    "start of the delivery topic")
        return {}


def _positions(rt: Any, name: str, cursor: str | None) -> dict[int, int]:
    """A cursor the caller presents (None: the acknowledged one): 400 if this API never issued it to this
    subscriber, 410 if it points at positions Kafka no longer holds."""
    if cursor is None:
        return _acknowledged(rt, name)
    return rt.cursor_codec.open(name, cursor)  # BadCursor: 400, StaleCursor: 410 (broker/api/errors.py)


def _topic(request: Request, name: str) -> str:
    rt: ServingPorts = request.app.state.runtime
    if name not in rt.protocol.subscribers:  # unknown subscriber: nothing to read (fail closed)
        raise UnknownSubscriber()
    return rt.settings.topics.deliver(name)


async def _read(request: Request, name: str, after: str | None, limit: int, actor: str) -> dict[str, Any]:
    rt: ServingPorts = request.app.state.runtime
    topic = _topic(request, name)
    cursor = await blocking(_positions, rt, name, after)
    records, position = await rt.delivery_reader.read(topic, cursor, limit)
    deliveries = await blocking(_to_serve, rt, name, records, cursor)
    if deliveries:
        now = now_iso()
        await rt.emit_audit([rt.audit_record("delivery_read", time=now, actor=actor, subscriber=name,
                                             event_id=d["event_id"], decision_id=d["decision_id"])
                             for d in deliveries])
    return {"deliveries": deliveries, "next_cursor": rt.cursor_codec.issue(name, position)}


def _to_serve(rt: Any, name: str, records: list[Any], cursor: dict[int, int]) -> list[dict[str, Any]]:
    """The records read, as deliveries with their cursors: less an erased child's (never served again; the cursor
    moves past them) and copies of events this subscriber was served already (the first-served register)."""
    views = [delivery_view(record) for record in unerased(rt, records)]
    keep = rt.first_served.keep(name, [(v["event_id"], v["partition"], v["offset"]) for v in views])
    deliveries, running = [], dict(cursor)
    for view, kept in zip(views, keep, strict=True):
        running[view["partition"]] = view["offset"] + 1
        if kept:
            deliveries.append({**view, "cursor": rt.cursor_codec.issue(name, running)})
        else:  # a redelivered copy of an event this subscriber was already served: skipped, the cursor moves on
            rt.metrics.duplicates.labels(name).inc()
    return deliveries


# Answers every subscriber endpoint may give besides its own: who asks, and for which subscriber.
_ACCESS = {401: "Missing or unknown API key or access token", 403: "Not a subscriber key, or another subscriber's",
           404: "No such subscriber in the protocol"}


@router.get("/{name}/events", summary="Pull sealed deliveries after a cursor", response_model=DeliveryPage,
            responses=problems({**_ACCESS,
                                400: "`after` is not a cursor this API issued to this subscriber",
                                410: "`after` is from before Kafka lost its topics (or from an earlier, unsigned "
                                     "version): pull without `after` to resume from the acknowledged cursor"}))
async def pull(request: Request, name: str, principal: Subscriber,
               after: Annotated[str | None, Query(max_length=2000, description="Cursor from a previous pull; "
                                                  "omitted: resume from the last acknowledged cursor.")] = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    return await _read(request, name, after, limit, principal.actor)


@router.post("/{name}/ack", summary="Acknowledge everything up to a cursor", response_model=Acknowledged,
             responses=problems({**_ACCESS,
                                 400: "Not a cursor this API issued to this subscriber",
                                 409: "Behind the acknowledged cursor: acknowledgements only move forward",
                                 410: "From before Kafka lost its topics: resume without `after`"}))
def ack(request: Request, name: str, body: Ack, principal: Subscriber) -> dict[str, str]:  # def: all blocking
    """Only a cursor this API issued to this subscriber, in this Kafka epoch, and not behind the acknowledged one:
    an acknowledgement is where every later read without `after` resumes, so it can never skip a delivery."""
    _topic(request, name)
    rt: ServingPorts = request.app.state.runtime
    positions = _positions(rt, name, body.cursor)

    def not_behind(current: str | None) -> None:
        # Only a signed acknowledged cursor is a bar: an unsigned one from before signing existed cannot be trusted
        # to be a position that was ever served, so the first signed acknowledgement replaces it.
        if not current or not current.startswith(CURSOR_PREFIX):
            return
        if partitions := behind(positions, _acknowledged(rt, name)):
            raise AckBehind(list(partitions))

    rt.cursors.put_if(name, body.cursor, now_iso(), not_behind)
    return {"acknowledged": body.cursor}


@router.get("/{name}/stream", summary="Server-sent events: deliveries as they arrive",
            response_class=StreamingResponse,
            responses={200: {"description": "`text/event-stream`: per delivery an `event: delivery` whose `id` is "
                             "its cursor and whose `data` is one Delivery as JSON; `: keep-alive` comments while "
                             "idle. A reconnecting client sends `Last-Event-ID` and resumes after it.",
                             "content": {"text/event-stream": {
                                 "schema": {"type": "string", "description": "SSE frames; data: Delivery"},
                                 "x-sse-data": {"$ref": "#/components/schemas/Delivery"}}}},
                       **problems({**_ACCESS, 400: "`after` or `Last-Event-ID` is not a cursor this API issued",
                                   410: "The cursor is from before Kafka lost its topics: reconnect without one"})})
async def stream(request: Request, name: str, principal: Subscriber,
                 after: Annotated[str | None, Query(max_length=2000)] = None,
                 last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=2000,
                                                             description="A reconnecting EventSource sends the id of "
                                                             "the last event it saw (the cursor); used when `after` "
                                                             "is absent.")] = None) -> StreamingResponse:
    _topic(request, name)
    start = after if after is not None else last_event_id
    await blocking(_positions, request.app.state.runtime, name, start)  # a bad cursor: 400/410 now, not mid-stream

    async def events() -> AsyncIterator[bytes]:
        cursor = start
        while not await request.is_disconnected():
            page = await _read(request, name, cursor, 100, principal.actor)
            cursor = page["next_cursor"]
            for delivery in page["deliveries"]:
                yield (b"event: delivery\nid: " + delivery["cursor"].encode() + b"\ndata: " + orjson.dumps(delivery)
                       + b"\n\n")
            if not page["deliveries"]:
                yield b": keep-alive\n\n"
                await asyncio.sleep(0.5)

    return StreamingResponse(events(), media_type="text/event-stream")
