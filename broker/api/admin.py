"""Administrative actions: consent register, crypto-shredding, dead-letter reprocessing. Each is audit-logged."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any, Literal

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from broker.aio import blocking
from broker.api.auth import Principal, require
from broker.clock import now_iso
from broker.crypto import CryptoError, ShredReport
from broker.policy import ConsentState
from broker.policy.consent import DATA_PROTECTION, OBJECTION, ConsentRecord
from broker.service.erasure import announce_owed, erase_child, key_shred_records, known_child
from broker.service.ports import AdminPorts
from broker.service.reprocess import reprocess
from broker.stores.registry import forgetting

router = APIRouter(prefix="/v1/admin", tags=["admin"])
Admin = Annotated[Principal, Depends(require("admin"))]
TOKEN = r"^lt[0-9]{1,9}_[A-Za-z0-9_-]{20,64}$"  # key version: 9 digits at most (a 64-bit int is 19)
DEADLETTER_ID = r"^[0-9a-fA-F-]{36}$"  # a UUID: anything else is a 422 and never echoed in the 404


class ConsentRecordBody(BaseModel):
    """One record: its kind, state, whose it is (the child, or a related person by role, optionally narrowed by
    `ref`, one of that person's local ids in the events) and who recorded it, as a role code (never a name)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["data_protection", "service_agreement", "confidentiality", "objection"]
    state: Literal["given", "refused", "withdrawn", "not_sought", "not_applicable", "unknown", "raised", "lifted"]
    subject: Literal["child", "parent", "carer", "guardian", "sibling", "household_member", "victim", "witness",
                     "suspect", "offender", "professional", "emergency_contact", "other"] = "child"
    ref: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_./:-]+$")
    recorded_on: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    recorded_by: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]{1,40}$")

    @model_validator(mode="after")
    def _fits(self) -> ConsentRecordBody:
        try:  # value-free messages: the kinds and states allowed, never what was sent
            self.record()
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return self

    def record(self) -> ConsentRecord:
        return ConsentRecord(self.kind, self.state, self.subject, self.ref, self.recorded_on, self.recorded_by)


class ConsentBody(BaseModel):
    """Either `records` (the current form) or the first version's per-child form, `status` (the child's data
    protection consent), `objection` (the child's Art 21 objection) and `recorded_on`: kept as a compatibility path
    and read as exactly those two records of the child's, as the register's old rows are."""

    records: list[ConsentRecordBody] | None = Field(None, min_length=1, max_length=50)
    status: Literal["given", "refused", "withdrawn", "not_sought", "not_applicable", "unknown"] | None = None
    objection: bool | None = None
    recorded_on: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")

    @model_validator(mode="after")
    def _one_form(self) -> ConsentBody:
        old = self.status is not None or self.objection is not None
        if self.records is not None and (old or self.recorded_on is not None):
            raise ValueError("give either records, or the per-child status/objection/recorded_on, not both")
        if self.records is None and self.status is None:
            raise ValueError("give records, or the per-child status (with objection and recorded_on)")
        keys = [r.record().key for r in self.records or ()]
        if len(set(keys)) != len(keys):
            raise ValueError("two records for the same kind and data subject: say one thing of each")
        return self

    def state(self) -> ConsentState:
        if self.records is not None:
            return ConsentState(records=[r.record() for r in self.records])
        # the old form replaced the child's state: both records are written, the objection lifted when not raised
        return ConsentState(records=[ConsentRecord(DATA_PROTECTION, self.status or "unknown",
                                                   recorded_on=self.recorded_on),
                                     ConsentRecord(OBJECTION, "raised" if self.objection else "lifted",
                                                   recorded_on=self.recorded_on)])


def _consent_reason(body: ConsentBody) -> str:
    """For the audit: kinds and states, the child or 'a related person' (a role such as suspect says too much)."""
    if body.records is None:
        return f"consent {body.status}" + (", objection recorded" if body.objection else "")
    return "consent records: " + "; ".join(
        f"{r.kind} {r.state} for {'the child' if r.subject == 'child' else 'a related person'}" for r in body.records)


