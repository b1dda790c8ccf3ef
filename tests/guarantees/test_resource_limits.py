"""Promise: the service bounds the work anyone can make it do before it knows who they are. Bodies are limited per
endpoint before parsing and authentication, guessing credentials is slowed to 429, and one intake key cannot take
all the capacity. (The XML limits of defect 9 are tried in the XML adapter's own guarantee test.)

The memory test runs the service as its own process (`mash-broker run`) so its resident set is the service's
alone; the peak (VmHWM) is reset through /proc/<pid>/clear_refs before each request, so a body buffered and freed
between two samples still counts.
"""

from __future__ import annotations

import select
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from broker.bench.e2e import running, service_env
from broker.bench.records import fhir_patient
from broker.bench.stages import install_protocol
from broker.kafka.embedded import free_port
from tests.integration.service import FIXTURES, running_service

pytestmark = pytest.mark.integration
MB = 1024 * 1024
HOSTILE_BYTES = 50 * MB
RSS_GROWTH_ALLOWED_MB = 8.0


@pytest.fixture(scope="module")
def service_process(kafka_bootstrap, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    protocol_file, _ = install_protocol(tmp, FIXTURES / "e2e-protocol.yaml")
    env = service_env(kafka_bootstrap, tmp, protocol_file, f"rl{uuid.uuid4().hex[:6]}", free_port())
    with running(env, 0, tmp / "logs") as procs:
        yield procs


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for pid {pid}")


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # Linux: the peak resident set restarts from the current one


def _json_body(size: int) -> Iterator[bytes]:
    """A JSON object of `size` bytes whose one string is what a parser would copy: yielded in 16 KiB pieces."""
    yield b'{"cursor": "'
    piece = b"0" * (16 * 1024)
    for _ in range(size // len(piece)):
        yield piece
    yield b'"}'


def _raw_post(base_url: str, path: str, body: Iterator[bytes], *, declared: int | None) -> tuple[int, bytes, int]:
    """POST over a plain socket, stopping as soon as the server answers: (status, response head and body, body
    bytes sent). With `declared`, the headers carry that Content-Length and no body byte is sent until the server
    has had a second to answer on the headers alone."""
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    try:
        framing = f"Content-Length: {declared}" if declared is not None else "Transfer-Encoding: chunked"
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     f"{framing}\r\n\r\n".encode())
        sent = 0
        answered = bool(select.select([sock], [], [], 1.0 if declared is not None else 0)[0])
        for piece in body:
            if answered or select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(piece if declared is not None else b"%x\r\n%s\r\n" % (len(piece), piece))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        else:
            if declared is None:
                sock.sendall(b"0\r\n\r\n")
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
        sock.settimeout(2)
        try:
            while chunk := sock.recv(65536):
                response += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    finally:
        sock.close()
    status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0
    return status, response, sent


@pytest.mark.parametrize("path", ["/v1/subscribers/test_hub/ack", "/v1/ig/policy/explain"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_unauthenticated_50_mb_body_is_refused_without_the_service_growing(service_process, path, framing):
    """Promise: a 50 MB body from someone without a key costs the service no more than a few MB (it was parsed as
    JSON before authentication: 300 MB of RSS)."""
    pid = service_process.service.pid
    before_kb = _status_kb(pid, "VmRSS")
    _reset_peak(pid)
    declared = HOSTILE_BYTES + 14 if framing == "content-length" else None
    status, response, sent = _raw_post(service_process.base_url, path, _json_body(HOSTILE_BYTES), declared=declared)
    growth_mb = (_status_kb(pid, "VmHWM") - before_kb) / 1024
    assert status == 413, response[:300]
    assert b"limit" in response and b"0000" not in response.split(b"\r\n\r\n", 1)[-1]
    assert growth_mb < RSS_GROWTH_ALLOWED_MB, f"peak RSS grew {growth_mb:.1f} MB"
    if declared is not None:
        assert sent == 0  # refused on the headers alone
    else:  # refused once past the 64 KiB limit, long before the end (what was sent includes the kernel's buffers)
        assert sent < HOSTILE_BYTES // 4


def _raw_head(base_url: str, size: int) -> tuple[int, int]:
    """A request whose one header grows to `size` bytes, sent until the server answers: (status, bytes sent)."""
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sent, piece = 0, b"a" * (64 * 1024)
    try:
        sock.sendall(f"GET /v1/ig/search HTTP/1.1\r\nHost: {host}\r\nX-Padding: ".encode())
        while sent < size and not select.select([sock], [], [], 0)[0]:
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        response = sock.recv(65536)
    finally:
        sock.close()
    return (int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0), sent


def test_an_unauthenticated_50_mb_header_is_refused_without_the_service_growing(service_process):
    """Promise: the request head is bounded too (uvicorn's parser buffered a 200 MB header whole: 420 MB of RSS)."""
    pid = service_process.service.pid
    before_kb = _status_kb(pid, "VmRSS")
    _reset_peak(pid)
    status, sent = _raw_head(service_process.base_url, HOSTILE_BYTES)
    growth_mb = (_status_kb(pid, "VmHWM") - before_kb) / 1024
    assert status == 431
    assert sent < HOSTILE_BYTES // 4 and growth_mb < RSS_GROWTH_ALLOWED_MB, (sent, growth_mb)
    assert httpx.get(f"{service_process.base_url}/healthz", timeout=10).status_code == 200
    big_token = {"Authorization": "Bearer " + "e30." * 2 + "A" * 16_000}  # a large IdP token still gets through
    assert httpx.get(f"{service_process.base_url}/v1/ig/search", headers=big_token, timeout=10).status_code == 401


def test_every_documented_endpoint_refuses_an_oversized_body_before_authentication(service_process):
    """Promise: no endpoint, listed or not, reads more than its limit from an unauthenticated caller."""
    spec = httpx.get(f"{service_process.base_url}/openapi.json", timeout=10).json()
    checked = 0
    for template, methods in spec["paths"].items():
        path = template.replace("{agency}", "health").replace("{name}", "test_hub").replace(
            "{subject}", "lt1_" + "A" * 32).replace("{deadletter_id}", str(uuid.uuid4()))
        limit = 20 * MB if template.startswith("/v1/records/") else 64 * 1024
        for method in methods:
            r = httpx.request(method.upper(), f"{service_process.base_url}{path}", content=b"x" * (limit + 1),
                              timeout=30)
            assert r.status_code == 413, (method, template, r.status_code)
            checked += 1
    for path in ("/", "/ig", "/ig/static/ig.js", "/docs", "/nowhere"):
        assert httpx.post(f"{service_process.base_url}{path}", content=b"x" * (64 * 1024 + 1),
                          timeout=30).status_code == 413
    assert checked >= 15


async def test_repeated_bad_keys_get_429_with_retry_after(kafka_bootstrap, tmp_path):
    """Promise: guessing API keys from one address is slowed to the configured rate, before authentication."""
    async with running_service(tmp_path, kafka_bootstrap, auth_failure_burst=5, auth_failures_per_minute=6) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        url = f"{svc.base_url}/v1/ig/search"
        for _ in range(10):  # no credential at all: a probe or a browser, not a guess; not counted
            assert (await http.get(url)).status_code == 401
        for i in range(5):
            r = await http.get(url, headers={"Authorization": f"Bearer mbk_guess{i}"})
            assert r.status_code == 401
        r = await http.get(url, headers={"Authorization": "Bearer mbk_guess5"})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert "guess" not in r.text
        # while the address is blocked, a right key from it waits too: otherwise the next guess could be right
        assert (await http.get(url, headers=svc.headers("ig_auditor"))).status_code == 429
        assert (await http.get(f"{svc.base_url}/healthz")).status_code == 200  # probes are never limited


async def test_one_intake_key_is_rate_limited_and_another_is_not(kafka_bootstrap, tmp_path):
    """Promise: one agency's client cannot flood intake; the limit is its own, not everyone's."""
    async with running_service(tmp_path, kafka_bootstrap, intake_rate_burst=3, intake_rate_per_second=0.1) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        fhir = {"Content-Type": "application/fhir+json"}
        statuses = []
        for i in range(5):
            r = await http.post(f"{svc.base_url}/v1/records/health", content=fhir_patient(i + 1),
                                headers=svc.headers("intake:health", **fhir))
            statuses.append(r.status_code)
        assert statuses[:3] == [202, 202, 202] and statuses[3:] == [429, 429], statuses
        assert int(r.headers["Retry-After"]) >= 1
        r = await http.post(f"{svc.base_url}/v1/records/police", content=b"{}",
                            headers=svc.headers("intake:police", **{"Content-Type": "application/json"}))
        assert r.status_code != 429
