"""The compose deployment, checked by structure (no container engine here): KRaft quorum, TLS/SASL, healthchecks,
start order, the image; and make-certs.sh run for real with openssl."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from broker.config import Settings
from tests.deploy.conftest import COMPOSE, DEPLOY

KAFKA_NODES = ("kafka-1", "kafka-2", "kafka-3")
LONG_RUNNING = (*KAFKA_NODES, "postgres", "api", "worker")


def test_services(compose: dict) -> None:
    assert set(compose["services"]) == {"prepare", *KAFKA_NODES, "kafka-users", "topic-init", "postgres", "api",
                                        "worker"}
    for name in LONG_RUNNING:
        check = compose["services"][name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and check.get("disable") is not True, name
    for name in ("prepare", "kafka-users", "topic-init"):
        assert compose["services"][name]["restart"] == "no", name


def test_three_kraft_nodes_share_one_quorum(compose: dict) -> None:
    envs = {n: compose["services"][n]["environment"] for n in KAFKA_NODES}
    ids = {n: int(e["KAFKA_NODE_ID"]) for n, e in envs.items()}
    assert sorted(ids.values()) == [1, 2, 3]
    assert len({e["CLUSTER_ID"] for e in envs.values()}) == 1
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", envs["kafka-1"]["CLUSTER_ID"])  # a base64url UUID
    voters = {e["KAFKA_CONTROLLER_QUORUM_VOTERS"] for e in envs.values()}
    assert len(voters) == 1
    parsed = dict(v.split("@") for v in voters.pop().split(","))
    assert {int(k): h for k, h in parsed.items()} == {i: f"{n}:9093" for n, i in ids.items()}
    for name, env in envs.items():
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
        assert f"://{name}:" in env["KAFKA_ADVERTISED_LISTENERS"]
        assert env["KAFKA_SSL_KEYSTORE_LOCATION"] == f"/certs/{name}/{name}.pem"
        assert compose["services"][name]["image"].startswith("apache/kafka:")
        volumes = compose["services"][name]["volumes"]
        assert f"{name}-data:/var/lib/kafka/data" in volumes


def test_no_plaintext_listener_and_scram_for_clients(compose: dict) -> None:
    env = compose["services"]["kafka-1"]["environment"]
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert protocols == {"CLIENT": "SASL_SSL", "CONTROLLER": "SSL", "BROKER": "SSL"}
    listeners = {item.split("://")[0] for item in env["KAFKA_LISTENERS"].split(",")}
    assert listeners == set(protocols)
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert "ScramLoginModule" in env["KAFKA_LISTENER_NAME_CLIENT_SCRAM___SHA___512_SASL_JAAS_CONFIG"]
    assert env["KAFKA_SSL_CLIENT_AUTH"] == "required"  # controller and broker listeners: mutual TLS
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert "StandardAuthorizer" in env["KAFKA_AUTHORIZER_CLASS_NAME"]
    assert env["KAFKA_MIN_INSYNC_REPLICAS"] == 2 and env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3


def test_broker_services_use_sasl_ssl_and_the_cluster(compose: dict) -> None:
    for name in ("api", "worker", "topic-init"):
        service = compose["services"][name]
        env = service["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == ",".join(f"{n}:9092" for n in KAFKA_NODES)
        assert env["MASH_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["MASH_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert service["read_only"] is True
        assert "secrets/mash-broker.env" in service["env_file"]
        # every MASH_ name is a setting, or one of the proposed Kafka security / database settings
        proposed = {"MASH_KAFKA_SECURITY_PROTOCOL", "MASH_KAFKA_SASL_MECHANISM", "MASH_KAFKA_SASL_USERNAME",
                    "MASH_KAFKA_SSL_CAFILE"}
        known = {f"MASH_{n.upper()}" for n in Settings.model_fields} | proposed
        assert {k for k in env if k.startswith("MASH_")} <= known, name
    assert compose["services"]["api"]["command"] == ["run", "--share-workers", "0"]
    assert compose["services"]["topic-init"]["command"][:3] == ["config", "topics", "--create"]
    assert compose["services"]["api"]["ports"] == ["127.0.0.1:8080:8080"]


def test_start_order(compose: dict) -> None:
    services = compose["services"]
    for node in KAFKA_NODES:
        assert services[node]["depends_on"]["prepare"]["condition"] == "service_completed_successfully"
    assert {services["kafka-users"]["depends_on"][n]["condition"] for n in KAFKA_NODES} == {"service_healthy"}
    assert services["topic-init"]["depends_on"]["kafka-users"]["condition"] == "service_completed_successfully"
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["topic-init"]["condition"] == "service_completed_successfully"
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_dockerfile_builds_a_non_root_image() -> None:
    text = (COMPOSE.parent / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    assert any(line.startswith("RUN pip install \".[postgres]\"") for line in lines)
    user = [line for line in lines if line.startswith("USER ")]
    assert user and user[-1] != "USER root" and not user[-1].startswith("USER 0")
    assert 'ENTRYPOINT ["mash-broker"]' in lines


def test_generated_secrets_stay_out_of_git() -> None:
    assert "secrets/" in (COMPOSE.parent / ".gitignore").read_text().split()
    proc = subprocess.run(["git", "check-ignore", "-q", "deploy/compose/secrets/ca.key"], cwd=DEPLOY.parent)
    assert proc.returncode == 0


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_make_certs_issues_verifiable_certificates_with_private_keys_0600(tmp_path: Path) -> None:
    out = tmp_path / "secrets"
    script = COMPOSE.parent / "make-certs.sh"
    proc = subprocess.run(["bash", str(script), str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name in (*KAFKA_NODES, "admin"):
        crt = out / name / f"{name}.crt"
        verify = subprocess.run(["openssl", "verify", "-CAfile", str(out / "ca.crt"), str(crt)],
                                capture_output=True, text=True)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        text = subprocess.run(["openssl", "x509", "-in", str(crt), "-noout", "-subject", "-ext",
                               "subjectAltName"], capture_output=True, text=True).stdout
        assert f"CN = {name}" in text
        if name != "admin":
            assert f"DNS:{name}" in text
        pem = (out / name / f"{name}.pem").read_text()
        assert pem.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, as Kafka's PEM keystore wants
    secret_files = [*out.glob("*.key"), *out.glob("*.env"), *out.glob("*/*.key"), *out.glob("*/*.pem")]
    assert secret_files
    for path in secret_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    env = dict(line.split("=", 1) for line in (out / "mash-broker.env").read_text().splitlines())
    assert set(env) == {"MASH_KAFKA_SASL_PASSWORD", "MASH_LINKAGE_KEY", "MASH_MASK_KEY", "MASH_MASTER_KEY"}
    database = dict(line.split("=", 1) for line in (out / "database.env").read_text().splitlines())
    assert database["MASH_STORE_URL"] == database["MASH_AUDIT_URL"]  # audit store and registers in PostgreSQL
    assert database["MASH_STORE_URL"].startswith("postgresql://mash:")
    before = (out / "mash-broker.env").read_bytes(), (out / "ca.crt").read_bytes()
    again = subprocess.run(["bash", str(script), str(out)], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and ((out / "mash-broker.env").read_bytes(), (out / "ca.crt").read_bytes()) == before
    assert os.access(out / "ca.crt", os.R_OK)
