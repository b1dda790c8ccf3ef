"""A flush of intake: the planned requests gathered while the previous flush was in flight, as one set of effects.

Each request was planned on its own (broker/pipeline/intake_plan.py): its messages, audit records and register writes
are built and checked, so nothing in a flush can fail but Kafka and the registers. A flush sends every request's
messages, request by request and each request's in its own order (so a child's events keep the order their requests
were planned in: one key, one partition, appended in this order), then every request's audit records in one audit
message (chunked at the emitter's size), then the register writes of the requests that have any, each request's on
its own so that one request's failed write is its own answer, not its neighbours'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from broker.pipeline.intake_plan import IntakePlan
from broker.pipeline.messages import Outgoing


@dataclass(frozen=True, slots=True)
class FlushPlan:
    messages: tuple[Outgoing, ...]  # every request's messages, in request order, each request's in its own order
    audits: tuple[dict[str, Any], ...]  # every request's audit records, in the same order
    writes: tuple[int, ...]  # positions of the requests whose registers are written once Kafka holds the flush


def writes_registers(plan: IntakePlan) -> bool:
    """Whether the plan has an identity link, a merge or a consent fold for the registers once Kafka holds it."""
    return bool(plan.consent_folds) or any(r.links or r.merged for r in plan.links)


def plan_flush(plans: Sequence[IntakePlan], learns_facts: Sequence[bool]) -> FlushPlan:
    """The flush of these requests' plans, in the order given. `learns_facts[i]`: request i's published events teach
    the identity register a date of birth, school or practice (read before the flush: a write to make after it).
    A refused plan publishes nothing and is audited on its own: it never enters a flush."""
    if len(plans) != len(learns_facts):
        raise ValueError("one learns_facts flag per plan")
    if any(plan.refusal is not None for plan in plans):
        raise ValueError("a refused plan is not flushed")
    return FlushPlan(
        messages=tuple(m for plan in plans for m in plan.messages),
        audits=tuple(a for plan in plans for a in plan.audits),
        writes=tuple(i for i, (plan, learns) in enumerate(zip(plans, learns_facts, strict=True))
                     if learns or writes_registers(plan)))
