"""The Kubernetes manifests: core kinds against the Kubernetes JSON schemas (kubernetes-validate), KEDA kinds
against KEDA's models (cloudcoil-models-keda), Strimzi kinds by their documented structure; security settings;
and the ACL model (each subscriber reads only its own delivery topic)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from adapters.kit.registry import AGENCIES
from broker.config import Settings
from broker.ops import checks
from broker.ops.topology import STRIMZI_API, agency_user, subscriber_user
from tests.deploy.conftest import DEPLOY, K8S, SAMPLE_PROTOCOL, kustomize_resources

KUBERNETES_VERSION = "1.31"
STRIMZI_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"}
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}
ACCESS = K8S / "kafka" / "access.yaml"


def of_kind(docs: list[tuple[Path, dict]], *kinds: str) -> list[dict]:
    return [d for _, d in docs if d["kind"] in kinds]


def named(docs: list[tuple[Path, dict]], kind: str, name: str) -> dict:
    return next(d for _, d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_kustomization_lists_every_manifest() -> None:
    listed = {p.resolve() for p in kustomize_resources(K8S)}
    on_disk = {p.resolve() for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert listed == on_disk


def test_core_kinds_validate_against_kubernetes_schemas(k8s_documents: list[tuple[Path, dict]]) -> None:
    core = [(p, d) for p, d in k8s_documents if d["kind"] not in STRIMZI_KINDS | KEDA_KINDS]
    assert Counter(d["kind"] for _, d in core) == Counter(
        {"NetworkPolicy": 6, "Deployment": 2, "Namespace": 1, "ServiceAccount": 1, "ConfigMap": 1,
         "PersistentVolumeClaim": 1, "Service": 1})
    for path, doc in core:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}")


def test_keda_kinds_validate_against_keda_models(k8s_documents: list[tuple[Path, dict]]) -> None:
    from cloudcoil.models.keda import v1alpha1

    docs = of_kind(k8s_documents, *KEDA_KINDS)
    assert sorted(d["kind"] for d in docs) == sorted(KEDA_KINDS)
    for doc in docs:
        model = getattr(v1alpha1, doc["kind"]).model_validate(doc)
        # The models ignore unknown fields: a round trip that loses nothing means every field is one KEDA knows.
        assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == doc


def test_scaling_follows_the_share_group_lag(k8s_documents: list[tuple[Path, dict]]) -> None:
    settings = Settings()
    scaled = named(k8s_documents, "ScaledObject", "mash-broker-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == named(k8s_documents, "Deployment", "mash-broker-worker")[
        "metadata"]["name"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == settings.group("share") == "mash-broker.share"
    assert trigger["metadata"]["topic"] == settings.topics.events
    assert trigger["metadata"]["sasl"] == "scram_sha512" and trigger["metadata"]["tls"] == "enable"
    auth = named(k8s_documents, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"password", "ca"}
    events = named(k8s_documents, "KafkaTopic", "sg.events")["spec"]["partitions"]
    assert scaled["spec"]["maxReplicaCount"] * 2 <= events  # two share workers per pod, never more than partitions


def test_deployments_are_locked_down_and_probed(k8s_documents: list[tuple[Path, dict]]) -> None:
    configmap = named(k8s_documents, "ConfigMap", "mash-broker-settings")["data"]
    for name in ("mash-broker-api", "mash-broker-worker"):
        pod = named(k8s_documents, "Deployment", name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        (container,) = pod["containers"]
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert configmap["MASH_DATA_DIR"] in mounts and "/tmp" in mounts
        assert Path(configmap["MASH_PROTOCOL_FILE"]).parent.as_posix() in mounts
        assert Path(configmap["MASH_KAFKA_SSL_CAFILE"]).parent.as_posix() in mounts
        # Secrets only by reference, never a literal value in the manifests.
        for env in container["env"]:
            assert "value" not in env and "secretKeyRef" in env["valueFrom"], env["name"]
    api = named(k8s_documents, "Deployment", "mash-broker-api")["spec"]["template"]["spec"]["containers"][0]
    assert api["args"] == ["run", "--share-workers", "0"]
    assert not of_kind(k8s_documents, "Secret"), "Secrets are created by the operator (deploy/README.md)"


def test_every_secret_reference_is_documented(k8s_documents: list[tuple[Path, dict]]) -> None:
    readme = (DEPLOY / "README.md").read_text()
    strimzi_made = {"mash-broker", "mash-kafka-cluster-ca-cert"}  # Secrets Strimzi creates itself
    for name in ("mash-broker-api", "mash-broker-worker"):
        container = named(k8s_documents, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        for env in container["env"]:
            ref = env["valueFrom"]["secretKeyRef"]
            if ref["name"] not in strimzi_made:
                assert f"secret generic {ref['name']}" in readme and f"--from-literal={ref['key']}=" in readme, ref


def test_settings_configmap_names_only_settings(k8s_documents: list[tuple[Path, dict]]) -> None:
    proposed = {"MASH_KAFKA_SECURITY_PROTOCOL", "MASH_KAFKA_SASL_MECHANISM", "MASH_KAFKA_SASL_USERNAME",
                "MASH_KAFKA_SSL_CAFILE"}
    known = {f"MASH_{n.upper()}" for n in Settings.model_fields} | proposed | {"KAFKA_BOOTSTRAP_SERVERS"}
    data = named(k8s_documents, "ConfigMap", "mash-broker-settings")["data"]
    assert set(data) <= known
    Settings(**{k.removeprefix("MASH_").lower(): v for k, v in data.items() if k.startswith("MASH_")
                and k not in proposed})


def test_network_policies(k8s_documents: list[tuple[Path, dict]]) -> None:
    policies = {d["metadata"]["name"]: d["spec"] for d in of_kind(k8s_documents, "NetworkPolicy")}
    deny = policies["mash-broker-default-deny"]
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny and "egress" not in deny
    api_in = policies["mash-broker-allow-api-ingress"]
    assert api_in["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api"
    assert api_in["ingress"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}]
    kafka_out = policies["mash-broker-allow-egress-kafka"]["egress"][0]
    listener = named(k8s_documents, "Kafka", "mash-kafka")["spec"]["kafka"]["listeners"][0]
    assert kafka_out["ports"][0]["port"] == listener["port"]
    assert kafka_out["to"][0]["podSelector"]["matchLabels"]["strimzi.io/cluster"] == "mash-kafka"
    assert policies["mash-broker-allow-egress-postgresql"]["egress"][0]["ports"][0]["port"] == 5432
    configmap = named(k8s_documents, "ConfigMap", "mash-broker-settings")["data"]
    assert configmap["KAFKA_BOOTSTRAP_SERVERS"] == f"mash-kafka-kafka-bootstrap:{listener['port']}"


def test_strimzi_cluster_is_kraft_with_tls_and_scram(k8s_documents: list[tuple[Path, dict]]) -> None:
    for doc in of_kind(k8s_documents, *STRIMZI_KINDS):
        assert doc["apiVersion"] == STRIMZI_API
        assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
    kafka = named(k8s_documents, "Kafka", "mash-kafka")
    assert kafka["metadata"]["annotations"] == {"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"}
    assert "zookeeper" not in kafka["spec"] and "replicas" not in kafka["spec"]["kafka"]
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert listener["tls"] is True and listener["authentication"] == {"type": "scram-sha-512"}
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    assert kafka["spec"]["kafka"]["config"]["min.insync.replicas"] == 2
    assert set(kafka["spec"]["entityOperator"]) == {"topicOperator", "userOperator"}
    (pool,) = of_kind(k8s_documents, "KafkaNodePool")
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == "mash-kafka"
    assert pool["spec"]["replicas"] == 3 and set(pool["spec"]["roles"]) == {"controller", "broker"}
    assert pool["spec"]["storage"]["volumes"][0]["kraftMetadata"] == "shared"
    for doc in of_kind(k8s_documents, "KafkaTopic", "KafkaUser"):
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == "mash-kafka"
    for topic in of_kind(k8s_documents, "KafkaTopic"):
        spec = topic["spec"]
        assert spec["replicas"] == 3 and spec["partitions"] >= 1
        assert spec["config"]["min.insync.replicas"] == 2
        assert topic["metadata"]["name"] == spec["topicName"].replace("_", "-")


# --- the ACL model ---------------------------------------------------------------------------------------------
def access_documents() -> list[dict]:
    return [d for d in yaml.safe_load_all(ACCESS.read_text()) if d]


def users() -> dict[str, list[dict]]:
    return {d["metadata"]["name"]: d["spec"]["authorization"]["acls"] for d in access_documents()
            if d["kind"] == "KafkaUser"}


def topic_grants(acls: list[dict], operation: str) -> set[tuple[str, str]]:
    return {(a["resource"]["name"], a["resource"]["patternType"]) for a in acls
            if a["resource"]["type"] == "topic" and operation in a["operations"]}


def subscribers_in_access() -> list[str]:
    return [d["spec"]["topicName"].removeprefix("sg.deliver.") for d in access_documents()
            if d["kind"] == "KafkaTopic" and d["spec"]["topicName"].startswith("sg.deliver.")]


def test_topics_cover_the_service_and_every_subscriber_and_agency() -> None:
    names = {d["spec"]["topicName"] for d in access_documents() if d["kind"] == "KafkaTopic"}
    assert {"sg.events", "sg.deadletter", "sg.audit"} <= names
    assert {f"sg.deliver.{s}" for s in subscribers_in_access()} | {f"sg.intake.{a}" for a in AGENCIES} <= names


def test_each_subscriber_reads_only_its_own_delivery_topic() -> None:
    all_users = users()
    subscribers = subscribers_in_access()
    assert subscribers
    for s in subscribers:
        acls = all_users[subscriber_user(s)]
        assert topic_grants(acls, "Read") == {(f"sg.deliver.{s}", "literal")}
        assert not topic_grants(acls, "Write")
        assert all(a["resource"]["patternType"] == "literal" for a in acls)
        assert {a["resource"]["type"] for a in acls} == {"topic", "group"}
    # and no other non-broker principal can read a delivery topic
    for name, acls in all_users.items():
        if name != "mash-broker":
            readers = {t for t, _ in topic_grants(acls, "Read")}
            assert all(name == subscriber_user(t.removeprefix("sg.deliver.")) for t in readers
                       if t.startswith("sg.deliver.")), name


def test_each_agency_writes_only_its_own_intake_topic() -> None:
    all_users = users()
    for a in AGENCIES:
        acls = all_users[agency_user(a)]
        assert topic_grants(acls, "Write") == {(f"sg.intake.{a}", "literal")}
        assert not topic_grants(acls, "Read")
    assert set(all_users) == {"mash-broker"} | {subscriber_user(s) for s in subscribers_in_access()} | {
        agency_user(a) for a in AGENCIES}


def test_broker_principal_owns_its_prefix_and_the_share_group() -> None:
    acls = users()["mash-broker"]
    assert topic_grants(acls, "Read") == topic_grants(acls, "Write") == {("sg.", "prefix")}
    groups = {(a["resource"]["name"], a["resource"]["patternType"]) for a in acls if a["resource"]["type"] == "group"}
    assert ("mash-broker.", "prefix") in groups and Settings().group("share").startswith("mash-broker.")


def test_access_manifests_match_a_fresh_render() -> None:
    """access.yaml is generated: the committed file equals the generator's output for its own subscribers."""
    from typer.testing import CliRunner

    from broker.cli.config import app

    args = ["kafka-access"] + [x for s in subscribers_in_access() for x in ("--subscriber", s)]
    result = CliRunner().invoke(app, args, env={"MASH_TOPIC_PREFIX": "sg", "MASH_EVENT_PARTITIONS": "6"})
    assert result.exit_code == 0, result.output
    assert result.stdout == ACCESS.read_text(), "regenerate: mash-broker config kafka-access ... > " + str(ACCESS)


def test_subscribers_match_the_sample_protocol() -> None:
    """One list of subscribers, the protocol's: regenerate access.yaml whenever the sample protocol changes them."""
    finding = checks.check_protocol(SAMPLE_PROTOCOL)
    assert finding.subscribers is not None, finding.result.detail
    assert sorted(subscribers_in_access()) == sorted(finding.subscribers)


def test_consumer_groups_are_named_per_topic_prefix() -> None:
    """Two deployments on one cluster never share a group: one restarting would stall the other while it rebalances."""
    assert Settings().group("audit-indexer") == "mash-broker.audit-indexer"  # the default prefix keeps its names
    staging = Settings(topic_prefix="staging")
    assert staging.group("share") == "mash-broker.staging.share"
    assert staging.group("audit-indexer") == "mash-broker.staging.audit-indexer"
    assert Settings(topic_prefix="staging", share_group="mash-broker.custom").group("share") == "mash-broker.custom"
