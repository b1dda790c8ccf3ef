"""Recorded determinations, the shell: record or withdraw an s47(9) request or an adult-at-risk determination (the
decisions API and `mash-broker decisions`), each checked, written to the determinations register under the child's
current token, and audited (`determination`).

Checked in this order, each a DeterminationRefused with a value-free message: the child is known (404: a token is
a pseudonym no one can proofread, so a mistyped one must record nothing), not erased (409), the caller may act
(403), the content can stand (422, naming the field by position, never its value), still in force (409).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from broker.aio import blocking
from broker.clock import now_iso
from broker.service.decisions import DecisionRefused
from broker.service.erasure import known_child
from broker.stores.determinations import (
    ADULT_AT_RISK,
    AT_RISK_REASONS,
    NOT_AT_RISK_REASONS,
    S47_REQUEST,
    SUPERSEDED,
    WITHDRAW_REASONS,
    AdultAtRisk,
    AlreadyEnded,
    S47Request,
)

if TYPE_CHECKING:
    from broker.policy import Protocol
    from broker.service.ports import Auditing, DeterminationPorts
    from broker.stores.determinations import DeterminationRegister
    from broker.stores.identities import IdentityRegister

LOCAL_AUTHORITY = "social_care"  # the agency of a partner that makes s47 enquiries (Children Act 1989 s47(1))
# s47(11) lists who must assist when called upon: local authorities, housing authorities and NHS bodies. The police
# are not among them (they assist under their own duties, Children Act 2004 s10-s11), so no s47(9) duty can be
# recorded for them.
NOT_BOUND_BY_S47 = frozenset({"police"})
CLOSED_REASON = "s47(9) request ended: the child's case is closed, and the request belonged to that enquiry"


class DeterminationRefused(DecisionRefused):
    """A determination that cannot be recorded: `status` is the HTTP status, the message value-free (answered by
    broker/api/errors.py as every DecisionRefused is)."""


def s47_problems(protocol: Protocol, requested_by: str, partners: Sequence[str]) -> list[str]:
    """Why an s47(9) request by `requested_by` of `partners` cannot stand (pure; positions, never values)."""
    problems = []
    lead = protocol.partners.get(requested_by)
    if lead is None or lead.agency != LOCAL_AUTHORITY:
        problems.append("requested_by: not a local authority partner of the protocol (s47 enquiries are the "
                        "local authority's, Children Act 1989 s47(1))")
    if not partners:
        problems.append("partners: name at least one partner called upon to assist")
    for i, partner_id in enumerate(partners):
        partner = protocol.partners.get(partner_id)
        if partner is None:
            problems.append(f"partners[{i}]: not a partner of the protocol")
        elif partner_id == requested_by:
            problems.append(f"partners[{i}]: the requesting local authority itself")
        elif partner.agency in NOT_BOUND_BY_S47:
            problems.append(f"partners[{i}]: a {partner.agency} partner is not among the persons Children Act "
                            "1989 s47(11) binds to assist")
    if len(set(partners)) != len(partners):
        problems.append("partners: a partner is named twice")
    return problems


def _registers(rt: DeterminationPorts) -> tuple[IdentityRegister, DeterminationRegister, Protocol]:
    return rt.identities, rt.determinations, rt.protocol


def _child(rt: DeterminationPorts, subject: str) -> str:
    """The child's current token, or DeterminationRefused (unknown: 404, erased: 409)."""
    identities, _, _ = _registers(rt)
    if not known_child(identities, rt.audit_store, subject):
        raise DeterminationRefused(404, "no record of this child: a determination is recorded only for a token the "
                                        "broker has received records about (check the token)")
    current = identities.current(subject)
    if rt.erasures.erased_at(identities.aliases(current)):
        raise DeterminationRefused(409, "this child was erased: nothing more is recorded about it")
    return current


def s47_record(rt: Auditing, request: S47Request, status: str, actor: str, code: str | None = None) -> dict[str, Any]:
    """The `determination` audit record of an s47(9) request's change (ids and codes only)."""
    reason = {"recorded": "s47(9) request recorded: the local authority calls upon the partners named to assist "
                          "its s47 enquiry (Children Act 1989 s47(9)-(11))",
              "withdrawn": f"s47(9) request withdrawn: {WITHDRAW_REASONS.get(code or '', '')}".rstrip(": "),
              "ended": CLOSED_REASON}[status]
    return rt.audit_record(
        "determination", time=now_iso(), actor=actor, subject=request.subject, reason=reason,
        target=request.request_id,
        determination={"type": S47_REQUEST, "status": status, "id": request.request_id,
                       "requested_by": request.requested_by, "partners": list(request.partners),
                       **({"reason_code": code} if code else {})})


def adult_record(rt: Auditing, made: AdultAtRisk, status: str, actor: str, code: str) -> dict[str, Any]:
    texts = {**AT_RISK_REASONS, **NOT_AT_RISK_REASONS, **WITHDRAW_REASONS,
             SUPERSEDED: "superseded by a newer determination"}
    head = {"recorded": "adult-at-risk determination recorded" if made.at_risk
            else "determination recorded: not an adult at risk",
            "withdrawn": "adult-at-risk determination withdrawn",
            "superseded": "adult-at-risk determination superseded"}[status]
    return rt.audit_record(
        "determination", time=now_iso(), actor=actor, subject=made.subject, reason=f"{head}: {texts[code]}",
        target=made.determination_id,
        determination={"type": ADULT_AT_RISK, "status": status, "id": made.determination_id,
                       "at_risk": made.at_risk, "reason_code": code})


