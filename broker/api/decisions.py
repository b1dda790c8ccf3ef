"""Recorded human decisions: the referrals waiting for a person, and the person's decision on one.

A share the law routes to a person (an objection, refusal or withdrawal under a rule that cites no duty to disclose)
is withheld and referred (broker/service/decisions.py). A `decision_maker` credential acts for one partner of the
protocol (its scope: `mash-broker apikeys create --role decision_maker --scope exampleshire-csc`, or the identity
provider's role `mash.decision_maker.<partner>`); it sees and decides the referrals that partner is named for (the
hub partner for every referral, the owning agency's safeguarding partner for its own data: broker/policy/referral.py).
Answers carry ids, tokens, codes and value-free text, never an event's personal fields.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, Field

from broker.api.auth import Principal, authenticated
from broker.policy.referral import Withholding
from broker.service.decisions import DecisionRefused, decide_referral

router = APIRouter(prefix="/v1/decisions", tags=["human decisions"])
REFERRAL_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
ROLE = "decision_maker"


async def decision_makers(grants: tuple[Principal, ...] = Depends(authenticated)) -> tuple[Principal, ...]:
    """The caller's decision_maker grants (a token may carry one per partner); 403 without any."""
    held = tuple(p for p in grants if p.role == ROLE and p.scope)
    if not held:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this endpoint needs the {ROLE} role")
    return held


Deciders = Annotated[tuple[Principal, ...], Depends(decision_makers)]


class DecisionBody(BaseModel):
    decision: Literal["share", "share_in_part", "withhold"] = Field(
        description="share: as the rule's field rules release it; share_in_part: the same minus what is named "
                    "below; withhold: nothing is sent (the decision not to share is recorded and audited)")
    reason: str = Field(min_length=1, max_length=2000, description="Why, in words that name no one: required, one "
                        "line, no '@' and no run of 10 digits (it goes to the audit log)")
    withhold_classifications: list[Annotated[str, Field(max_length=50)]] = Field(
        default_factory=list, max_length=20, description="share_in_part: classifications withheld (health, ...)")
    withhold_paths: list[Annotated[str, Field(max_length=300)]] = Field(
        default_factory=list, max_length=200, description="share_in_part: schema field paths withheld, a path "
                                                          "covering every field below it ('[]' for list items)")


@router.get("/referrals", summary="Referrals waiting for (or given) a recorded human decision")
async def list_referrals(request: Request, principals: Deciders,
                         state: Annotated[Literal["pending", "share", "share_in_part", "withhold", "all"],
                                          Query(alias="status")] = "pending",
                         limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    """The referrals the caller's partners may decide, oldest first: ids, the child's token, event type, rule,
    restriction, the bases relied on and the engine's reason. Never the event's content."""
    rt = request.app.state.runtime
    partners = {p.scope for p in principals if p.scope}
    found = rt.referrals.listed(status=None if state == "all" else state, deciders=partners, limit=limit)
    return {"referrals": [r.view() for r in found], "count": len(found)}


@router.get("/referrals/{referral_id}", summary="One referral")
async def get_referral(request: Request, referral_id: Annotated[str, Path(pattern=REFERRAL_ID)],
                       principals: Deciders) -> dict[str, Any]:
    rt = request.app.state.runtime
    found = rt.referrals.get(referral_id)
    partners = {p.scope for p in principals if p.scope}
    if found is None or not partners & set(found.deciders):  # not yours to see: as if it did not exist
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such referral for this credential's partner")
    return found.view()


@router.post("/referrals/{referral_id}", summary="Decide a referral: share, share in part, or withhold, with reasons",
             responses={403: {"description": "not a decider for this referral"}, 404: {"description": "no such "
                        "referral"}, 409: {"description": "already decided"}, 422: {"description": "the choice, "
                        "what to withhold or the reason cannot stand (named by position, never quoted)"},
                        503: {"description": "decision recorded, delivery not possible now"}})
async def decide(request: Request, referral_id: Annotated[str, Path(pattern=REFERRAL_ID)], body: DecisionBody,
                 principals: Deciders) -> dict[str, Any]:
    """Recorded once (a second decision is 409) and audited (`human_decision`, with the caller as actor and the
    reason). On share or share in part the event is delivered to the subscriber at once, released under the rule's
    field rules minus what was withheld; an erased child's event is never delivered."""
    rt = request.app.state.runtime
    partners = {p.scope for p in principals if p.scope}
    referral = rt.referrals.get(referral_id)
    # the actor: the grant that entitles the caller to decide this referral (a token may hold several)
    entitled = [p for p in principals if referral is not None and p.scope in referral.deciders] or list(principals)
    try:
        outcome = await decide_referral(
            rt, referral_id, choice=body.decision, reason=body.reason,
            withholding=Withholding(tuple(dict.fromkeys(body.withhold_classifications)),
                                    tuple(dict.fromkeys(body.withhold_paths))),
            actor=entitled[0].actor, partners=partners)
    except DecisionRefused as exc:
        headers = {"Retry-After": "30"} if exc.status == 503 else None
        raise HTTPException(exc.status, str(exc), headers=headers) from None
    return outcome.view()
