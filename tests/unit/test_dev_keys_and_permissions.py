"""Development subscriber keys live in each data directory (never beside the shared protocol file), and the data
directory and its stores are created for their owner only, with `doctor` warning when they are not."""

from __future__ import annotations

import os
import shutil
import stat

from broker.audit.store import open_audit_store
from broker.config import Settings
from broker.crypto.client import SubscriberClient
from broker.ops.checks import check_data_permissions
from broker.service.root import Local, load_local
from broker.stores.consent import ConsentRegister
from broker.stores.db import private_sqlite_file
from tests.integration.service import FIXTURES

PROTOCOL = FIXTURES / "e2e-protocol.yaml"  # two subscribers, each with a key_file beside the protocol


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _dev_runtime(data_dir, protocol_file) -> Local:
    return load_local(Settings(data_dir=data_dir, protocol_file=protocol_file, dev_mode=True))


def test_two_data_directories_on_one_protocol_keep_their_own_subscriber_keys(tmp_path) -> None:
    """Promise: a second --dev data directory never overwrites the keys the first one's subscribers open with."""
    protocol_dir = tmp_path / "protocol"
    protocol_dir.mkdir()
    protocol_file = protocol_dir / "p.yaml"
    shutil.copy(PROTOCOL, protocol_file)
    before = sorted(p.name for p in protocol_dir.rglob("*"))

    first = _dev_runtime(tmp_path / "one", protocol_file)
    second = _dev_runtime(tmp_path / "two", protocol_file)
    assert sorted(p.name for p in protocol_dir.rglob("*")) == before  # nothing written beside the protocol

    for name, sub in first.protocol.subscribers.items():
        other = second.protocol.subscribers[name]
        assert sub.key_file == tmp_path / "one" / "subscriber-keys" / f"{name}.pub"
        assert other.key_file == tmp_path / "two" / "subscriber-keys" / f"{name}.pub"
        assert sub.public_key() != other.public_key()
        # what the first directory's service seals, the first directory's private key opens
        sealed = first.sealers.seal_for(name, {"event_id": "00000000-0000-4000-8000-000000000001"})
        opened = SubscriberClient.from_file(tmp_path / "one" / "subscriber-keys" / f"{name}.key", name).open(sealed)
        assert opened["event_id"] == "00000000-0000-4000-8000-000000000001"

    # a restart of the first directory keeps its keys (the subscriber client's key still opens deliveries)
    again = _dev_runtime(tmp_path / "one", protocol_file)
    assert {n: s.public_key() for n, s in again.protocol.subscribers.items()} == \
        {n: s.public_key() for n, s in first.protocol.subscribers.items()}
    for runtime in (first, second, again):
        runtime.keys.close()


def test_data_directory_and_stores_are_created_for_the_owner_only(tmp_path) -> None:
    """Promise: no other local user can read the registers or the audit trail of a fresh installation."""
    old = os.umask(0o022)  # the usual default, under which files came out 0644 and folders 0755
    try:
        runtime = _dev_runtime(tmp_path / "data", shutil.copy(PROTOCOL, tmp_path / "p.yaml"))
        runtime.keys.close()
        consent = ConsentRegister(tmp_path / "data" / ConsentRegister.FILE)
        consent.db.execute("CREATE TABLE IF NOT EXISTS probe (x)")  # makes SQLite write its -wal/-shm files
        audit = open_audit_store(tmp_path / "data")
    finally:
        os.umask(old)
    data = tmp_path / "data"
    assert _mode(data) == 0o700
    stores = sorted(data.glob("*.sqlite*"))
    assert {p.name for p in stores} >= {"consent.sqlite", "audit.sqlite"}
    assert {p.name: _mode(p) for p in stores} == {p.name: 0o600 for p in stores}
    assert check_data_permissions(data).status == "ok"
    consent.close()
    audit.close()


def test_doctor_warns_on_a_loose_data_directory_and_store(tmp_path) -> None:
    data = tmp_path / "data"
    private_sqlite_file(data / "consent.sqlite")
    assert check_data_permissions(data).status == "ok"
    data.chmod(0o755)
    (data / "consent.sqlite").chmod(0o644)
    result = check_data_permissions(data)
    assert result.status == "warning"
    assert "0755" in result.detail and "consent.sqlite (mode 0644)" in result.detail
    data.chmod(0o700)
    result = check_data_permissions(data)
    assert result.status == "warning" and str(data) + " (mode" not in result.detail
