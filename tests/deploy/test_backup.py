"""Backup and restore: a restored data directory opens the same ciphertexts and its audit chain verifies."""

from __future__ import annotations

import subprocess
import sys

import pytest

from adapters.health.fhir import ADAPTER
from adapters.kit import AdaptContext
from broker.audit import audit_record
from broker.audit.store import open_audit_store
from broker.crypto import open_key_provider, protect_event, reveal_event
from broker.ops.backup import BackupError, create_backup, restore_backup
from tests.conftest import assert_canonical

CLI = [sys.executable, "-m", "broker.cli.main"]


def _event(external_cases) -> dict:
    data = (external_cases / "health" / "UKCore-Patient-RichardSmith-Example.xml").read_bytes()
    return assert_canonical(ADAPTER.adapt(data, AdaptContext(source="p.xml")).events)[0]


def test_backup_restore_round_trip(tmp_path, external_cases) -> None:
    data, out, restored = tmp_path / "data", tmp_path / "backup", tmp_path / "restored"
    keys = open_key_provider(data, create=True)
    event = _event(external_cases)
    protected = protect_event(event, keys)
    store = open_audit_store(data, create_key=True, checkpoint_every=2)
    store.append([audit_record("admin_action", time="2026-01-01T00:00:00Z", actor="admin", action="test.step",
                               target=f"step-{i}") for i in range(5)])
    store.close()
    keys.close()

    report = create_backup(data, out)
    assert "keys/master.key" in report.files and "audit.sqlite" in report.files
    assert all((out / rel).stat().st_mode & 0o077 == 0 for rel in report.files)
    restore_backup(out, restored)

    again = open_key_provider(restored)
    assert reveal_event(protected, again).event == event
    verified = open_audit_store(restored).verify()
    assert verified.ok and verified.checked == 5

    with pytest.raises(BackupError, match="not empty"):
        restore_backup(out, restored)
    (out / "audit.sqlite").write_bytes((out / "audit.sqlite").read_bytes()[:-10] + b"0" * 10)
    with pytest.raises(BackupError, match=r"audit\.sqlite does not match"):
        restore_backup(out, tmp_path / "elsewhere")


def test_master_key_can_be_kept_apart_and_cli_exit_codes(tmp_path) -> None:
    data = tmp_path / "data"
    open_key_provider(data, create=True).close()
    proc = subprocess.run([*CLI, "backup", "create", "--out", str(tmp_path / "b"), "--data-dir", str(data),
                           "--without-master-key"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "master key left out" in proc.stdout
    assert not (tmp_path / "b" / "keys" / "master.key").exists()
    proc = subprocess.run([*CLI, "backup", "restore", str(tmp_path / "nothing"), "--data-dir", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "manifest.json" in proc.stderr