@router.put("/consent/{subject}", summary="Record consent, agreement or an objection, of each kind, per data subject")
async def put_consent(request: Request, subject: Annotated[str, Path(pattern=TOKEN)], body: ConsentBody,
                      principal: Admin) -> dict[str, Any]:
    """Recorded under the child's current token: a token the identity register has since folded into another
    child's (see `person.linked`) names the same child. Each record replaces the one of its kind and data subject;
    the others stay. The kinds and what the engine does with each: broker/policy/README.md (Consent and objections).

    Only for a child the broker knows (the identity register or the audit log holds the token), else 404: a token
    is an opaque pseudonym no one can proofread, and a mistyped one would record an objection against nobody while
    the answer said it was recorded. An objection that comes before any record belongs in the agency's record
    (the canonical event's `consent`), which arrives with the child's first record."""
    rt: AdminPorts = request.app.state.runtime
    current, state = await blocking(_put_consent, rt, subject, body)
    await rt.emit_audit([rt.audit_record("admin_action", time=now_iso(), actor=principal.actor, subject=current,
                                         action="consent.record", reason=_consent_reason(body))])
    if body.records is None:  # the old answer, for the old form
        return {"subject": current, "status": body.status, "objection": bool(body.objection),
                "recorded_on": body.recorded_on}
    return {"subject": current, "records": [r.to_summary() for r in state.records]}  # never a ref: a local id


def _put_consent(rt: Any, subject: str, body: ConsentBody) -> tuple[str, ConsentState]:
    """The registers' part of put_consent (blocking): (the child's current token, the state recorded)."""
    if not known_child(rt.identities, rt.audit_store, subject):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no record of this child: consent is recorded only for a "
                            "token the broker has received records about (check the token)")
    current = rt.identities.current(subject)
    state = body.state()  # who entered it is the audit record's actor; recorded_by, the role the body names
    rt.consent.put(current, state)
    return current, state


@router.post("/keys/shred/{subject}", summary="Crypto-shred one child's data keys (erasure, retention expiry)")
async def shred(request: Request, subject: Annotated[str, Path(pattern=TOKEN)], principal: Admin) -> dict[str, Any]:
    """Every token the child has carried (the identity register's aliases), so a merge cannot hide old records.
    Recorded in the erasure register (HTTP never serves the child's deliveries again, intake refuses resends of its
    old records) and announced to the subscribers that received its data (`person.erased`): see
    broker/pipeline/erasure.py."""
    rt: AdminPorts = request.app.state.runtime
    reports, summary = await blocking(_erase, rt, subject, principal.actor)
    await rt.emit_audit(key_shred_records(reports, summary, principal.actor))
    # the notice stays owed if Kafka or the keys fail now; the service's notifier publishes it within seconds
    with contextlib.suppress(KafkaError, TimeoutError, CryptoError):
        async with asyncio.timeout(10):
            await announce_owed(rt, principal.actor)
    return summary


def _erase(rt: Any, subject: str, actor: str) -> tuple[list[ShredReport], dict[str, Any]]:
    """The key store's and registers' part of shred (blocking): the shred reports and the answer's summary."""
    # as for consent: a mistyped token would record an erasure of nobody
    if not known_child(rt.identities, rt.audit_store, subject, rt.keys):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no record of this child: erasure is recorded only for a "
                            "token the broker has received records about (check the token)")
    return erase_child(rt.keys, rt.erasures, rt.audit_store, rt.identities.aliases(subject), actor,
                       forget=forgetting(rt))


@router.post("/deadletters/{deadletter_id}/reprocess", summary="Run a dead letter's input through intake again")
async def reprocess_deadletter(request: Request, deadletter_id: Annotated[str, Path(pattern=DEADLETTER_ID)],
                               principal: Admin) -> dict[str, Any]:
    # DeadLetterNotFound: 404, DeadLetterErased: 409, value-free (broker/api/errors.py)
    result = await reprocess(_rt(request), deadletter_id, principal.actor)
    return {"deadletter_id": deadletter_id, "event_ids": result.event_ids,
            "rejections": [r.to_dict() for r in result.rejections]}


def _rt(request: Request) -> AdminPorts:
    """What this router uses of the running broker (broker/service/ports.py)."""
    runtime: AdminPorts = request.app.state.runtime
    return runtime