async def record_s47(rt: DeterminationPorts, subject: str, *, requested_by: str, partners: Sequence[str],
                     enquiry_ref: str | None, actor: str, acting_for: Collection[str] | None) -> S47Request:
    """Record an s47(9) request. `acting_for`: the partners the caller's decision_maker grants act for (None for an
    administrator, who records on the named local authority's behalf)."""
    request = await blocking(_record_s47, rt, subject, requested_by, partners, enquiry_ref, actor, acting_for)
    await rt.emit_audit([s47_record(rt, request, "recorded", actor)])
    return request


def _record_s47(rt: DeterminationPorts, subject: str, requested_by: str, partners: Sequence[str],
                enquiry_ref: str | None, actor: str, acting_for: Collection[str] | None) -> S47Request:
    """The registers' part of record_s47 (blocking: broker/aio.py)."""
    _, register, protocol = _registers(rt)
    current = _child(rt, subject)
    if acting_for is not None and requested_by not in acting_for:
        raise DeterminationRefused(403, "only a decision maker of the requesting local authority records its "
                                        "s47(9) request")
    if problems := s47_problems(protocol, requested_by, partners):
        raise DeterminationRefused(422, "; ".join(problems))
    return register.request_s47(current, requested_by=requested_by, partners=partners, enquiry_ref=enquiry_ref,
                                recorded_by=actor, at=now_iso())


async def withdraw_s47(rt: DeterminationPorts, request_id: str, *, reason: str, actor: str,
                       acting_for: Collection[str] | None) -> S47Request:
    ended = await blocking(_withdraw_s47, rt, request_id, reason, actor, acting_for)
    await rt.emit_audit([s47_record(rt, ended, "withdrawn", actor, reason)])
    return ended


def _withdraw_s47(rt: DeterminationPorts, request_id: str, reason: str, actor: str,
                  acting_for: Collection[str] | None) -> S47Request:
    _, register, _ = _registers(rt)
    found = register.s47_request(request_id)
    if found is None or (acting_for is not None and found.requested_by not in acting_for):
        # not the caller's to see: as if it did not exist
        raise DeterminationRefused(404, "no such s47(9) request for this credential's partner")
    if reason not in WITHDRAW_REASONS:
        raise DeterminationRefused(422, "reason: not one of " + ", ".join(WITHDRAW_REASONS))
    try:
        return register.end_s47(request_id, by=actor, reason=reason, at=now_iso())
    except AlreadyEnded:
        raise DeterminationRefused(409, f"this s47(9) request is no longer in force ({found.end_reason})") from None


async def determine_adult(rt: DeterminationPorts, subject: str, *, at_risk: bool, reason: str, reference: str | None,
                          actor: str) -> AdultAtRisk:
    made, before = await blocking(_determine_adult, rt, subject, at_risk, reason, reference, actor)
    records = [adult_record(rt, before, "superseded", actor, SUPERSEDED)] if before is not None else []
    await rt.emit_audit([*records, adult_record(rt, made, "recorded", actor, reason)])
    return made


def _determine_adult(rt: DeterminationPorts, subject: str, at_risk: bool, reason: str, reference: str | None,
                     actor: str) -> tuple[AdultAtRisk, AdultAtRisk | None]:
    _, register, _ = _registers(rt)
    current = _child(rt, subject)
    allowed = AT_RISK_REASONS if at_risk else NOT_AT_RISK_REASONS
    if reason not in allowed:
        raise DeterminationRefused(422, f"reason: for at_risk {str(at_risk).lower()}, one of " + ", ".join(allowed))
    return register.determine(current, at_risk=at_risk, reason=reason, reference=reference, recorded_by=actor,
                              at=now_iso())


async def withdraw_adult(rt: DeterminationPorts, subject: str, *, reason: str, actor: str) -> AdultAtRisk:
    ended = await blocking(_withdraw_adult, rt, subject, reason, actor)
    await rt.emit_audit([adult_record(rt, ended, "withdrawn", actor, reason)])
    return ended


def _withdraw_adult(rt: DeterminationPorts, subject: str, reason: str, actor: str) -> AdultAtRisk:
    _, register, _ = _registers(rt)
    current = _child(rt, subject)
    if reason not in WITHDRAW_REASONS:
        raise DeterminationRefused(422, "reason: not one of " + ", ".join(WITHDRAW_REASONS))
    try:
        return register.withdraw_determination(current, by=actor, reason=reason, at=now_iso())
    except AlreadyEnded:
        raise DeterminationRefused(409, "no adult-at-risk determination is in force for this subject") from None


def listed(rt: DeterminationPorts, subject: str) -> tuple[str, list[dict[str, Any]]]:
    """(current token, every record about the child under any token it carried), for a known child."""
    identities, register, _ = _registers(rt)
    if not known_child(identities, rt.audit_store, subject):
        raise DeterminationRefused(404, "no record of this child (check the token)")
    current = identities.current(subject)
    return current, [r.view() for r in register.listed(identities.aliases(current))]
