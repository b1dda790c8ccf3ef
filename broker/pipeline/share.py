"""The share stage as a pure function: one event -> each subscriber's decision and, if delivered, its projection."""

from __future__ import annotations

from typing import Any

from broker.policy import ConsentState, Decision, Protocol, decide_all, release
from broker.policy.facts import CaseFacts
from broker.policy.thresholds import assessed


def share(protocol: Protocol, event: dict[str, Any], *, consent: ConsentState | None, case_open: bool | None = None,
          mask_key: bytes, facts: CaseFacts | None = None) -> list[tuple[Decision, dict[str, Any] | None]]:
    """Decisions for every subscriber of the protocol (default deny), with the released view where delivered.
    `facts`: the registers' facts about the child (broker/policy/facts.py); `case_open` alone is the shorthand."""
    out: list[tuple[Decision, dict[str, Any] | None]] = []
    event = dict(assessed(protocol.risk_scales, event))  # what is delivered carries the level decided on
    for decision in decide_all(protocol, event, consent, case_open=case_open, facts=facts):
        released = release(event, decision, mask_key=mask_key) if decision.outcome == "deliver" else None
        out.append((decision, released))
    return out
