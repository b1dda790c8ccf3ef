"""Policy questions for IG staff over HTTP: explain a decision, and the protocol in force."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from broker.api.auth import Principal, require
from broker.policy import explain, format_explanation

router = APIRouter(prefix="/v1/ig/policy", tags=["information governance"])
Ig = Annotated[Principal, Depends(require("ig_auditor"))]


class ExplainBody(BaseModel):
    subscriber: str
    event: dict[str, Any]
    format: Literal["json", "text"] = "json"


@router.post("/explain", summary="Why a subscriber would (not) receive this canonical event, field by field")
async def explain_decision(request: Request, body: ExplainBody, principal: Ig) -> Any:
    rt = request.app.state.runtime
    token = body.event.get("subject", {}).get("linkage", {}).get("token", "")
    result = explain(rt.protocol, body.event, body.subscriber, rt.consent_for(token) if token else None,
                     case_open=rt.cases.is_open(token) if token else None)
    if body.format == "text":
        return PlainTextResponse(format_explanation(result))
    return result


@router.get("/protocol", summary="The protocol in force: id, version, subscribers and rules")
async def protocol(request: Request, principal: Ig) -> dict[str, Any]:
    p = request.app.state.runtime.protocol
    return {"id": p.id, "version": p.version, "title": p.title, "effective_from": p.effective_from,
            "subscribers": [{"name": s.name, "role": s.role, "partner": s.partner, "purposes": list(s.purposes),
                             "delivery": s.delivery} for s in p.subscribers.values()],
            "rules": [{"id": r.id, "description": r.description, "purpose": r.purpose,
                       "lawful_basis": list(r.lawful_basis)} for r in p.rules]}
