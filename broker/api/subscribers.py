"""Delivery over HTTP: pull with cursor and acknowledgement, and a server-sent events stream.

A subscriber key reads only its own stream; what it reads is sealed to its public key (open it with
broker.crypto.client.SubscriberClient). Every read is audit-logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from broker.api.auth import Principal, require
from broker.clock import now_iso
from broker.service.delivery import BadCursor, decode_cursor, encode_cursor
from broker.service.share import delivery_view

router = APIRouter(prefix="/v1/subscribers", tags=["delivery"])
Subscriber = Annotated[Principal, Depends(require("subscriber", scope_param="name"))]


class Ack(BaseModel):
    cursor: str


def _topic(request: Request, name: str) -> str:
    rt = request.app.state.runtime
    if name not in rt.protocol.subscribers:  # unknown subscriber: nothing to read (fail closed)
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such subscriber in the protocol")
    return rt.settings.topics.deliver(name)


async def _read(request: Request, name: str, after: str | None, limit: int) -> dict[str, Any]:
    rt = request.app.state.runtime
    topic = _topic(request, name)
    try:
        cursor = decode_cursor(after if after is not None else rt.cursors.get(name))
    except BadCursor as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    records, position = await rt.delivery_reader.read(topic, cursor, limit)
    views = [delivery_view(record) for record in records]
    keep = rt.first_served.keep(name, [(v["event_id"], v["partition"], v["offset"]) for v in views])
    deliveries, running = [], dict(cursor)
    for view, kept in zip(views, keep, strict=True):
        running[view["partition"]] = view["offset"] + 1
        if kept:
            deliveries.append({**view, "cursor": encode_cursor(running)})
        else:  # a redelivered copy of an event this subscriber was already served: skipped, the cursor moves on
            rt.metrics.duplicates.labels(name).inc()
    if deliveries:
        now = now_iso()
        await rt.emit_audit([rt.audit_record("delivery_read", time=now, actor=f"subscriber:{name}", subscriber=name,
                                             event_id=d["event_id"], decision_id=d["decision_id"])
                             for d in deliveries])
    return {"deliveries": deliveries, "next_cursor": encode_cursor(position)}


@router.get("/{name}/events", summary="Pull sealed deliveries after a cursor")
async def pull(request: Request, name: str, principal: Subscriber,
               after: Annotated[str | None, Query(max_length=2000, description="Cursor from a previous pull; "
                                                  "omitted: resume from the last acknowledged cursor.")] = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    return await _read(request, name, after, limit)


@router.post("/{name}/ack", summary="Acknowledge everything up to a cursor")
async def ack(request: Request, name: str, body: Ack, principal: Subscriber) -> dict[str, str]:
    _topic(request, name)
    try:
        decode_cursor(body.cursor)
    except BadCursor as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    rt = request.app.state.runtime
    rt.cursors.put(name, body.cursor, now_iso())
    return {"acknowledged": body.cursor}


@router.get("/{name}/stream", summary="Server-sent events: deliveries as they arrive",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def stream(request: Request, name: str, principal: Subscriber,
                 after: Annotated[str | None, Query(max_length=2000)] = None) -> StreamingResponse:
    _topic(request, name)

    async def events() -> AsyncIterator[bytes]:
        cursor = after
        while not await request.is_disconnected():
            page = await _read(request, name, cursor, 100)
            cursor = page["next_cursor"]
            for delivery in page["deliveries"]:
                yield (b"event: delivery\nid: " + delivery["cursor"].encode() + b"\ndata: " + orjson.dumps(delivery)
                       + b"\n\n")
            if not page["deliveries"]:
                yield b": keep-alive\n\n"
                await asyncio.sleep(0.5)

    return StreamingResponse(events(), media_type="text/event-stream")
