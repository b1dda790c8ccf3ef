"""The pure parts of the request limits: the token bucket (clock passed in) and which body limit a route gets."""

from __future__ import annotations

import pytest

from broker.api.limits import Bucket, Limits, body_limit
from broker.config import Settings


def test_a_full_bucket_allows_its_burst_then_refuses_until_it_refills() -> None:
    bucket = Bucket.full(capacity=3, rate=0.5, now=100.0)
    allowed = []
    for _ in range(5):
        bucket, ok = bucket.take(100.0)
        allowed.append(ok)
    assert allowed == [True, True, True, False, False]
    assert bucket.empty(100.0) and bucket.retry_after(100.0) == 2  # one token at 0.5/s: 2 s
    bucket, ok = bucket.take(101.0)
    assert not ok  # half a token is not a token
    bucket, ok = bucket.take(102.0)
    assert ok


def test_refill_never_exceeds_capacity_and_a_clock_going_back_gains_nothing() -> None:
    bucket = Bucket.full(capacity=2, rate=10, now=0.0)
    bucket, _ = bucket.take(0.0)
    assert bucket.refilled(3600.0).tokens == 2
    drained = bucket.charge(0.0).charge(0.0)
    assert drained.tokens == 0
    assert drained.refilled(-50.0).tokens == 0  # a monotonic clock never goes back, but if it did: no free tokens


def test_charge_takes_what_is_there_and_never_goes_below_zero() -> None:
    bucket = Bucket.full(capacity=1, rate=1, now=0.0).charge(0.0).charge(0.0).charge(0.0)
    assert bucket.tokens == 0 and bucket.empty(0.0) and not bucket.empty(1.0)


def test_a_zero_rate_bucket_says_retry_after_an_hour_not_divide_by_zero() -> None:
    assert Bucket.full(capacity=1, rate=0, now=0.0).charge(0.0).retry_after(0.0) == 3600


@pytest.mark.parametrize(("path", "intake"), [("/v1/records/health", True), ("/v1/records/", True),
                                              ("/v1/subscribers/hub/ack", False), ("/v1/ig/policy/explain", False),
                                              ("/v1/admin/consent/x", False), ("/", False), ("/v1/recordsx", False)])
def test_only_intake_gets_the_large_body_limit(path: str, intake: bool) -> None:
    limits = Limits.from_settings(Settings(max_body_bytes=20_000_000, max_control_body_bytes=65_536))
    assert body_limit(limits, path) == (20_000_000 if intake else 65_536)


def test_default_limits_are_small_for_control_endpoints_and_leave_the_bench_room() -> None:
    limits = Limits.from_settings(Settings())
    assert limits.control_body_bytes <= 64 * 1024
    assert limits.intake_per_second >= 1000 and limits.intake_burst >= 1000  # bench: ~1000 req/s from one key
    assert 0 < limits.auth_failures_per_minute <= 60


def test_the_default_intake_limit_admits_the_bench_at_1000_requests_a_second_from_one_key() -> None:
    """`mash-broker bench` posts with one key per agency; even all of it from one key must not meet a 429."""
    limits = Limits.from_settings(Settings())
    bucket = Bucket.full(limits.intake_burst, limits.intake_per_second, now=0.0)
    refused = 0
    for i in range(30_000):  # 30 s at 1000 requests/s
        bucket, ok = bucket.take(i / 1000)
        refused += not ok
    assert refused == 0
    for _ in range(int(limits.intake_burst) + 1):  # and a flood far past the rate does meet it
        bucket, ok = bucket.take(30.0)
    assert not ok
