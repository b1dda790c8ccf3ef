"""The MASH hub's decisions, shell: check the child and the partners, build the events (pure:
broker/pipeline/hub_decision.py), then publish them as intake publishes any record (`ingest_prepared`): encrypted
per field, on the events topic, audited (record_received, record_adapted, event_published), shared by the protocol.

Checked first, each a value-free refusal with its HTTP status: the partners the decision names are the protocol's
(422); the child is one the broker has received records about (404: a token is a pseudonym no one can proofread, and
a decision about nobody must not look recorded); the child was not erased (409); the identifiers the hub gives for
the child (`child`) are ones the identity register ties to that same child (422: a decision must never reach a
school under another pupil's name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.aio import blocking
from broker.clock import now_iso
from broker.pipeline.hub_decision import ADAPTER, AGENCY, HubDecision, decision_events, problems
from broker.pipeline.identify import identifiers, token_for
from broker.pipeline.intake import Prepared
from broker.pipeline.intake_plan import IntakeRequest, IntakeResult
from broker.schema.validate import validate_event
from broker.service.decisions import DecisionRefused
from broker.service.erasure import known_child
from broker.service.intake import ingest_prepared

if TYPE_CHECKING:
    from broker.service.runtime import Runtime

CONTENT_TYPE = "application/json"


class HubDecisionRefused(DecisionRefused):
    """The decision cannot be recorded: `status` is the HTTP status (broker/api/errors.py), the message value-free."""


def child_token(rt: Runtime, decision: HubDecision) -> str:
    """The child's current token (blocking: reads the identity register, the audit store and the erasure register)."""
    if not known_child(rt.identities, rt.audit_store, decision.subject_token):
        raise HubDecisionRefused(404, "subject_token: no record of this child (a decision is recorded only for a "
                                      "child the broker has received records about; check the token)")
    current = rt.identities.current(decision.subject_token)
    if rt.erasures.erased_at(rt.identities.aliases(current)):
        raise HubDecisionRefused(409, "subject_token: this child was erased; nothing more is recorded about it")
    if decision.child is not None:
        child = decision.child.model_dump()
        tokens = [token_for(identifier, rt.linkage)
                  for _, _, identifier in identifiers(child, {"agency": AGENCY, "system": ""})]
        known = rt.identities.known(tokens)
        # An identifier the register has never seen is its own token: it must then be the child's token itself.
        if not tokens or any(known.child_of.get(t, t) != current for t in tokens):
            raise HubDecisionRefused(422, "child: the NHS number or UPN given is not one the broker holds for the "
                                          "child subject_token names")
    return current


async def record_decision(rt: Runtime, decision: HubDecision, *, hub: str, actor: str) -> IntakeResult:
    """Publish the decision's events (mash.decision, then one mash.action per action); the answer names them."""
    partners = {pid: p.agency for pid, p in rt.protocol.partners.items()}
    found = problems(decision, partners)
    if found:
        raise HubDecisionRefused(422, "; ".join(found))
    token = await blocking(child_token, rt, decision)
    received_at = now_iso()
    request = IntakeRequest(AGENCY, decision.model_dump_json().encode(), received_at, actor, hub, CONTENT_TYPE)
    prepared = Prepared(adapter=ADAPTER)
    for event in decision_events(decision, token=token, hub=hub, received_at=received_at, partners=partners):
        wrong = validate_event(event)
        if wrong:  # a bug here, never the hub's input (the model checked it): fail closed, name the fields
            raise HubDecisionRefused(422, "; ".join(f"{p.field}: canonical schema: {p.reason}" for p in wrong[:5]))
        prepared.events.append(event)
        prepared.identities.append([])  # named by token: the hub's identifiers link nothing in the register
    return await ingest_prepared(rt, request, prepared)
