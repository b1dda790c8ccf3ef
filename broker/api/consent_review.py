"""The first consent register's records, for IG review over HTTP: list them, and record a review of one child's.

Rows the first register held per child (a status and an objection flag) migrated as the child's data protection
consent and Art 21 objection, but a family's "no" recorded then may in law have been another kind (an objection,
a refusal of confidentiality consent or of a consensual service): broker/policy/consent_review.py. Until reviewed
the engine reads such a "no" the stricter way. An IG officer (`ig_auditor`) or an administrator lists the children
concerned (linkage tokens and codes, never a name) and records, once per child, what the "no" was or that the
migrated reading is right; each review is audited (`admin_action` `consent.v1_review`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from broker.aio import blocking
from broker.api.auth import Principal, authenticated
from broker.clock import now_iso
from broker.policy.consent_review import OUTCOMES
from broker.service.ports import ConsentReviewPorts

router = APIRouter(prefix="/v1/ig/consent", tags=["information governance"])
TOKEN = r"^lt[0-9]{1,9}_[A-Za-z0-9_-]{20,64}$"
REVIEWERS = ("ig_auditor", "admin")


async def reviewer(grants: tuple[Principal, ...] = Depends(authenticated)) -> Principal:
    """An IG officer or an administrator (either role; the first such grant is the audit's actor)."""
    held = [p for p in grants if p.role in REVIEWERS]
    if not held:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this endpoint needs the ig_auditor or admin role")
    return held[0]


Reviewer = Annotated[Principal, Depends(reviewer)]


class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["objection", "data_protection_refusal", "confidentiality_refusal", "service_agreement_refusal",
                     "confirmed"]
    reviewed_on: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")  # default: today


@router.get("/v1-records", summary="Children whose consent records came from the first register, for IG review")
def v1_records(request: Request, principal: Reviewer,  # def: all blocking (broker/aio.py)
               include_reviewed: Annotated[bool, Query(alias="all")] = False) -> dict[str, Any]:
    """Those awaiting review (a migrated refusal or objection, read the stricter way until reviewed), or with
    `all=true` every migrated child and each review made. Tokens, kinds, states and dates only."""
    register = request.app.state.runtime.consent
    cases = register.migrated_cases(include_reviewed=include_reviewed)
    return {"awaiting_review": register.awaiting_review(), "outcomes": list(OUTCOMES),
            "children": [c.view() for c in cases]}


@router.post("/v1-records/{subject}/review", summary="Record what a migrated refusal or objection was in law",
             responses={404: {"description": "no record of this child came from the first register"},
                        409: {"description": "reviewed already"},
                        422: {"description": "an unknown outcome, or nothing to reclassify (confirm instead)"}})
async def review(request: Request, subject: Annotated[str, Path(pattern=TOKEN)], body: ReviewBody,
                 principal: Reviewer) -> dict[str, Any]:
    """Once per child. A reclassification replaces the migrated records with one record of the kind found (dated as
    the original, `recorded_by: ig_review`); `confirmed` keeps the migrated reading. Either way the stricter reading
    ends for this child, and the review is audited under the caller's credential."""
    rt: ConsentReviewPorts = request.app.state.runtime
    on = body.reviewed_on or dt.date.today().isoformat()
    case, records = await blocking(_review, rt, subject, body.outcome, on, principal.actor)
    await rt.emit_audit([rt.audit_record("admin_action", time=now_iso(), actor=principal.actor, subject=subject,
                                         action="consent.v1_review",
                                         reason=f"first consent register's records reviewed: {body.outcome}")])
    return {**case.view(), "records_now": [] if records is None else [r.to_summary() for r in records.records]}


def _review(rt: Any, subject: str, outcome: str, on: str, actor: str) -> tuple[Any, Any]:
    """The consent register's part of review (blocking): the review made, and the child's records after it."""
    try:
        case = rt.consent.review(subject, outcome, on, actor)
    except ValueError as exc:  # value-free: the outcomes allowed, or that there is no "no" to reclassify
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return case, rt.consent.get(subject)
