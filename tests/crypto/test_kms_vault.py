"""Vault transit as the KMS, against a local stand-in of its HTTP API (tests/crypto/vault_standin.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.crypto import KeyStore, KeyUnavailable, KmsError, open_key_provider, protect_event, reveal_event
from broker.crypto.kms import blob_version
from broker.crypto.kms_vault import VaultTransitKms
from tests.crypto.vault_standin import VaultTransitStandIn

TOKEN = "s.fictitious-test-token"


@pytest.fixture
def vault() -> Iterator[VaultTransitStandIn]:
    with VaultTransitStandIn(TOKEN) as v:
        yield v


@pytest.fixture
def transit(vault: VaultTransitStandIn) -> Iterator[VaultTransitKms]:
    k = VaultTransitKms(vault.addr, TOKEN)
    yield k
    k.close()


def test_transit_wrap_unwrap_rotate_rewrap(vault: VaultTransitStandIn, transit: VaultTransitKms) -> None:
    blob = transit.wrap("mash-identity", b"k" * 32)
    assert blob.startswith(b"vault:v1:")
    assert transit.unwrap("mash-identity", blob) == b"k" * 32
    assert transit.rotate("mash-identity") == 2
    assert transit.rotate("mash-health") == 1  # absent: created
    assert transit.latest_version("mash-identity") == 2
    assert transit.unwrap("mash-identity", blob) == b"k" * 32
    moved = transit.rewrap("mash-identity", blob)
    assert blob_version(moved) == 2 and transit.unwrap("mash-identity", moved) == b"k" * 32
    assert vault.state.calls["POST keys/rotate"] == 1 and vault.state.calls["POST rewrap"] == 1


def test_keystore_over_vault_round_trip_rotation_and_rewrap(tmp_path: Path, vault: VaultTransitStandIn,
                                                            transit: VaultTransitKms,
                                                            patient_event: dict[str, Any]) -> None:
    store = KeyStore(tmp_path / "dk.sqlite", transit)
    protected = protect_event(patient_event, store)
    assert vault.state.calls["POST encrypt"] == 6  # one wrap per new data key
    store.rotate_keks()
    cold = KeyStore(tmp_path / "dk.sqlite", transit)
    assert reveal_event(protected, cold).event == patient_event
    assert cold.unwrap_count() == vault.state.calls["POST decrypt"] == 6
    assert store.rewrap() == 6
    assert store.status()["needing_rewrap"] == 0
    cold.close()
    cold = KeyStore(tmp_path / "dk.sqlite", transit)
    assert reveal_event(protected, cold).event == patient_event
    cold.close()
    store.close()


def test_vault_refusal_or_absence_fails_closed(tmp_path: Path, vault: VaultTransitStandIn, transit: VaultTransitKms,
                                               patient_event: dict[str, Any]) -> None:
    store = KeyStore(tmp_path / "dk.sqlite", transit)
    protected = protect_event(patient_event, store)
    store.close()
    wrong = VaultTransitKms(vault.addr, "s.wrong-token")
    cold = KeyStore(tmp_path / "dk.sqlite", wrong)
    with pytest.raises(KeyUnavailable, match="HTTP 403"):
        reveal_event(protected, cold)
    cold.close()
    wrong.close()
    gone = VaultTransitKms("http://127.0.0.1:9", TOKEN, timeout=0.5)  # nothing listens on the discard port
    with pytest.raises(KmsError, match="ConnectError"):
        gone.wrap("mash-identity", b"k" * 32)
    gone.close()


def test_factory_selects_vault_from_the_environment(tmp_path: Path, vault: VaultTransitStandIn,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    patient_event: dict[str, Any]) -> None:
    monkeypatch.setenv("MASH_KMS", "vault")
    monkeypatch.setenv("VAULT_ADDR", vault.addr)
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)
    store = open_key_provider(tmp_path)
    try:
        assert store.kms.name == "vault-transit"
        assert reveal_event(protect_event(patient_event, store), store).event == patient_event
    finally:
        store.close()
    monkeypatch.delenv("VAULT_TOKEN")
    with pytest.raises(KmsError, match="VAULT_TOKEN"):
        open_key_provider(tmp_path)
