"""POST /v1/hub/decisions: the MASH hub records its decision on a contact or referral.

The caller needs a `hub_decision` credential scoped to a hub subscriber of the protocol (a subscriber whose role is
`mash_hub`: `mash-broker apikeys create --role hub_decision --scope mash_hub`, or the identity provider's role
`mash.hub_decision.mash_hub`). Not `decision_maker`: that role decides whether a withheld share goes ahead, and is
held by agencies' DPOs for their own data too; a hub decision is a new record the broker then shares with other
agencies, a different power for a different team (README, "The hub's decision loop").

202 with the event ids once Kafka holds them (`mash.decision`, then one `mash.action` per action), as intake
answers; the protocol's feedback and coordination rules decide who receives what. Errors name fields, never values.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse

from broker.api.auth import Principal, authenticated
from broker.pipeline.hub_decision import HubDecision, hub_subscribers
from broker.service.hub import record_decision

router = APIRouter(prefix="/v1/hub", tags=["MASH hub"])
ROLE = "hub_decision"


async def hub_principal(request: Request,
                        grants: Annotated[tuple[Principal, ...], Depends(authenticated)]) -> Principal:
    """The caller's hub_decision grant for a hub subscriber of the protocol in force; 403 otherwise."""
    held = [p for p in grants if p.role == ROLE]
    if not held:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this endpoint needs the {ROLE} role")
    hubs = set(hub_subscribers(request.app.state.runtime.protocol.subscribers))
    for principal in held:
        if principal.scope in hubs:
            return principal
    raise HTTPException(status.HTTP_403_FORBIDDEN, "this credential is not for a hub subscriber of the protocol")


@router.post(
    "/decisions",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Record a MASH decision",
    description="The hub's decision on the contacts or referrals it names (their event ids): RAG rating, outcome, "
    "lead partner and professional, the partners whose information was used and who referred, the actions asked of "
    "each partner, the rationale (narrative: encrypted, kept to the hub by the sample protocol). Published as "
    "`mash.decision` and one `mash.action` per action; the protocol's rules tell each referrer and contributor the "
    "outcome and each partner named in an action what it must do. A resend of the same decision is the same events.",
    responses={403: {"description": "Not a hub_decision credential for a hub subscriber of the protocol"},
               404: {"description": "subject_token names no child the broker has received records about"},
               409: {"description": "The child was erased"},
               422: {"description": "A field is invalid, a partner is not the protocol's, or the child's identifiers "
                                    "are not the child's the token names"},
               503: {"description": "Kafka or the encryption keys unavailable: nothing was recorded, resend"}},
)
async def post_decision(decision: HubDecision, request: Request,
                        principal: Annotated[Principal, Depends(hub_principal)]) -> JSONResponse:
    rt = request.app.state.runtime
    assert principal.scope is not None  # hub_principal returns a scoped grant
    result = await record_decision(rt, decision, hub=principal.scope, actor=principal.actor)
    content: dict[str, Any] = {
        "accepted": len(result.event_ids),
        "events": [{"event_id": i, "event_type": t} for i, t in zip(result.event_ids, result.event_types,
                                                                   strict=True)],
        "rejections": [r.to_dict() for r in result.rejections],
    }
    if not result.event_ids:  # the intake plan refused every event (an erased child's old record...)
        content["detail"] = "nothing was recorded; see rejections"
        return JSONResponse(content, status.HTTP_422_UNPROCESSABLE_CONTENT)
    return JSONResponse(content, status.HTTP_202_ACCEPTED)
