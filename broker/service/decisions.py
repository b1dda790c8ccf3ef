"""Recorded human decisions, the shell: refer a withheld share to a person, record what they decide, and deliver
when they decide to share (all or in part).

The share worker refers (`referral_for`, in the same batch as its decision record and before the offsets are
committed); the decisions API (broker/api/decisions.py) and `mash-broker decisions` decide (`decide_referral`).
A share or share in part is the disclosure, made when the person decides: the event is read again from the events
topic at the position the referral kept (the machinery held deliveries use, broker/service/held.py), revealed,
released under the rule's field rules minus what the person withheld, sealed to the subscriber, delivered, marked
in the delivered log (and among the child's recipients, for erasure notices) and audited. An erased child's event
is never delivered: the decision is recorded all the same, and the answer and the audit say nothing was sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker.clock import now_iso
from broker.crypto.errors import SealError
from broker.logging import get_logger
from broker.policy import Decision, SubscriberKeyError, release
from broker.policy.errors import PolicyError
from broker.policy.referral import (
    Withholding,
    deciders,
    human_decision_id,
    human_decision_record,
    person_decision,
    reason_problem,
    withholding_problems,
)
from broker.service.messages import decode
from broker.stores.decisions import AlreadyDecided, Referral

if TYPE_CHECKING:
    from broker.policy import Protocol
    from broker.service.runtime import Runtime

log = get_logger("mash.decisions")
__all__ = ["AlreadyDecided", "DecisionRefused", "Outcome", "decide_referral", "referral_for"]


def referral_for(protocol: Protocol, decision: Decision, event: dict[str, Any], token: str, partition: int,
                 offset: int, now: str) -> Referral:
    """The pending referral a withholding decision with `human_decision` set raises (pure)."""
    needed = decision.human_decision
    assert needed is not None
    agency = (event.get("source") or {}).get("agency")
    return Referral(decision.decision_id, decision.subscriber, decision.event_id, decision.event_type, token,
                    needed.rule_id, needed.restriction, needed.recorded_on, tuple(needed.basis), decision.reason,
                    agency, deciders(protocol, agency), partition, offset, now)


class DecisionRefused(Exception):
    """A decision that cannot be recorded or acted on: `status` is the HTTP status, the message value-free."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Outcome:
    referral: Referral
    delivered: bool
    note: str  # value-free: what happened to the delivery

    def view(self) -> dict[str, Any]:
        return {**self.referral.view(), "delivered": self.delivered, "delivery": self.note}


def may_decide(referral: Referral, partners: set[str]) -> bool:
    """A decision_maker acts for one partner (its scope); it may decide the referrals that partner is named for."""
    return bool(partners & set(referral.deciders))


async def decide_referral(rt: Runtime, referral_id: str, *, choice: str, reason: str, withholding: Withholding,
                          actor: str, partners: set[str]) -> Outcome:
    """Record one person's decision on one referral, audit it, and deliver on share / share in part.

    Checked in this order, each a DecisionRefused with a value-free message: the referral exists (404), the caller
    acts for a partner named for it (403), the choice and the reason can stand (422), it is still pending (409)."""
    assert rt.referrals is not None and rt.protocol is not None
    referral = rt.referrals.get(referral_id)
    if referral is None:
        raise DecisionRefused(404, "no such referral")
    if not may_decide(referral, partners):
        raise DecisionRefused(403, "this credential acts for a partner that is not named to decide this referral "
                                   f"(deciders: {', '.join(referral.deciders)})")
    problems = withholding_problems(referral.event_type, choice, withholding)
    if why := reason_problem(reason):
        problems.append(f"reason: {why}")
    if problems:
        raise DecisionRefused(422, "; ".join(problems))
    if referral.status != "pending":
        raise DecisionRefused(409, f"this referral was already decided ({referral.status})")
    now = now_iso()
    decision_id = human_decision_id(referral.referral_id)
    kept_back = withholding.to_record() if choice == "share_in_part" else None
    try:
        decided = rt.referrals.decide(referral_id, status=choice, decision_id=decision_id, decided_at=now,
                                      decided_by=actor, reason=reason.strip(), withheld=kept_back)
    except AlreadyDecided:
        raise DecisionRefused(409, "this referral was already decided") from None
    if choice == "withhold":
        await rt.emit_audit([_record(rt, decided, now, actor, reason, withholding, None)])
        return Outcome(decided, False, "withheld by the decision: nothing sent")
    return await _share(rt, decided, now, actor, reason, withholding)


