"""Recorded human decisions: the referrals waiting for a person, and the person's decision on one.

A share the law routes to a person (an objection, refusal or withdrawal under a rule that cites no duty to disclose)
is withheld and referred (broker/service/decisions.py). A `decision_maker` credential acts for one partner of the
protocol (its scope: `mash-broker apikeys create --role decision_maker --scope exampleshire-csc`, or the identity
provider's role `mash.decision_maker.<partner>`); it sees and decides the referrals that partner is named for (the
hub partner for every referral, the owning agency's safeguarding partner for its own data: broker/policy/referral.py).
Answers carry ids, tokens, codes and value-free text, never an event's personal fields.

Recorded determinations (`/v1/decisions/subjects/{subject}/...`): facts a rule may rely on that no agency's record
carries, kept in the determinations register (broker/stores/determinations.py). An s47(9) request is recorded or
withdrawn by a decision maker of the requesting local authority's partner (or an administrator); an adult-at-risk
determination by any decision maker. Unknown child: 404 and nothing recorded.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from broker.aio import blocking
from broker.api.auth import Principal, authenticated
from broker.policy.referral import Withholding
from broker.service.decisions import decide_referral
from broker.service.determinations import determine_adult, listed, record_s47, withdraw_adult, withdraw_s47
from broker.service.ports import DecidingPorts
from broker.stores.determinations import AT_RISK_REASONS, NOT_AT_RISK_REASONS, WITHDRAW_REASONS
from broker.stores.determinations import REFERENCE as REFERENCE_PATTERN

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
def list_referrals(request: Request, principals: Deciders,  # def: all blocking (broker/aio.py)
                   state: Annotated[Literal["pending", "share", "share_in_part", "withhold", "all"],
                                    Query(alias="status")] = "pending",
                   limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    """The referrals the caller's partners may decide, oldest first: ids, the child's token, event type, rule,
    restriction, the bases relied on and the engine's reason. Never the event's content."""
    rt: DecidingPorts = request.app.state.runtime
    partners = {p.scope for p in principals if p.scope}
    found = rt.referrals.listed(status=None if state == "all" else state, deciders=partners, limit=limit)
    return {"referrals": [r.view() for r in found], "count": len(found)}


@router.get("/referrals/{referral_id}", summary="One referral")
def get_referral(request: Request, referral_id: Annotated[str, Path(pattern=REFERRAL_ID)],
                 principals: Deciders) -> dict[str, Any]:  # def: all blocking (broker/aio.py)
    rt: DecidingPorts = request.app.state.runtime
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
    rt: DecidingPorts = request.app.state.runtime
    partners = {p.scope for p in principals if p.scope}
    referral = await blocking(rt.referrals.get, referral_id)
    # the actor: the grant that entitles the caller to decide this referral (a token may hold several)
    entitled = [p for p in principals if referral is not None and p.scope in referral.deciders] or list(principals)
    # DecisionRefused answers with its own status (503 with Retry-After 30): broker/api/errors.py
    outcome = await decide_referral(
        rt, referral_id, choice=body.decision, reason=body.reason,
        withholding=Withholding(tuple(dict.fromkeys(body.withhold_classifications)),
                                tuple(dict.fromkeys(body.withhold_paths))),
        actor=entitled[0].actor, partners=partners)
    return outcome.view()


# --- recorded determinations (broker/stores/determinations.py) ----------------------------------------------------
# Facts a rule may rely on that no agency's record carries: an s47(9) request (the local authority calls upon named
# partners to assist its s47 enquiry) and an adult-at-risk determination. Recorded under the child's current token,
# only for a child the broker knows (404 otherwise: nothing recorded), audited as `determination`.
TOKEN = r"^lt[0-9]{1,9}_[A-Za-z0-9_-]{20,64}$"
ADMIN = "admin"
PARTNER_ID = r"^[a-z0-9][a-z0-9-]{0,79}$"
REFERENCE = REFERENCE_PATTERN.pattern
CODE = r"^[a-z0-9_]{1,60}$"  # a reason code: which codes stand is the service's check (422, listing them)


async def recorders(grants: tuple[Principal, ...] = Depends(authenticated)) -> tuple[Principal, ...]:
    """The caller's decision_maker grants, or its admin grant; 403 without either."""
    held = tuple(p for p in grants if (p.role == ROLE and p.scope) or p.role == ADMIN)
    if not held:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this endpoint needs the {ROLE} (or {ADMIN}) role")
    return held


Recorders = Annotated[tuple[Principal, ...], Depends(recorders)]


def _acting_for(principals: tuple[Principal, ...]) -> set[str] | None:
    """The partners the caller acts for; None for an administrator (who acts for none and may name any)."""
    if any(p.role == ADMIN for p in principals):
        return None
    return {p.scope for p in principals if p.scope}


class S47RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")  # the reference pattern looks ahead
    partners: list[Annotated[str, Field(pattern=PARTNER_ID)]] = Field(
        min_length=1, max_length=50, description="Protocol partner ids the local authority calls upon to assist "
        "its s47 enquiry (Children Act 1989 s47(9)); not the police (s47(11) does not list them)")
    requested_by: str | None = Field(None, pattern=PARTNER_ID, description="The requesting local authority's "
                                     "partner id: the caller's own partner by default (an administrator must name "
                                     "it)")
    enquiry_ref: str | None = Field(None, pattern=REFERENCE, description="The enquiry's reference in the local "
                                    "authority's system: a short code, no spaces, no run of 10 digits")


class WithdrawBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(pattern=CODE, description="Why it ends before the case does: " + ", ".join(WITHDRAW_REASONS))


class AdultAtRiskBody(BaseModel):
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")
    at_risk: bool = Field(description="true: an adult at risk (Care Act 2014 s42(1), DPA 2018 Sch 1 para 18(3)); "
                                      "false: determined not to be")
    reason: str = Field(
        pattern=CODE, description="at_risk true: " + ", ".join(AT_RISK_REASONS) + "; at_risk false: "
                    + ", ".join(NOT_AT_RISK_REASONS))
    reference: str | None = Field(None, pattern=REFERENCE, description="A reference in the recorder's system "
                                  "(a short code, no spaces, no run of 10 digits): never a name or narrative")


_RECORDING: dict[int | str, dict[str, Any]] = {
    403: {"description": "not a decision maker (of the requesting local authority, for an s47(9) request)"},
    404: {"description": "no record of this child: nothing recorded"},
    409: {"description": "the child was erased, or the record is no longer in force"},
    422: {"description": "a field cannot stand (named by position, never quoted)"}}


@router.get("/subjects/{subject}/determinations", summary="The s47(9) requests and adult-at-risk determinations "
            "recorded about a child", responses={404: _RECORDING[404]})
def list_determinations(request: Request, subject: Annotated[str, Path(pattern=TOKEN)],
                        principals: Recorders) -> dict[str, Any]:  # def: all blocking (broker/aio.py)
    """Every record under any token the child carried, in force or ended, oldest first: partner ids, codes,
    references, who recorded and ended each and when."""
    current, found = listed(_rt(request), subject)
    return {"subject": current, "determinations": found, "count": len(found)}


@router.post("/subjects/{subject}/s47-requests", status_code=status.HTTP_201_CREATED,
             summary="Record an s47(9) request: the local authority calls upon partners to assist its s47 enquiry",
             responses=_RECORDING)
async def request_s47(request: Request, subject: Annotated[str, Path(pattern=TOKEN)], body: S47RequestBody,
                      principals: Recorders) -> dict[str, Any]:
    """Only a decision maker of the local authority's partner (or an administrator, naming `requested_by`). While
    it is in force and the case is not closed, a rule with the `s47_request` condition shares with the partners
    named; it ends when withdrawn, or when the case register shows the child's case closed."""
    acting_for = _acting_for(principals)
    mine = sorted(acting_for or ())
    requested_by = body.requested_by or (mine[0] if len(mine) == 1 else None)
    if requested_by is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            "requested_by: name the requesting local authority's partner id")
    entitled = [p for p in principals if p.role == ADMIN or p.scope == requested_by] or list(principals)
    made = await record_s47(_rt(request), subject, requested_by=requested_by,
                            partners=body.partners, enquiry_ref=body.enquiry_ref, actor=entitled[0].actor,
                            acting_for=acting_for)
    return made.view()


@router.post("/s47-requests/{request_id}/withdraw", summary="Withdraw an s47(9) request", responses=_RECORDING)
async def withdraw_s47_request(request: Request, request_id: Annotated[str, Path(pattern=REFERRAL_ID)],
                               body: WithdrawBody, principals: Recorders) -> dict[str, Any]:
    """By a decision maker of the requesting local authority, or an administrator."""
    rt: DecidingPorts = request.app.state.runtime
    acting_for = _acting_for(principals)
    found = await blocking(rt.determinations.s47_request, request_id)
    entitled = [p for p in principals if p.role == ADMIN or (found is not None and p.scope == found.requested_by)]
    ended = await withdraw_s47(rt, request_id, reason=body.reason, actor=(entitled or list(principals))[0].actor,
                               acting_for=acting_for)
    return ended.view()


@router.put("/subjects/{subject}/adult-at-risk", summary="Record an adult-at-risk determination (Care Act 2014 "
            "s42(1), DPA 2018 Sch 1 para 18(3))", responses=_RECORDING)
async def put_adult_at_risk(request: Request, subject: Annotated[str, Path(pattern=TOKEN)], body: AdultAtRiskBody,
                            principals: Deciders) -> dict[str, Any]:
    """By a decision maker. Supersedes the determination in force; `adult_at_risk` conditions hold only on a
    determination that the subject is at risk."""
    made = await determine_adult(_rt(request), subject, at_risk=body.at_risk, reason=body.reason,
                                 reference=body.reference, actor=principals[0].actor)
    return made.view()


@router.post("/subjects/{subject}/adult-at-risk/withdraw", summary="Withdraw the adult-at-risk determination in "
             "force", responses=_RECORDING)
async def withdraw_adult_at_risk(request: Request, subject: Annotated[str, Path(pattern=TOKEN)], body: WithdrawBody,
                                 principals: Deciders) -> dict[str, Any]:
    """By a decision maker: the subject is then undetermined (no `adult_at_risk` condition holds)."""
    ended = await withdraw_adult(_rt(request), subject, reason=body.reason,
                                 actor=principals[0].actor)
    return ended.view()


def _rt(request: Request) -> DecidingPorts:
    """What this router uses of the running broker (broker/service/ports.py)."""
    runtime: DecidingPorts = request.app.state.runtime
    return runtime
