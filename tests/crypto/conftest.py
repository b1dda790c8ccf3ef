"""Fixtures for the crypto tests: a local KMS and keystore in a temp dir, and canonical events to protect."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.health.fhir import ADAPTER
from adapters.kit.interface import AdaptContext
from broker.crypto.keystore import KeyStore
from broker.crypto.kms_local import LocalKms
from tests.conftest import assert_canonical

PATIENT = "UKCore-Patient-RichardSmith-Example.xml"


class Clock:
    """A settable clock for rotation by age (no sleeping)."""

    def __init__(self, now: float = 1_767_225_600.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def master_key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def kms(tmp_path: Path, master_key: bytes) -> Iterator[LocalKms]:
    k = LocalKms(tmp_path / "keys" / "local-kms.sqlite", master_key)
    yield k
    k.close()


@pytest.fixture
def store(tmp_path: Path, kms: LocalKms, clock: Clock) -> Iterator[KeyStore]:
    s = KeyStore(tmp_path / "keys" / "datakeys.sqlite", kms, clock=clock)
    yield s
    s.close()


@pytest.fixture(scope="session")
def patient_event(external_cases: Path) -> dict[str, Any]:
    """The UK Core Richard Smith Patient example through the FHIR adapter, completed as the pipeline would."""
    out = ADAPTER.adapt((external_cases / "health" / PATIENT).read_bytes(), AdaptContext(source=PATIENT))
    assert out.rejections == []
    return assert_canonical(out.events)[0]


def fictitious_child(base: dict[str, Any], event_id: str = "8d1f1c52-0a55-5b8e-9c7e-000000000001") -> dict[str, Any]:
    """Another child: synthetic, clearly fictitious values (999-range NHS number), its own linkage token."""
    event = copy.deepcopy(base)
    event["event_id"] = event_id
    child = event["subject"]["child"]
    child.update({"nhs_number": "9990000018", "given_names": ["Testchild", "Second"], "family_name": "Example",
                  "date_of_birth": "2015-03-04", "phones": ["01100000000"]})
    child["addresses"] = [{"lines": ["1 Nowhere Lane"], "city": "Testtown", "postcode": "ZZ99 3ZZ"}]
    event["subject"]["related_people"] = []
    return assert_canonical([event])[0]


@pytest.fixture(scope="session")
def other_child_event(patient_event: dict[str, Any]) -> dict[str, Any]:
    return fictitious_child(patient_event)
