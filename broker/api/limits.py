"""Resource limits applied before any work: request body size per route, and rate limits with 429.

Both run as one ASGI middleware in front of the whole application, so they hold for every route (including ones
added later) and act before FastAPI parses a body or a dependency authenticates the caller:

- **Body limits.** Intake (`POST /v1/records/{agency}`) accepts up to `MASH_MAX_BODY_BYTES`; every other endpoint
  (acknowledgements, IG explain, admin actions, GETs) up to `MASH_MAX_CONTROL_BODY_BYTES` (64 KiB by default). A
  declared Content-Length over the limit is refused at once; a body without one (chunked) is counted as it arrives
  and refused as soon as it passes the limit, so at most the limit is ever held. Non-intake bodies are read whole
  by this middleware (they are small by construction) before the application sees them. 413, naming the limit only.
- **Authentication failures, per client address.** Each 401 to a request that presented a credential takes a
  token from the address's bucket; while the bucket is empty, every request from that address (except the public
  probes) gets 429 with Retry-After, before authentication: guessing keys costs time, not just a 401. Requests with
  no credential at all are not counted (a probe or a browser is not guessing). Behind a reverse proxy the address is
  the one uvicorn reports (its proxy headers setting decides whether X-Forwarded-For is trusted).
- **Intake, per credential.** Each intake request takes a token from its credential's bucket (keyed by a hash of
  the credential, created only once the credential has authenticated, so forged keys cannot fill the table); an
  empty bucket answers 429 with Retry-After before the body is read.

- **Request heads.** uvicorn's httptools parser buffers a request line and headers of any size (a 200 MB header
  took 420 MB of RSS, before any middleware runs); `BoundedHttpToolsProtocol`, the server protocol `mash-broker run`
  uses, answers 431 and closes the connection once a request head passes MAX_HEAD_BYTES.

The token bucket is pure (state in, state out, the clock passed in); the middleware owns the clock and the tables.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from broker.errors import InputRejected

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

INTAKE_PREFIX = "/v1/records/"
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})  # probes: never rate limited (they carry no key)
MAX_TRACKED = 10_000  # buckets kept per table (least recently used dropped): bounded memory under any load


@dataclass(frozen=True, slots=True)
class Bucket:
    """A token bucket: `tokens` of at most `capacity`, refilled at `rate` per second since `at` (seconds)."""

    capacity: float
    rate: float
    tokens: float
    at: float

    @classmethod
    def full(cls, capacity: float, rate: float, now: float) -> Bucket:
        return cls(capacity, rate, capacity, now)

    def refilled(self, now: float) -> Bucket:
        gained = max(0.0, now - self.at) * self.rate
        return Bucket(self.capacity, self.rate, min(self.capacity, self.tokens + gained), max(now, self.at))

    def take(self, now: float, cost: float = 1.0) -> tuple[Bucket, bool]:
        """(the bucket after the attempt, whether `cost` tokens were there to take)."""
        current = self.refilled(now)
        if current.tokens >= cost:
            return Bucket(current.capacity, current.rate, current.tokens - cost, current.at), True
        return current, False

    def charge(self, now: float, cost: float = 1.0) -> Bucket:
        """Take `cost` tokens whether or not they are there (never below zero): for failures already answered."""
        current = self.refilled(now)
        return Bucket(current.capacity, current.rate, max(0.0, current.tokens - cost), current.at)

    def empty(self, now: float) -> bool:
        return self.refilled(now).tokens < 1.0

    def retry_after(self, now: float, cost: float = 1.0) -> int:
        """Whole seconds until `cost` tokens are back (at least 1)."""
        missing = cost - self.refilled(now).tokens
        return max(1, math.ceil(missing / self.rate)) if self.rate > 0 else 3600


@dataclass(frozen=True, slots=True)
class Limits:
    """What the middleware enforces; built from Settings (broker/config.py). A rate of 0 turns that limit off."""

    intake_body_bytes: int
    control_body_bytes: int
    intake_per_second: float
    intake_burst: float
    auth_failures_per_minute: float
    auth_failure_burst: float

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        return cls(settings.max_body_bytes, settings.max_control_body_bytes, settings.intake_rate_per_second,
                   settings.intake_rate_burst, settings.auth_failures_per_minute, settings.auth_failure_burst)


def body_limit(limits: Limits, path: str) -> int:
    """The largest body this route accepts."""
    return limits.intake_body_bytes if path.startswith(INTAKE_PREFIX) else limits.control_body_bytes


class _Table:
    """Buckets by key, least recently used first out once MAX_TRACKED are held."""

    def __init__(self) -> None:
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def get(self, key: str) -> Bucket | None:
        bucket = self._buckets.get(key)
        if bucket is not None:
            self._buckets.move_to_end(key)
        return bucket

    def put(self, key: str, bucket: Bucket) -> None:
        self._buckets[key] = bucket
        self._buckets.move_to_end(key)
        while len(self._buckets) > MAX_TRACKED:
            self._buckets.popitem(last=False)


class BodyTooLarge(InputRejected):
    """Raised from receive() when a streamed body passes its route's limit: a 413 (broker/api/errors.py), whether
    the application's handler or this middleware answers it."""

    def __init__(self, limit: int) -> None:
        super().__init__(over_limit(limit))


