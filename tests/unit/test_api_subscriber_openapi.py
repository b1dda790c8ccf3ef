"""Issue 23: every subscriber endpoint's answers are typed in /openapi.json (no free-form object), so a hub's
generated client knows a pull's deliveries, their base64 `sealed` and cursors, and every error's `detail`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from broker.api.app import create_app
from broker.config import Settings

PREFIX = "/v1/subscribers/{name}"


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    app = create_app(Settings(data_dir=Path(tmp_path_factory.mktemp("openapi"))))
    answer = TestClient(app).get("/openapi.json")  # outside `with`: no lifespan, the document needs no Kafka
    assert answer.status_code == 200
    return answer.json()


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return spec["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


def json_schema(spec: dict[str, Any], path: str, method: str, code: str) -> dict[str, Any]:
    answer = spec["paths"][path][method]["responses"][code]
    return resolve(spec, answer["content"]["application/json"]["schema"])


def test_every_subscriber_endpoint_is_documented(spec: dict[str, Any]) -> None:
    ours = sorted(p for p in spec["paths"] if p.startswith("/v1/subscribers/"))
    assert ours == [f"{PREFIX}/ack", f"{PREFIX}/events", f"{PREFIX}/stream"]


def test_a_pull_answer_is_typed_down_to_each_delivery(spec: dict[str, Any]) -> None:
    page = json_schema(spec, f"{PREFIX}/events", "get", "200")
    assert page.get("additionalProperties") is False, page  # was {"type": "object", "additionalProperties": true}
    assert set(page["required"]) == {"deliveries", "next_cursor"}
    delivery = resolve(spec, page["properties"]["deliveries"]["items"])
    assert set(delivery["properties"]) == {"offset", "partition", "event_id", "decision_id", "protocol_version",
                                           "sealed", "cursor"}
    assert delivery["properties"]["offset"]["type"] == "integer"
    assert "base64" in delivery["properties"]["sealed"]["description"]


def test_an_ack_answer_is_typed(spec: dict[str, Any]) -> None:
    answer = json_schema(spec, f"{PREFIX}/ack", "post", "200")
    assert answer["properties"] == {"acknowledged": answer["properties"]["acknowledged"]}
    assert answer["properties"]["acknowledged"]["type"] == "string"


@pytest.mark.parametrize(("path", "method", "codes"), [
    ("events", "get", ("400", "401", "403", "404", "410")),
    ("ack", "post", ("400", "401", "403", "404", "409", "410")),
    ("stream", "get", ("400", "401", "403", "404", "410")),
])
def test_every_error_answer_is_a_problem_with_a_detail(spec: dict[str, Any], path: str, method: str,
                                                       codes: tuple[str, ...]) -> None:
    for code in codes:
        problem = json_schema(spec, f"{PREFIX}/{path}", method, code)
        assert problem["properties"]["detail"]["type"] == "string", (path, code)


def test_the_stream_names_its_frames_and_their_data(spec: dict[str, Any]) -> None:
    ok = spec["paths"][f"{PREFIX}/stream"]["get"]["responses"]["200"]
    sse = ok["content"]["text/event-stream"]
    assert resolve(spec, sse["x-sse-data"]) == spec["components"]["schemas"]["Delivery"]
    assert "Last-Event-ID" in ok["description"]