def _record(rt: Runtime, referral: Referral, now: str, actor: str, reason: str, withholding: Withholding,
            decision: Decision | None) -> dict[str, Any]:
    """The `human_decision` audit record: who decided, what, why; with the fields disclosed once they are known
    (a share whose event could not be released records the choice without them)."""
    p = rt.protocol
    rule = p.rule(referral.rule_id)
    fields: dict[str, Any] = {"purpose": rule.purpose} if rule is not None else {}
    if decision is not None:
        fields = {"fields_released": list(decision.released), "fields_masked": dict(decision.masked),
                  "fields_withheld": list(decision.withheld), "purpose": decision.purpose}
    return rt.audit_record(
        "human_decision", time=now, actor=actor, subject=referral.subject, subscriber=referral.subscriber,
        event_id=referral.event_id, event_type=referral.event_type, decision_id=referral.decision_id,
        outcome="withhold" if referral.status == "withhold" else "deliver", rule_id=referral.rule_id,
        lawful_basis=list(referral.basis), protocol_id=p.id, protocol_version=p.version, reason=reason.strip(),
        human_decision=human_decision_record(
            referral_id=referral.referral_id, choice=referral.status, restriction=referral.restriction,
            recorded_on=referral.recorded_on, basis=referral.basis, decided_by_partners=referral.deciders,
            withholding=withholding),
        **fields)


def _not_sent(rt: Runtime, referral: Referral, now: str, why: str) -> dict[str, Any]:
    return rt.audit_record("admin_action", time=now, actor="decisions", action="delivery.not_sent",
                           subject=referral.subject, subscriber=referral.subscriber, event_id=referral.event_id,
                           decision_id=referral.decision_id, reason=why)


ERASED = "child erased: an erased child's data is never delivered"
GONE = "event no longer on the events topic: the agency must resend it, and the share is referred again"


async def _share(rt: Runtime, referral: Referral, now: str, actor: str, reason: str,
                 withholding: Withholding) -> Outcome:
    """The disclosure a share decision makes (module docstring). The decision is already in the register: whatever
    happens here, the audit says what was decided and whether anything was sent (an outage is re-raised after
    its record is emitted)."""
    audits: list[dict[str, Any]] = []
    try:
        decision, delivered, note = await _deliver(rt, referral, now, withholding)
    except Exception as exc:
        await rt.emit_audit([_record(rt, referral, now, actor, reason, withholding, None),
                             _not_sent(rt, referral, now, f"delivery failed ({type(exc).__name__}): the decision "
                                                          "stands, nothing was sent")])
        raise DecisionRefused(503, "the decision is recorded but the event could not be delivered now (Kafka or "
                                   f"keys unavailable: {type(exc).__name__}); ask the operator") from None
    audits.append(_record(rt, referral, now, actor, reason, withholding, decision))
    if delivered:
        audits.append(rt.audit_record("delivered", time=now, actor="decisions", subject=referral.subject,
                                      subscriber=referral.subscriber, event_id=referral.event_id,
                                      decision_id=referral.decision_id))
    else:
        audits.append(_not_sent(rt, referral, now, note))
    await rt.emit_audit(audits)
    found = rt.referrals.get(referral.referral_id)
    return Outcome(found or referral, delivered, note)


async def _deliver(rt: Runtime, referral: Referral, now: str,
                   withholding: Withholding) -> tuple[Decision | None, bool, str]:
    """Read the event again, release, seal, send, mark: (the decision released under, sent?, value-free note)."""
    from broker.service.held import read_positions  # held imports share, which imports this module

    assert rt.producer is not None and rt.delivered is not None and rt.referrals is not None
    if rt.erasures is not None and rt.erasures.is_erased(referral.subject):
        return None, False, ERASED
    records, _ = await read_positions(rt, rt.settings.topics.events, [(referral.partition, referral.position)])
    msg = records.get((referral.partition, referral.position))
    if msg is None:
        return None, False, GONE
    revealed = rt.reveal(decode(msg.value))
    if revealed.event.get("event_id") != referral.event_id:
        return None, False, GONE
    if revealed.shredded:
        return None, False, ERASED
    event = revealed.event
    try:
        decision = person_decision(rt.protocol, event, subscriber=referral.subscriber, rule_id=referral.rule_id,
                                   decision_id=referral.decision_id, choice=referral.status,
                                   withholding=withholding, consent=rt.consent_for(referral.subject))
    except PolicyError as exc:
        return None, False, f"not sent: {exc}"
    if rt.delivered.sent([referral.subscriber], [referral.event_id]):
        return decision, False, "already delivered to this subscriber"
    released = release(event, decision, mask_key=rt.mask_key)
    # the subscriber learns that a person decided, and despite what (codes only), so it can handle it accordingly
    released["delivery"]["human_decision"] = {"decision_id": referral.decision_id, "choice": referral.status,
                                              "restriction": referral.restriction}
    try:
        sealed = rt.seal_for(referral.subscriber, released)
    except (SubscriberKeyError, SealError):
        return decision, False, "subscriber public key unusable: the decision stands, nothing was sent"
    headers = [("event_id", referral.event_id.encode()), ("decision_id", referral.decision_id.encode()),
               ("protocol_version", str(rt.protocol.version).encode())]
    await rt.producer.send_and_wait(rt.settings.topics.deliver(referral.subscriber), sealed,
                                    key=referral.subject.encode(), headers=headers)
    rt.delivered.mark([(referral.subscriber, referral.event_id, referral.decision_id)],
                      [(referral.subject, referral.subscriber)])
    rt.referrals.delivered(referral.referral_id, now)
    log.info("human_decision_delivered", subscriber=referral.subscriber, event_id=referral.event_id)
    return decision, True, "delivered"
