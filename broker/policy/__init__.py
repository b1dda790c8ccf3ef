"""The information sharing protocol as policy-as-code: compile a protocol, decide per event and subscriber
(default deny), project the released view with masks, explain, diff two versions, run embedded tests.

The language is described in broker/policy/README.md; the file format in schemas/protocol.schema.json.
"""

from broker.policy.codes import LAWFUL_BASIS, MASK_KINDS, STATUTORY_GATEWAYS
from broker.policy.compile import load_protocol, parse_protocol
from broker.policy.consent import ConsentState, effective_consent
from broker.policy.decision import ConsentOverride, Decision, HumanDecisionNeeded
from broker.policy.diff import diff
from broker.policy.engine import decide, decide_all
from broker.policy.errors import PolicyError, ProtocolError
from broker.policy.explain import explain, format_explanation
from broker.policy.keys import SubscriberKeyError, key_problems
from broker.policy.model import Protocol, Rule, Subscriber
from broker.policy.paths import present_paths
from broker.policy.release import release
from broker.policy.testing import ProtocolTestResult, run_protocol_tests

__all__ = [
    "LAWFUL_BASIS", "MASK_KINDS", "STATUTORY_GATEWAYS", "ConsentOverride", "ConsentState", "Decision",
    "HumanDecisionNeeded", "PolicyError",
    "Protocol", "ProtocolError", "ProtocolTestResult", "Rule", "Subscriber", "SubscriberKeyError", "decide",
    "decide_all", "diff", "effective_consent", "explain", "format_explanation", "key_problems", "load_protocol",
    "parse_protocol", "present_paths", "release", "run_protocol_tests",
]
