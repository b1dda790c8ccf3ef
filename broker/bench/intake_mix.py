"""The intake plan over the bench's mix, in process: what the intake-plan benchmark and the old-against-new
differential of the service's register writes (tests/bench/test_intake_differential.py) run.

Each body of the mix is read (`prepare`), resolved against a real SQLite identity register as the service sees it,
and planned with a real key store (`plan_with_store`, as the service's `_plan` does in its one thread hop); the
register is written after each body as the service writes it once Kafka holds the events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from adapters.kit.interface import AdaptContext
from broker.bench.records import Format, mix, usable_formats
from broker.crypto import KeyStore, open_key_provider
from broker.crypto.envelope import PREFIX, reveal_event
from broker.pipeline.identify import LinkageKey
from broker.pipeline.intake import Prepared, prepare
from broker.pipeline.intake_plan import (
    ErasureFacts,
    IntakeParams,
    IntakePlan,
    IntakeRequest,
    Resolved,
    plan_intake,
    resolve_intake,
)
from broker.stores.identities import IdentityRegister

RECEIVED = "2026-12-01T12:00:00Z"
LINKAGE = LinkageKey(1, b"bench-linkage-key-fictitious-001")
PARAMS = IntakeParams("bench.events", "bench.deadletter")


@dataclass(frozen=True, slots=True)
class Body:
    """One request of the mix: what came in, and what reading it gave."""

    request: IntakeRequest
    prepared: Prepared


Planner = Callable[[KeyStore, Body, Resolved, ErasureFacts, IntakeParams], IntakePlan]


def plan_with_store(keys: KeyStore, body: Body, resolved: Resolved, erasure: ErasureFacts,
                    params: IntakeParams = PARAMS) -> IntakePlan:
    return plan_intake(body.request, body.prepared, resolved, erasure, keys, params)


@dataclass
class IntakeMix:
    keys: KeyStore
    identities: IdentityRegister
    bodies: list[Body]
    params: IntakeParams = PARAMS

    @property
    def events(self) -> int:
        return sum(len(b.prepared.events) for b in self.bodies)

    def plan_all(self, planner: Planner) -> Iterator[IntakePlan]:
        """Each body's plan, in order, the identity register written after each as the service writes it."""
        for plans in self.plan_each(planner):
            yield plans[0]

    def plan_each(self, *planners: Planner) -> Iterator[list[IntakePlan]]:
        """Each body planned by every planner on the same register state; the first plan's links then written."""
        for body in self.bodies:
            prepared = body.prepared
            known = self.identities.known(i.token for ids in prepared.identities for i in ids)
            resolved = resolve_intake(prepared, known)
            plans = [planner(self.keys, body, resolved, ErasureFacts(), self.params) for planner in planners]
            if plans[0].links:
                self.identities.apply(plans[0].links, body.request.received_at)
            yield plans


def read_bodies(formats: list[Format], count: int, batch: int, offset: int = 0) -> list[Body]:
    """`count` requests of the mix, `batch` records each; `offset` moves every record to other fictitious children."""
    bodies = []
    for fmt, numbers in mix(formats, count, batch):
        data = fmt.make(*(n + offset for n in numbers))
        request = IntakeRequest(fmt.agency, data, RECEIVED, "bench", fmt.system, fmt.content_type)
        ctx = AdaptContext(source="request", received_at=RECEIVED, system=fmt.system)
        bodies.append(Body(request, prepare(fmt.agency, data, ctx, LINKAGE, content_type=fmt.content_type)))
    return bodies


@contextmanager
def intake_mix(workdir: Path, *, count: int, batch: int = 1) -> Iterator[IntakeMix]:
    """The mix's bodies read, a key store and an identity register of their own under `workdir`."""
    formats, _, _ = usable_formats()
    keys = open_key_provider(workdir / "data", create=True)
    identities = IdentityRegister(workdir / "data" / IdentityRegister.FILE)
    try:
        yield IntakeMix(keys, identities, read_bodies(formats, count, batch))
    finally:
        identities.db.close()
        keys.close()


def _key_ids(value: Any, path: str, out: dict[str, tuple[str, int]]) -> dict[str, tuple[str, int]]:
    """Concrete path -> (key id, ciphertext length) of every protected leaf."""
    if isinstance(value, dict):
        for k, v in value.items():
            _key_ids(v, f"{path}.{k}" if path else k, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _key_ids(v, f"{path}[{i}]", out)
    elif isinstance(value, str) and value.startswith(PREFIX):
        out[path] = (value[len(PREFIX):].partition(":")[0], len(value))
    return out


def comparable(plan: IntakePlan, keys: KeyStore) -> dict[str, Any]:
    """What two plans of one request must agree on exactly (see the module docstring)."""
    messages = []
    for m in plan.messages:
        value = orjson.loads(m.value)
        entry: dict[str, Any] = {"topic": m.topic, "key": m.key, "headers": m.headers}
        if m.topic == PARAMS.events_topic:
            entry["event"] = reveal_event(value, keys).event
            entry["protected"] = _key_ids(value, "", {})
        else:  # a dead letter: its sealed input is randomised; the rest is compared as it is
            entry["deadletter"] = {k: v for k, v in value.items() if k != "sealed"}
        messages.append(entry)
    return {"result": plan.result, "messages": messages, "links": plan.links, "folds": plan.consent_folds,
            "refusal": plan.refusal, "audits": [{k: v for k, v in a.items() if k != "record_id"} for a in plan.audits]}
