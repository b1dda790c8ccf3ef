"""Run a protocol's embedded `tests:`: each names a subscriber, an event (whole or partial) and what to expect.

Delivered test events are also released under a fixed test mask key, so a mask that cannot be applied fails here
rather than in production. Failure messages name paths and codes only.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from broker.policy.consent import ConsentState
from broker.policy.decision import Decision
from broker.policy.engine import decide
from broker.policy.errors import PolicyError
from broker.policy.facts import CaseFacts
from broker.policy.model import Protocol
from broker.policy.paths import present_paths
from broker.policy.release import release

TEST_EVENT_NAMESPACE = uuid.UUID("6c0d7d1e-2b7f-4f0a-9a3c-6d6173682d74")
TEST_MASK_KEY = b"protocol-tests-only-fictitious-mask-key"


@dataclass(frozen=True, slots=True)
class ProtocolTestResult:
    name: str
    passed: bool
    failures: tuple[str, ...]
    decision: Decision


def _state(decision: Decision, path: str) -> str:
    if path in decision.released:
        return "released"
    kind = dict(decision.masked).get(path)
    return f"masked ({kind})" if kind else "withheld"


def _check(test: Mapping[str, Any], event: Mapping[str, Any], decision: Decision) -> list[str]:
    expect = test["expect"]
    failures = []
    if decision.outcome != expect["outcome"]:
        failures.append(f"expected outcome {expect['outcome']}, got {decision.outcome}: {decision.reason}")
    if "rule" in expect and decision.rule_id != expect["rule"]:
        failures.append(f"expected rule {expect['rule']}, got {decision.rule_id}")
    if "purpose" in expect and decision.purpose != expect["purpose"]:
        failures.append(f"expected purpose {expect['purpose']}, got {decision.purpose}")
    if "consent_override" in expect:
        got = decision.consent_override.gateway if decision.consent_override else None
        if got != expect["consent_override"]:
            failures.append(f"expected consent override {expect['consent_override']}, got {got}")
    if "human_decision" in expect and (decision.human_decision is not None) != expect["human_decision"]:
        failures.append(f"expected human_decision {str(expect['human_decision']).lower()}, got "
                        f"{str(decision.human_decision is not None).lower()}: {decision.reason}")
    if "reason_contains" in expect and expect["reason_contains"] not in decision.reason:
        failures.append(f"reason does not mention '{expect['reason_contains']}': {decision.reason}")
    present = set(present_paths(event))
    wanted = [(p, "released") for p in expect.get("released", ())]
    wanted += [(p, f"masked ({k})") for p, k in expect.get("masked", {}).items()]
    wanted += [(p, "withheld") for p in expect.get("withheld", ())]
    for path, state in wanted:
        if path not in present:
            failures.append(f"{path}: not in the test event, so the expectation cannot be checked")
        elif _state(decision, path) != state:
            failures.append(f"{path}: expected {state}, got {_state(decision, path)}")
    return failures


def test_facts(test: Mapping[str, Any]) -> CaseFacts:
    """The registers' facts a test states: `case_open`, and `facts` (s47 requests, adult at risk, date of birth,
    the school URN and GP practice ODS code the identity register learned)."""
    given = test.get("facts") or {}
    born = given.get("birth_date")
    return CaseFacts(case_open=test.get("case_open"), s47_requested_of=frozenset(given.get("s47_requested_of", ())),
                     adult_at_risk=given.get("adult_at_risk"), birth_date=date.fromisoformat(born) if born else None,
                     school_urn=given.get("school_urn"), gp_ods=given.get("gp_ods"))


def run_protocol_test(protocol: Protocol, test: Mapping[str, Any]) -> ProtocolTestResult:
    event = dict(test["event"])
    event.setdefault("event_id", str(uuid.uuid5(TEST_EVENT_NAMESPACE, f"{protocol.id}\x1f{test['name']}")))
    facts = test_facts(test)
    try:
        consent = ConsentState.from_mapping(test["consent"]) if "consent" in test else None
    except ValueError as exc:  # a state that does not fit its kind (an objection "given"): the test is unusable
        decision = decide(protocol, event, test["subscriber"], facts=facts)
        return ProtocolTestResult(test["name"], False, (f"consent: {exc}",), decision)
    decision = decide(protocol, event, test["subscriber"], consent=consent, facts=facts)
    failures = _check(test, event, decision)
    if decision.delivered:
        try:
            release(event, decision, mask_key=TEST_MASK_KEY)
        except PolicyError as exc:
            failures.append(f"release failed: {exc}")
    return ProtocolTestResult(test["name"], not failures, tuple(failures), decision)


def run_protocol_tests(protocol: Protocol) -> list[ProtocolTestResult]:
    """Every embedded test, in file order."""
    return [run_protocol_test(protocol, test) for test in protocol.tests]
