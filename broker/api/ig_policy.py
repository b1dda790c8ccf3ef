"""Policy questions for IG staff over HTTP: explain a decision, and the protocol in force."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi import Path as PathParam
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from broker.aio import blocking
from broker.api.auth import Principal, require
from broker.policy import explain, format_explanation
from broker.policy.codes import LAWFUL_BASIS
from broker.schema.validate import validate_event
from broker.service.as_decided import (
    explain_recorded,
    format_recorded,
    recorded_decision,
    recorded_event,
    register_context,
)
from broker.service.ports import IgPolicyPorts

router = APIRouter(prefix="/v1/ig/policy", tags=["information governance"])
Ig = Annotated[Principal, Depends(require("ig_auditor"))]


class ExplainBody(BaseModel):
    # a subscriber name's shape: never free text echoed. Optional with decision_id (the record names it).
    subscriber: str | None = Field(None, pattern=r"^[a-z][a-z0-9_-]{1,48}$")
    event: dict[str, Any]
    format: Literal["json", "text"] = "json"
    # Explain as decided: this recorded decision about the event, re-derived under today's protocol with the
    # registers as they were at its time where they keep history (`as_decided` says which facts are "now").
    decision_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,100}$")


@router.post("/explain", summary="Why a subscriber would (not) receive this canonical event, field by field",
             responses={422: {"description": "The event is not a canonical event (each field named, no value)"}})
def explain_decision(request: Request, body: ExplainBody, principal: Ig) -> Any:  # def: all blocking (broker/aio.py)
    """Only canonical events are explained: the engine decides over events the schema admitted, and an arbitrary
    object (a `subject` that is a string, a `child` that is a list) made it fail with a 500. The schema's findings
    are paths and reasons, never values."""
    try:
        problems = validate_event(body.event)
    except ValueError:  # jsonschema-rs: "Recursion limit reached" for an event nested hundreds deep
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, {"reason": "not a canonical event", "fields": [
            {"field": "", "reason": "nested too deeply"}]}) from None
    if problems:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            {"reason": "not a canonical event", "fields": [
                                {"field": p.field, "reason": p.reason} for p in problems[:50]]})
    rt: IgPolicyPorts = request.app.state.runtime
    if body.decision_id is not None:
        record = recorded_decision(rt.audit_store, body.decision_id, body.event.get("event_id"))
        recorded = explain_recorded(rt, rt.protocol, record, body.event)
        if body.format == "text":
            return PlainTextResponse(format_recorded(recorded) + format_explanation(recorded))
        return recorded
    if body.subscriber is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, {"reason": "give subscriber or decision_id",
                                                                   "fields": [{"field": "subscriber",
                                                                               "reason": "required"}]})
    # the consent, case and determinations registers for the child as they are NOW (explain_recorded, with a
    # decision_id, gives the determinations as they were), read as the share stage reads them (service/facts.py)
    consent, facts = register_context(rt, body.event)
    result = explain(rt.protocol, body.event, body.subscriber, consent, facts=facts)
    result["as_of"] = "now: the consent, case and determinations registers' state at this request"
    if body.format == "text":
        return PlainTextResponse(format_explanation(result))
    return result


@router.get("/decisions/{decision_id}/explain",
            summary="Explain a recorded decision as decided, and whether today's protocol decides the same")
async def explain_as_decided(request: Request, principal: Ig,
                             decision_id: Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")],
                             format: Literal["json", "text"] = "json") -> Any:
    """The decision's audit record gives the event id, subscriber and protocol version; the event is read back from
    the events topic (404 once retention or erasure took it: POST /explain with the event and decision_id then);
    the decision is made again under today's protocol with the determinations in force at its time and consent and
    case status as the registers hold them now (`as_decided.as_of` says which is which)."""
    rt: IgPolicyPorts = request.app.state.runtime
    record = await blocking(recorded_decision, rt.audit_store, decision_id)
    event = await recorded_event(rt, record["event_id"])
    result = await blocking(explain_recorded, rt, rt.protocol, record, event)
    if format == "text":
        return PlainTextResponse(format_recorded(result) + format_explanation(result))
    return result


@router.get("/protocol", summary="The protocol in force: the agreement's furniture, partners, subscribers and rules")
async def protocol(request: Request, principal: Ig) -> dict[str, Any]:
    """What IG staff check the sharing against: controllers and the joint-controller arrangement, the DPIA, the
    appropriate policy documents, retention per class, DPO / SIRO / Caldicott guardian mailboxes, review, breach and
    subject-rights routing (`governance`, null when the protocol has none), then the partners, subscribers and rules
    with both controllers' bases. Protocol data only, never a record's value."""
    p = request.app.state.runtime.protocol
    return {"id": p.id, "version": p.version, "title": p.title, "effective_from": p.effective_from,
            "review_by": p.review_by, "owner": p.owner,
            "governance": p.governance.as_dict() if p.governance else None,
            "partners": [{"id": x.id, "name": x.name, "agency": x.agency, "role": x.role} for x in p.partners.values()],
            "subscribers": [{"name": s.name, "role": s.role, "partner": s.partner, "purposes": list(s.purposes),
                             "delivery": s.delivery, "regime": s.regime} for s in p.subscribers.values()],
            "rules": [{"id": r.id, "description": r.description, "purpose": r.purpose,
                       "subscribers": list(r.subscribers), "event_types": list(r.event_type_patterns),
                       "lawful_basis": list(r.lawful_basis),
                       "recipient_basis": list(r.recipient_basis or r.lawful_basis),
                       "requires_human_decision": r.requires_human_decision} for r in p.rules],
            # each lawful basis code the rules cite, in words, so the page shows the law, not codes
            "bases": {c: LAWFUL_BASIS[c] for r in p.rules for c in (*r.lawful_basis, *(r.recipient_basis or ()))
                      if c in LAWFUL_BASIS}}
