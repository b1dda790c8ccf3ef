"""`mash-broker keys`: shred prints what to audit-log, rotate, status, generate-subscriber-key, key file checks."""

from __future__ import annotations

import base64
import json
import secrets
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from broker.cli.keys import app
from broker.crypto import open_key_provider, protect_event, reveal_event
from broker.crypto.client import SubscriberClient
from broker.crypto.seal import DeliverySealer

runner = CliRunner()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("MASH_MASTER_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    monkeypatch.setenv("MASH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MASH_KMS", raising=False)
    return tmp_path / "data"


def _run(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_shred_status_and_rotate(env: Path, patient_event: dict[str, Any]) -> None:
    store = open_key_provider(env)
    protected = protect_event(patient_event, store)
    store.close()
    token = patient_event["subject"]["linkage"]["token"]

    status = _run("status", "--json")
    assert status["data_keys"] == {"active": 6, "retired": 0, "shredded": 0}  # one per classification present

    rotated = _run("rotate", "--kek", "--data-keys", "--rewrap")
    assert rotated["kek_versions"]["mash-identity"] == 2
    assert rotated["data_keys_retired"] == 6 and rotated["data_keys_rewrapped"] == 6

    audit = _run("shred", "--subject", token, "--yes")
    assert audit["action"] == "keys.shred" and audit["subject"] == token
    assert audit["data_keys_shredded"] == 6
    assert audit["classifications"] == ["contact", "demographic", "identity", "location",
                                        "sensitive_operational", "social_care"]
    assert audit["shredded_at"].endswith("Z")

    store = open_key_provider(env)
    try:
        assert reveal_event(protected, store).event["subject"]["child"]["nhs_number"] == "[shredded]"
    finally:
        store.close()
    people = runner.invoke(app, ["status"])
    assert people.exit_code == 0 and "shredded subjects: 1" in people.stdout


def test_shred_asks_first(env: Path) -> None:
    result = runner.invoke(app, ["shred", "--subject", "lt1_FictitiousChildToken0000000001"], input="n\n")
    assert result.exit_code == 1  # aborted
    assert not (env / "keys" / "datakeys.sqlite").exists()


def test_rotate_needs_something_to_do(env: Path) -> None:
    result = runner.invoke(app, ["rotate"])
    assert result.exit_code == 2 and "--kek" in result.output


def test_group_readable_master_key_file_is_refused(env: Path, tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(base64.b64encode(secrets.token_bytes(32)))
    path.chmod(0o640)
    result = runner.invoke(app, ["status", "--master-key-file", str(path)])
    assert result.exit_code == 2 and "group or others" in result.output
    path.chmod(0o600)
    assert runner.invoke(app, ["status", "--master-key-file", str(path)]).exit_code == 0


@pytest.mark.parametrize("suite", ["x25519", "mlkem768-x25519"])
def test_generate_subscriber_key(tmp_path: Path, suite: str) -> None:
    out = tmp_path / "hub.key"
    info = _run("generate-subscriber-key", "--out", str(out), "--suite", suite)
    assert info["suite"] == suite and stat.S_IMODE(out.stat().st_mode) == 0o600
    delivery = DeliverySealer("hub", info["public_key"], suite).seal({"event_id": "e-1", "n": 1})
    assert SubscriberClient.from_file(out).open(delivery) == {"event_id": "e-1", "n": 1}
    again = runner.invoke(app, ["generate-subscriber-key", "--out", str(out)])
    assert again.exit_code == 1 and "not overwritten" in again.output
    assert runner.invoke(app, ["generate-subscriber-key", "--out", str(tmp_path / "x"), "--suite", "rsa"]
                         ).exit_code == 2


def test_shredding_a_token_nobody_knows_records_nothing(env: Path) -> None:
    """A mistyped or invented token: exit 1, no erasure recorded, no notice owed."""
    from broker.stores.erasures import ErasureRegister

    invented = "lt1_" + "Q" * 43
    result = runner.invoke(app, ["shred", "--subject", invented, "--yes"])
    assert result.exit_code == 1 and "no record of this child" in result.output and invented not in result.output
    erasures = ErasureRegister(env / ErasureRegister.FILE)
    try:
        assert not erasures.is_erased(invented)
    finally:
        erasures.close()
