"""API keys: a running store sees another process's create and revoke within a second; the CLI audits both, names
who acted, and refuses scopes that do not exist."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker.api.auth import RECHECK_S, ApiKeyStore
from broker.api.principal import cli_actor
from broker.audit.store import open_audit_store
from broker.cli.apikeys import app

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "deploy" / "protocols" / "sample-partnership.yaml"
runner = CliRunner()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_revocation_by_another_process_takes_effect_within_a_second(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.json"
    clock = Clock()
    service = ApiKeyStore(path, clock=clock)
    key, principal = ApiKeyStore(path).create("admin")  # "another process": its own instance
    assert service.authenticate(key) is None  # not looked at yet: at most RECHECK_S behind
    clock.now += RECHECK_S
    assert service.authenticate(key) == principal  # created elsewhere, accepted without a restart
    assert ApiKeyStore(path).revoke(principal.key_id) == principal
    clock.now += RECHECK_S
    assert service.authenticate(key) is None  # revoked elsewhere, refused without a restart


def test_the_file_is_looked_at_once_a_second_at_most(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "api-keys.json"
    key, _ = ApiKeyStore(path).create("admin")
    clock = Clock()
    service = ApiKeyStore(path, clock=clock)
    looks = []
    original = service._identity
    monkeypatch.setattr(service, "_identity", lambda: looks.append(1) or original())
    for _ in range(1000):
        assert service.authenticate(key) is not None
    assert looks == []
    clock.now += RECHECK_S
    for _ in range(1000):
        service.authenticate(key)
    assert len(looks) == 1


def test_a_broken_or_missing_key_file_refuses_every_key(tmp_path: Path) -> None:
    """Fail closed: a file that cannot be read must not leave revoked keys working."""
    path = tmp_path / "api-keys.json"
    clock = Clock()
    service = ApiKeyStore(path, clock=clock)
    key, _ = service.create("admin")
    path.write_text("{not json")
    clock.now += RECHECK_S
    assert service.authenticate(key) is None
    path.unlink()
    clock.now += RECHECK_S
    assert service.authenticate(key) is None


def test_concurrent_creators_never_lose_a_key(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.json"
    made: list[str] = []

    def create() -> None:
        made.append(ApiKeyStore(path).create("ig_auditor")[1].key_id)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(p.key_id for p in ApiKeyStore(path).principals()) == sorted(made)


def cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--data-dir", str(tmp_path)], env={"MASH_PROTOCOL_FILE": str(PROTOCOL)})
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(("role", "scope"), [("intake", "nhs_trust"), ("intake", "Police"),
                                             ("subscriber", "nobody_here"), ("subscriber", "health")])
def test_create_refuses_scopes_that_do_not_exist(tmp_path: Path, role: str, scope: str) -> None:
    code, _, err = cli(tmp_path, "create", "--role", role, "--scope", scope)
    assert code == 2 and "no such" in err and scope not in err
    assert ApiKeyStore(tmp_path / "api-keys.json").principals() == []


def test_create_and_revoke_are_audited_with_who_acted(tmp_path: Path) -> None:
    open_audit_store(tmp_path, create_key=True).close()  # the data directory of a service that has run
    code, out, _ = cli(tmp_path, "create", "--role", "subscriber", "--scope", "mash_hub")
    assert code == 0
    key_id, grant, key = out.strip().split("\t")
    assert grant == "subscriber:mash_hub" and key.startswith("mbk_")
    assert cli(tmp_path, "create", "--role", "intake", "--scope", "health")[0] == 0
    assert cli(tmp_path, "revoke", key_id)[0] == 0
    assert cli(tmp_path, "revoke", key_id)[0] == 1  # no such key: nothing to audit
    store = open_audit_store(tmp_path)
    records = [e["record"] for e in store.search(kind="admin_action", newest_first=False)]
    assert store.verify().ok
    store.close()
    assert [(r["action"], r["actor"]) for r in records] == [("apikey.create", cli_actor())] * 2 + \
        [("apikey.revoke", cli_actor())]
    assert records[0]["target"] == key_id == records[2]["target"] and records[0]["subscriber"] == "mash_hub"
    assert records[1]["agency"] == "health"
    assert key not in json.dumps(records)


def test_no_key_is_created_when_its_creation_cannot_be_audited(tmp_path: Path) -> None:
    (tmp_path / "audit.sqlite").mkdir()  # the audit store cannot be opened
    code, _, err = cli(tmp_path, "create", "--role", "admin")
    assert code == 2 and "no key created" in err
    assert ApiKeyStore(tmp_path / "api-keys.json").principals() == []
