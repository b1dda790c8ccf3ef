"""Benchmarks (run only when asked: `.venv/bin/pytest tests/crypto --benchmark-enable -k bench`).

Goal: protect + reveal of a typical event (20-60 leaves) well under 1 ms with warm key caches.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from broker.crypto import KeyStore, protect_event, reveal_event
from broker.crypto.client import SubscriberClient
from broker.crypto.seal import X25519, DeliverySealer, generate_subscriber_keypair
from broker.schema.classification import iter_leaves


@pytest.fixture
def large_event(patient_event: dict[str, Any]) -> dict[str, Any]:
    """The patient event with three related people: about 60 leaves."""
    event = copy.deepcopy(patient_event)
    event["subject"]["related_people"] = event["subject"]["related_people"] * 3
    assert 55 <= sum(1 for _ in iter_leaves(event)) <= 65
    return event


def test_bench_protect_event(benchmark: Any, patient_event: dict[str, Any], store: KeyStore) -> None:
    protect_event(patient_event, store)  # keys created outside the measurement
    result = benchmark(protect_event, patient_event, store)
    assert reveal_event(result, store).event == patient_event


def test_bench_reveal_event(benchmark: Any, patient_event: dict[str, Any], store: KeyStore) -> None:
    protected = protect_event(patient_event, store)
    result = benchmark(reveal_event, protected, store)
    assert result.event == patient_event


def test_bench_protect_and_reveal_60_leaves(benchmark: Any, large_event: dict[str, Any], store: KeyStore) -> None:
    protect_event(large_event, store)
    result = benchmark(lambda: reveal_event(protect_event(large_event, store), store))
    assert result.event == large_event


def test_bench_seal_and_open_delivery(benchmark: Any, patient_event: dict[str, Any]) -> None:
    private, public = generate_subscriber_keypair(X25519)
    sealer, client = DeliverySealer("hub", public), SubscriberClient(private)
    assert client.open(sealer.seal(patient_event)) == patient_event
    result = benchmark(lambda: client.open(sealer.seal(patient_event)))
    assert result == patient_event
