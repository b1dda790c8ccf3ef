"""`mash-broker doctor` against the real embedded broker: a healthy installation, and broken settings named plainly."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.config import Settings
from broker.kafka.admin import ensure_topics
from broker.kafka.embedded import EmbeddedKafka, free_port
from broker.ops import checks
from broker.ops.topology import topic_plan
from broker.secrets import write_secret_file
from tests.deploy.conftest import ROOT, SAMPLE_PROTOCOL

pytestmark = pytest.mark.integration

LINKAGE = b"doctor-test-linkage-key-0000001!"
MASK = b"doctor-test-mask-key-00000000001"


@pytest.fixture(scope="module")
def kafka() -> Iterator[str]:
    with EmbeddedKafka() as broker:
        yield broker.bootstrap_servers


@pytest.fixture()
def installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir with 0600 key files; key environment variables cleared so the files are what is checked."""
    for name in ("MASH_LINKAGE_KEY", "MASH_MASK_KEY", "KAFKA_BOOTSTRAP_SERVERS", "MASH_KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "data"
    write_secret_file(data / "keys" / "linkage-v1.key", LINKAGE)
    write_secret_file(data / "keys" / "mask-v1.key", MASK)
    return data


def protocol_under_test(tmp_path: Path) -> tuple[Path, tuple[str, ...]]:
    """The sample protocol when this build can load it; otherwise a file the doctor can only see exists."""
    if checks._protocol_loader() is not None:
        finding = checks.check_protocol(SAMPLE_PROTOCOL)
        assert finding.subscribers is not None, finding.result.detail
        return SAMPLE_PROTOCOL, finding.subscribers
    path = tmp_path / "protocol.yaml"
    path.write_text("# not loadable in a build without broker.policy\n")
    return path, ()


def settings_for(data: Path, protocol: Path, bootstrap: str | None, prefix: str) -> Settings:
    return Settings(kafka_bootstrap_servers=bootstrap, data_dir=data, protocol_file=protocol, topic_prefix=prefix)


def doctor_cli(settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MASH_DATA_DIR": str(settings.data_dir), "MASH_PROTOCOL_FILE": str(settings.protocol_file),
           "MASH_TOPIC_PREFIX": settings.topic_prefix, "COLUMNS": "200"}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    if settings.kafka_bootstrap_servers:
        env["KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
    return subprocess.run([sys.executable, "-m", "broker.cli.main", "doctor"], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)


def by_check(results: list[checks.CheckResult]) -> dict[str, checks.CheckResult]:
    return {r.check: r for r in results}


async def test_healthy_installation(kafka: str, installation: Path, tmp_path: Path) -> None:
    protocol, subscribers = protocol_under_test(tmp_path)
    settings = settings_for(installation, protocol, kafka, "healthy")
    await ensure_topics(kafka, [(t.name, t.partitions) for t in topic_plan("healthy", 6, subscribers)])

    found = by_check(await checks.run_checks(settings))

    for name in ("data dir", "key file permissions", "linkage key", "mask key", "kafka", "topics"):
        assert found[name].status == "ok", found[name]
    assert found["protocol"].status == ("ok" if subscribers else "warning"), found["protocol"]
    assert kafka in found["kafka"].detail
    assert checks.healthy(found.values())

    proc = doctor_cli(settings)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "healthy" in proc.stdout
    assert "problem" not in proc.stdout


async def test_wrong_bootstrap_address_is_named(installation: Path, tmp_path: Path) -> None:
    nobody = f"127.0.0.1:{free_port()}"  # a free port: nothing listens there
    settings = settings_for(installation, protocol_under_test(tmp_path)[0], nobody, "sg")

    found = by_check(await checks.run_checks(settings))

    assert found["kafka"].status == "problem"
    assert f"cannot reach Kafka at {nobody}" in found["kafka"].detail
    assert found["topics"].status == "info"
    proc = doctor_cli(settings)
    assert proc.returncode == 1
    assert "cannot reach Kafka" in proc.stdout and nobody in proc.stdout


async def test_missing_topics_are_listed(kafka: str, installation: Path, tmp_path: Path) -> None:
    settings = settings_for(installation, protocol_under_test(tmp_path)[0], kafka, "absent")

    found = by_check(await checks.run_checks(settings))

    assert found["kafka"].status == "ok"
    assert found["topics"].status == "problem"
    assert "missing: absent.events, absent.deadletter, absent.audit" in found["topics"].detail


def test_world_readable_key_file_is_named_without_its_contents(kafka: str, installation: Path,
                                                               tmp_path: Path) -> None:
    key = installation / "keys" / "linkage-v1.key"
    key.chmod(0o644)
    settings = settings_for(installation, protocol_under_test(tmp_path)[0], kafka, "sg")

    result = checks.check_secret_permissions(settings.data_dir)
    assert result.status == "problem"
    assert f"{key} (mode 0644)" in result.detail and "chmod 600" in result.detail

    proc = doctor_cli(settings)
    assert proc.returncode == 1
    assert "key file permissions" in proc.stdout and "linkage-v1.key" in proc.stdout
    secret = base64.b64encode(LINKAGE).decode()
    assert secret not in proc.stdout + proc.stderr


def test_missing_protocol_file_is_named(installation: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-protocol.yaml"
    settings = settings_for(installation, missing, None, "sg")

    proc = doctor_cli(settings)

    assert proc.returncode == 1
    assert "protocol" in proc.stdout and "does not exist" in proc.stdout
    assert "no-such-protocol.yaml" in proc.stdout.replace("\n", "").replace("│", "").replace(" ", "")


async def test_missing_or_short_key_and_unset_kafka(installation: Path) -> None:
    (installation / "keys" / "mask-v1.key").unlink()
    missing = checks.check_named_key(installation, "mask", 1, "masks")
    assert missing.status == "problem" and "MASH_MASK_KEY" in missing.detail
    assert checks.check_named_key(installation, "mask", 1, "masks", dev_mode=True).status == "info"
    write_secret_file(installation / "keys" / "linkage-v2.key", b"too-short")
    short = checks.check_named_key(installation, "linkage", 2, "links")
    assert short.status == "problem" and "9 bytes" in short.detail

    unset = await checks.check_kafka(Settings(kafka_bootstrap_servers=None, data_dir=installation))
    assert unset.result.status == "info" and "embedded broker" in unset.result.detail
    assert unset.topics is None


def test_unwritable_data_dir_is_a_problem(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert checks.check_data_dir(not_a_dir).status == "problem"
    if os.geteuid() != 0:  # root writes anywhere: the permission case only means something for other users
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert checks.check_data_dir(locked).status == "problem"
    assert checks.check_data_dir(tmp_path / "new" / "data").status == "ok"


async def test_topic_init_creates_the_plan_once(kafka: str) -> None:
    from broker.ops.provision import create_topics

    settings = Settings(kafka_bootstrap_servers=kafka, topic_prefix="init")
    plan = topic_plan("init", 3, ["mash_hub"], ["police"])
    assert await create_topics(settings, plan, replication=1) == [t.name for t in plan]
    assert await create_topics(settings, plan, replication=1) == []
    found = await checks.check_kafka(settings)
    assert {"init.events", "init.deliver.mash_hub", "init.intake.police"} <= found.topics


def test_registers_are_checked_where_they_live(installation: Path, pg_database: str, tmp_path: Path) -> None:
    base = settings_for(installation, tmp_path / "protocol.yaml", None, "sg")
    assert checks.check_registers(base).status == "info"  # SQLite: fine for one host, said so
    assert checks.check_registers(base.model_copy(update={"store_url": pg_database})).status == "ok"

    password = "doctor-secret-fictitious"
    nowhere = base.model_copy(update={"store_url": f"postgresql://mash:{password}@127.0.0.1:{free_port()}/none"})
    found = checks.check_registers(nowhere)
    assert found.status == "problem" and password not in found.detail and "127.0.0.1" not in found.detail

    (installation / "consent.sqlite").write_bytes(b"")  # a register left behind by a move to PostgreSQL
    found = checks.check_registers(base.model_copy(update={"store_url": pg_database}))
    assert found.status == "problem" and "stores migrate" in found.detail


def test_a_broken_adapter_entry_point_is_a_problem(kafka: str, installation: Path, tmp_path: Path) -> None:
    """Issue 23: an installed plug-in whose entry point fails to import made doctor say "healthy"."""
    from tests.adapters.plugins import BROKEN_ENTRY_POINT, BROKEN_TARGET, install_broken_plugin

    protocol = protocol_under_test(tmp_path)[0]
    settings = settings_for(installation, protocol, kafka, "plugins")
    site = install_broken_plugin(tmp_path / "site")
    env = {**os.environ, "MASH_DATA_DIR": str(installation), "MASH_PROTOCOL_FILE": str(protocol),
           "MASH_TOPIC_PREFIX": settings.topic_prefix, "COLUMNS": "200", "KAFKA_BOOTSTRAP_SERVERS": kafka,
           "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-m", "broker.cli.main", "doctor"], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.lstrip("│ ").startswith("adapters"))
    assert "problem" in row and BROKEN_ENTRY_POINT in proc.stdout and BROKEN_TARGET in proc.stdout, proc.stdout
    assert "problem(s)" in proc.stdout and "adapters" in proc.stdout.splitlines()[-1]

    assert checks.check_adapters().status == "ok"  # this process has only the broker's own adapters
