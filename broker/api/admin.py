"""Administrative actions: consent register, crypto-shredding, dead-letter reprocessing. Each is audit-logged."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from pydantic import BaseModel, Field

from broker.api.auth import Principal, require
from broker.clock import now_iso
from broker.crypto.keystore import shred_child
from broker.policy import ConsentState
from broker.service.reprocess import DeadLetterNotFound, reprocess

router = APIRouter(prefix="/v1/admin", tags=["admin"])
Admin = Annotated[Principal, Depends(require("admin"))]
TOKEN = r"^lt[0-9]+_[A-Za-z0-9_-]{20,64}$"


class ConsentBody(BaseModel):
    status: Literal["given", "refused", "withdrawn", "not_sought", "not_applicable", "unknown"]
    objection: bool = False
    recorded_on: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")


@router.put("/consent/{subject}", summary="Record consent, its withdrawal, or an objection, for one child")
async def put_consent(request: Request, subject: Annotated[str, Path(pattern=TOKEN)], body: ConsentBody,
                      principal: Admin) -> dict[str, Any]:
    """Recorded under the child's current token: a token the identity register has since folded into another
    child's (see `person.linked`) names the same child."""
    rt = request.app.state.runtime
    current = rt.identities.current(subject)
    rt.consent.put(current, ConsentState(body.status, body.objection, body.recorded_on))
    await rt.emit_audit([rt.audit_record("admin_action", time=now_iso(), actor=principal.actor, subject=current,
                                         action="consent.record", reason=f"consent {body.status}"
                                         + (", objection recorded" if body.objection else ""))])
    return {"subject": current, **body.model_dump()}


@router.post("/keys/shred/{subject}", summary="Crypto-shred one child's data keys (erasure, retention expiry)")
async def shred(request: Request, subject: Annotated[str, Path(pattern=TOKEN)], principal: Admin) -> dict[str, Any]:
    """Every token the child has carried (the identity register's aliases), so a merge cannot hide old records."""
    rt = request.app.state.runtime
    reports, summary = shred_child(rt.keys, rt.identities.aliases(subject))
    await rt.emit_audit([rt.audit_record("key_shred", time=now_iso(), actor=principal.actor, subject=r.scope,
                                         count=r.data_keys, reason="crypto-shredding on request")
                         for r in reports if r.data_keys or r.scope == summary["subject"]])
    return summary


@router.post("/deadletters/{deadletter_id}/reprocess", summary="Run a dead letter's input through intake again")
async def reprocess_deadletter(request: Request, deadletter_id: str, principal: Admin) -> dict[str, Any]:
    try:
        result = await reprocess(request.app.state.runtime, deadletter_id, principal.actor)
    except DeadLetterNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no reprocessable dead letter {exc}") from None
    return {"deadletter_id": deadletter_id, "event_ids": result.event_ids,
            "rejections": [r.to_dict() for r in result.rejections]}