def over_limit(limit: int) -> str:
    return f"request body larger than this endpoint's limit of {limit} bytes"


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return None


async def _answer(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = orjson.dumps({"detail": detail})
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class LimitsMiddleware:
    """Body limits and rate limits for every HTTP request (see the module docstring)."""

    def __init__(self, app: ASGIApp, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.app, self.limits, self.clock = app, limits, clock
        self.failures = _Table()  # client address -> bucket of authentication failures
        self.intake = _Table()  # sha256(credential) -> bucket of intake requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        now = self.clock()
        address = (scope.get("client") or ("unknown", 0))[0]
        authorization = _header(scope, b"authorization")
        if path not in PUBLIC_PATHS and self.limits.auth_failures_per_minute > 0:
            bucket = self.failures.get(address)
            if bucket is not None and bucket.empty(now):
                await _answer(send, 429, "too many failed authentications from this address; retry later",
                              {"Retry-After": str(bucket.retry_after(now))})
                return
        credential = hashlib.sha256(authorization).hexdigest() if authorization else None
        is_intake = path.startswith(INTAKE_PREFIX) and scope.get("method") == "POST"
        known_intake: Bucket | None = None
        if is_intake and credential is not None and self.limits.intake_per_second > 0:
            known_intake = self.intake.get(credential)
            if known_intake is not None:
                known_intake, allowed = known_intake.take(now)
                self.intake.put(credential, known_intake)
                if not allowed:
                    await _answer(send, 429, "intake rate limit for this credential reached; retry later",
                                  {"Retry-After": str(known_intake.retry_after(now))})
                    return

        limit = body_limit(self.limits, path)
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > limit
            except ValueError:
                await _answer(send, 400, "Content-Length is not a number")
                return
            if too_large:
                await _answer(send, 413, over_limit(limit))
                return

        if path.startswith(INTAKE_PREFIX):
            receive = _counting(receive, limit)
        else:  # small by construction: read it whole here, before any parsing or authentication
            try:
                receive = await _buffered(receive, limit)
            except BodyTooLarge:
                await _answer(send, 413, over_limit(limit))
                return

        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                self._after(message["status"], address, credential, authorization is not None,
                            is_intake and known_intake is None)
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except BodyTooLarge:
            if not started:
                await _answer(send, 413, over_limit(limit))

    def _after(self, status: int, address: str, credential: str | None, presented: bool, new_intake: bool) -> None:
        """Account for the answer: a 401 to a presented credential is a failure; a first authenticated intake
        request opens its credential's bucket (one token spent)."""
        now, lim = self.clock(), self.limits
        if status == 401 and presented and lim.auth_failures_per_minute > 0:
            bucket = self.failures.get(address) or Bucket.full(lim.auth_failure_burst,
                                                              lim.auth_failures_per_minute / 60, now)
            self.failures.put(address, bucket.charge(now))
        elif new_intake and credential is not None and status not in (401, 403) and lim.intake_per_second > 0:
            bucket = Bucket.full(lim.intake_burst, lim.intake_per_second, now)
            self.intake.put(credential, bucket.charge(now))


def _counting(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return counted


async def _buffered(receive: Receive, limit: int) -> Receive:
    """The whole body read now (at most `limit` bytes held), replayed as one message; later calls pass through
    (so the application still sees http.disconnect)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: let the application see it
            first: Message | None = message
            break
        size += len(message.get("body", b""))
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            first = None
            break
    replay: list[Message] = [first] if first is not None else [
        {"type": "http.request", "body": b"".join(chunks), "more_body": False}]

    async def replayed() -> Message:
        return replay.pop() if replay else await receive()

    return replayed


MAX_HEAD_BYTES = 64 * 1024  # request line and headers: room for large identity-provider tokens, nothing more


def bounded_http_protocol() -> type | str:
    """The uvicorn `http` setting that bounds request heads: BoundedHttpToolsProtocol, or "h11" (which bounds them
    itself at 16 KiB) where httptools is not installed."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return "h11"

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        """httptools with a bound on each request's head: bytes are counted as they arrive, up to the blank line
        that ends the head (body bytes in the same read are not head bytes), until the parser has the headers."""

        _head_bytes = 0
        _in_head = True
        _tail = b""  # the last bytes of the previous read: the blank line may straddle two reads

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                window = self._tail + data
                end = window.find(b"\r\n\r\n")
                self._head_bytes += len(data) if end < 0 else max(0, end + 4 - len(self._tail))
                if self._head_bytes > MAX_HEAD_BYTES:
                    self._refuse_head()
                    return
                self._tail = window[-3:]
            super().data_received(data)

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_head, self._head_bytes, self._tail = True, 0, b""  # the next request starts a new head
            super().on_message_complete()

        def _refuse_head(self) -> None:
            body = f"request line and headers larger than {MAX_HEAD_BYTES} bytes".encode()
            self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
                                 b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
                                 + body)
            self.transport.close()

    return BoundedHttpToolsProtocol
