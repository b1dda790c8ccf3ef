"""Schemathesis against the running service's own OpenAPI document: generated requests for every operation, with a
valid key of the right role (so they reach the handlers) and with no key or a forged one (401). Nothing answers 5xx.

Two generation modes: positive (requests the schema allows, so handlers run on odd but well-typed values) and
negative (path parameters, query parameters, headers and bodies out of their declared types: strings for integers,
lists for objects, missing required fields, patterns broken). Each with a key of the operation's role, so a negative
case is judged by the handler's validation rather than stopped at authentication.

The service runs as a child process (`mash-broker run`) on real Kafka; schemathesis calls it over HTTP. Bounded:
FUZZ_API_EXAMPLES (default 12) generated cases per operation and mode; the whole file takes a few minutes at most.
Each test prints its case count and statuses; FUZZ_REPORT=<file> also appends them there as JSON lines. The
service's rate limits are off here (thousands of forged keys from one address are the point); they have their own
test (tests/guarantees/test_resource_limits.py). The SSE stream is left out (it never ends); its bounded reads are
covered in tests/failure/test_slow_subscriber.py and its hostile cursors in tests/guarantees.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from broker.bench.e2e import running, service_env
from broker.bench.stages import install_protocol
from broker.kafka.embedded import free_port

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("FUZZ_API_EXAMPLES", "12"))
PUBLIC = {"/healthz", "/readyz", "/metrics"}
STEER = {"agency": ["police", "health", "education", "social_care"],
         "name": ["mash_hub", "early_help", "police_ppu", "oakfield_dsl", "riverside_gp"]}


@pytest.fixture(scope="module")
def service(kafka_bootstrap, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("schemathesis")
    protocol_file, _ = install_protocol(tmp)
    env = service_env(kafka_bootstrap, tmp, protocol_file, f"st{uuid.uuid4().hex[:6]}", free_port())
    env.update(MASH_AUTH_FAILURES_PER_MINUTE="0", MASH_INTAKE_RATE_PER_SECOND="0")
    with running(env, 0, tmp / "logs") as procs:
        yield procs


@pytest.fixture(scope="module")
def schema(service):
    return schemathesis.openapi.from_url(f"{service.base_url}/openapi.json")


def operations(schema):
    ops = [result.ok() for result in schema.get_all_operations()]
    return [op for op in ops if not op.path.endswith("/stream")]


def key_for(creds: dict[str, str], path: str, params: dict) -> str:
    """A key whose role fits the operation (and whose scope fits the path when it names a real agency/subscriber)."""
    if path.startswith("/v1/records/"):
        return creds.get(f"intake:{params.get('agency')}", creds["intake:health"])
    if path.startswith("/v1/subscribers/"):
        return creds.get(f"subscriber:{params.get('name')}", creds["subscriber:mash_hub"])
    if path.startswith("/v1/ig/"):
        return creds["ig_auditor"]
    if path.startswith("/v1/insight/"):  # the partnership board's own role: the admin key is refused there (403)
        return creds["insight"]
    return creds["admin"]


def record(test: str, tally: Counter, operations: int) -> Counter:
    """Print (and with FUZZ_REPORT, append as a JSON line) how many cases ran and what they got."""
    statuses = Counter()
    for (_, status), n in tally.items():
        statuses[status] += n
    line = {"test": test, "cases": sum(statuses.values()), "operations": operations,
            "statuses": {str(k): v for k, v in sorted(statuses.items())}}
    print(f"\nschemathesis {test}: {line['cases']} cases over {operations} operations, statuses {line['statuses']}")
    if os.environ.get("FUZZ_REPORT"):
        with open(os.environ["FUZZ_REPORT"], "a") as report:
            report.write(json.dumps(line) + "\n")
    return statuses


def run_operation(op, headers_for, tally: Counter, steer: bool = False,
                  mode: GenerationMode = GenerationMode.POSITIVE) -> None:
    steer = steer and any(p.name in STEER for p in op.path_parameters)
    @settings(max_examples=EXAMPLES * (3 if steer else 1), deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def check(case) -> None:
        name = next((k for k in case.path_parameters or {} if k in STEER), None)
        # a real agency or subscriber in the path, so the case reaches the handler, not the scope check; in negative
        # mode every third case keeps its broken path parameter
        if steer and name is not None and (mode is GenerationMode.POSITIVE or tally["steered"] % 3):
            tally["steered"] += 1
            choices = STEER[name]
            case.path_parameters = {**case.path_parameters, name: choices[tally["steered"] % len(choices)]}
        elif steer:
            tally["steered"] += 1
        response = case.call(headers=headers_for(case), timeout=20)
        tally[(op.label, response.status_code)] += 1
        assert response.status_code < 500, f"{op.label} answered {response.status_code}"

    check()


def test_generated_requests_with_valid_keys_never_get_5xx(service, schema):
    tally: Counter = Counter()
    for op in operations(schema):
        run_operation(op, lambda case, op=op: {
            "Authorization": f"Bearer {key_for(service.credentials, op.path, case.path_parameters or {})}"}, tally,
            steer=True)
    tally.pop("steered", None)
    statuses = record("positive, with keys", tally, len(operations(schema)))
    assert sum(tally.values()) >= len(operations(schema))
    assert any(200 <= s < 300 for s in statuses)  # some cases got through to a successful handler
    assert statuses[422] + statuses[415] > 0  # and generated record bodies reached intake's adapters
    insight = {status for (label, status) in tally if " /v1/insight/" in label}
    assert 200 in insight and 403 not in insight, insight  # the insight handlers ran, with the insight key


def test_requests_out_of_their_types_with_valid_keys_never_get_5xx(service, schema):
    """Negative generation: every operation's path parameters, query, headers and body broken against the schema,
    sent with a key of the right role. Each is refused with a 4xx (or, where the schema is looser than it says,
    served): never a 5xx."""
    tally: Counter = Counter()
    ops = [op for op in operations(schema) if op.path not in PUBLIC]  # the probes take no input to break
    for op in ops:
        run_operation(op, lambda case, op=op: {
            "Authorization": f"Bearer {key_for(service.credentials, op.path, case.path_parameters or {})}"}, tally,
            steer=True, mode=GenerationMode.NEGATIVE)
    tally.pop("steered", None)
    statuses = record("negative, with keys", tally, len(ops))
    assert sum(statuses.values()) >= len(ops)
    assert sum(n for s, n in statuses.items() if 400 <= s < 500) > sum(statuses.values()) // 2


@pytest.mark.parametrize("authorization", [None, "Bearer mbk_forged", "Basic dXNlcjpwYXNz", "Bearer "])
def test_every_protected_operation_refuses_missing_or_forged_keys(service, schema, authorization):
    tally: Counter = Counter()
    for op in operations(schema):
        if op.path in PUBLIC:
            continue
        headers = {} if authorization is None else {"Authorization": authorization}
        run_operation(op, lambda case, headers=headers: headers, tally)
    record(f"authorization {authorization!r}", tally, len(operations(schema)) - len(PUBLIC))
    assert tally
    assert {status for _, status in tally} == {401}, dict(tally)


def test_stream_refuses_missing_keys(service):
    r = requests.get(f"{service.base_url}/v1/subscribers/mash_hub/stream", timeout=10)
    assert r.status_code == 401
