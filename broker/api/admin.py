"""Administrative actions: consent register, crypto-shredding, dead-letter reprocessing. Each is audit-logged."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any, Literal

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from pydantic import BaseModel, Field

from broker.api.auth import Principal, require
from broker.clock import now_iso
from broker.crypto import CryptoError
from broker.policy import ConsentState
from broker.service.erasure import announce_owed, erase_child, key_shred_records, known_child
from broker.service.reprocess import DeadLetterErased, DeadLetterNotFound, reprocess

router = APIRouter(prefix="/v1/admin", tags=["admin"])
Admin = Annotated[Principal, Depends(require("admin"))]
TOKEN = r"^lt[0-9]{1,9}_[A-Za-z0-9_-]{20,64}$"  # key version: 9 digits at most (a 64-bit int is 19)
DEADLETTER_ID = r"^[0-9a-fA-F-]{36}$"  # a UUID: anything else is a 422 and never echoed in the 404


class ConsentBody(BaseModel):
    status: Literal["given", "refused", "withdrawn", "not_sought", "not_applicable", "unknown"]
    objection: bool = False
    recorded_on: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")


@router.put("/consent/{subject}", summary="Record consent, its withdrawal, or an objection, for one child")
async def put_consent(request: Request, subject: Annotated[str, Path(pattern=TOKEN)], body: ConsentBody,
                      principal: Admin) -> dict[str, Any]:
    """Recorded under the child's current token: a token the identity register has since folded into another
    child's (see `person.linked`) names the same child.

    Only for a child the broker knows (the identity register or the audit log holds the token), else 404: a token
    is an opaque pseudonym no one can proofread, and a mistyped one would record an objection against nobody while
    the answer said it was recorded. An objection that comes before any record belongs in the agency's record
    (the canonical event's `consent`), which arrives with the child's first record."""
    rt = request.app.state.runtime
    if not known_child(rt.identities, rt.audit_store, subject):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no record of this child: consent is recorded only for a "
                            "token the broker has received records about (check the token)")
    current = rt.identities.current(subject)
    rt.consent.put(current, ConsentState(body.status, body.objection, body.recorded_on))
    await rt.emit_audit([rt.audit_record("admin_action", time=now_iso(), actor=principal.actor, subject=current,
                                         action="consent.record", reason=f"consent {body.status}"
                                         + (", objection recorded" if body.objection else ""))])
    return {"subject": current, **body.model_dump()}


@router.post("/keys/shred/{subject}", summary="Crypto-shred one child's data keys (erasure, retention expiry)")
async def shred(request: Request, subject: Annotated[str, Path(pattern=TOKEN)], principal: Admin) -> dict[str, Any]:
    """Every token the child has carried (the identity register's aliases), so a merge cannot hide old records.
    Recorded in the erasure register (HTTP never serves the child's deliveries again, intake refuses resends of its
    old records) and announced to the subscribers that received its data (`person.erased`): see
    broker/pipeline/erasure.py."""
    rt = request.app.state.runtime
    # as for consent: a mistyped token would record an erasure of nobody
    if not known_child(rt.identities, rt.audit_store, subject, rt.keys):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no record of this child: erasure is recorded only for a "
                            "token the broker has received records about (check the token)")
    reports, summary = erase_child(rt.keys, rt.erasures, rt.audit_store, rt.identities.aliases(subject),
                                   principal.actor)
    await rt.emit_audit(key_shred_records(reports, summary, principal.actor))
    # the notice stays owed if Kafka or the keys fail now; the service's notifier publishes it within seconds
    with contextlib.suppress(KafkaError, TimeoutError, CryptoError):
        async with asyncio.timeout(10):
            await announce_owed(rt, principal.actor)
    return summary


@router.post("/deadletters/{deadletter_id}/reprocess", summary="Run a dead letter's input through intake again")
async def reprocess_deadletter(request: Request, deadletter_id: Annotated[str, Path(pattern=DEADLETTER_ID)],
                               principal: Admin) -> dict[str, Any]:
    try:
        result = await reprocess(request.app.state.runtime, deadletter_id, principal.actor)
    except DeadLetterNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no reprocessable dead letter {exc}") from None
    except DeadLetterErased as exc:  # value-free: the dead letter's id only
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return {"deadletter_id": deadletter_id, "event_ids": result.event_ids,
            "rejections": [r.to_dict() for r in result.rejections]}
