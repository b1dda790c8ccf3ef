"""Settings from the environment (prefix MASH_, plus Kafka's conventional KAFKA_BOOTSTRAP_SERVERS)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MASH_", extra="ignore")

    kafka_bootstrap_servers: str | None = Field(
        default=None, validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "MASH_KAFKA_BOOTSTRAP_SERVERS"),
        description="Kafka cluster to use; unset: start the embedded Tansu broker on 127.0.0.1 and a free port.")
    local_kafka_port: int | None = Field(
        None, ge=1, le=65535, description="Port on 127.0.0.1 of the local Kafka started without "
        "KAFKA_BOOTSTRAP_SERVERS (`make run`): the Apache Kafka node's client listener, or the embedded Tansu's; "
        "printed in the start banner. Unset: a free port (Apache Kafka keeps the one it first chose, in "
        "<data_dir>/kafka/cluster.json).")
    kafka_security_protocol: str = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL for the Kafka cluster.")
    kafka_sasl_mechanism: str = Field("SCRAM-SHA-512", description="SASL mechanism when SASL is used.")
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (never logged).")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle that signed the Kafka brokers' certificates.")
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate (mutual TLS).")
    kafka_ssl_keyfile: Path | None = Field(None, description="Client private key (mutual TLS).")
    kafka_replication_factor: int = Field(1, description="Replication factor for topics the broker creates.")
    kms: str = Field("local", description="Where key-encryption keys live: local (keystore under the master key) "
                     "or vault (HashiCorp Vault transit).")
    master_key: SecretStr | None = Field(
        None, description="Master key (base64, 32 bytes) for the local KMS; unset: <data_dir>/keys/master.key.")
    vault_addr: str | None = Field(None, validation_alias=AliasChoices("VAULT_ADDR", "MASH_VAULT_ADDR"),
                                   description="Vault address, for MASH_KMS=vault.")
    vault_token: SecretStr | None = Field(None, validation_alias=AliasChoices("VAULT_TOKEN", "MASH_VAULT_TOKEN"),
                                          description="Vault token (never logged).")
    vault_namespace: str | None = Field(None, validation_alias=AliasChoices("VAULT_NAMESPACE",
                                                                            "MASH_VAULT_NAMESPACE"),
                                        description="Vault Enterprise namespace, if any.")
    vault_transit_mount: str = Field("transit", description="Mount path of Vault's transit engine.")
    data_key_max_age_seconds: float = Field(
        30 * 24 * 3600.0, description="Data keys older than this are rotated for new encryptions.")
    data_key_max_uses: int = Field(250_000, description="Data keys used this many times are rotated.")
    data_key_cache_size: int = Field(4096, description="Unwrapped data keys cached in memory (bounded LRU).")
    data_dir: Path = Field(Path("data"), description="Directory for SQLite stores, the local keystore and dev keys.")
    host: str = Field("127.0.0.1", description="HTTP bind address.")
    port: int = Field(8080, description="HTTP port.")
    protocol_file: Path = Field(Path("deploy/protocols/sample-partnership.yaml"),
                                description="Information sharing protocol (YAML) the share stage enforces.")
    topic_prefix: str = Field(
        "sg", description="Prefix of every topic: <prefix>.events, .deadletter, .audit, .deliver.<subscriber>.")
    event_partitions: int = Field(6, description="Partitions of the events topic (created if absent).")
    linkage_key_version: int = Field(
        1, description="Version of the linkage HMAC key in use (key file linkage-v<N>.key).")
    attendance_threshold: float = Field(
        0.9, description="Education: attendance rate below which a concern event is raised.")
    cin_xsd_dir: Path | None = Field(
        None, description="Folder of DfE CIN_schema_<year>.xsd files: CIN census files of those years are "
        "validated against them (loaded once at start and given to the CIN adapter in its context).")
    max_body_bytes: int = Field(20 * 1024 * 1024, description="Largest record body accepted at intake.")
    max_control_body_bytes: int = Field(
        64 * 1024, description="Largest body accepted by every endpoint other than intake (acknowledgements, IG "
        "explain, admin actions); checked before the body is parsed or the caller authenticated.")
    intake_rate_per_second: float = Field(
        2000.0, description="Intake requests per second allowed per credential (token bucket, 429 with "
        "Retry-After beyond it); 0 turns the limit off. The default leaves `mash-broker bench` room at ~1000 req/s.")
    intake_rate_burst: float = Field(4000.0, description="Intake requests one credential may send at once before "
                                     "MASH_INTAKE_RATE_PER_SECOND applies.")
    auth_failures_per_minute: float = Field(
        30.0, description="Failed authentications (401 to a presented credential) allowed per client address and "
        "minute once the burst is spent; beyond it every request from that address gets 429 until the bucket "
        "refills. 0 turns the limit off.")
    auth_failure_burst: float = Field(60.0, description="Failed authentications one client address may make at "
                                      "once before MASH_AUTH_FAILURES_PER_MINUTE applies.")
    log_level: str = Field("INFO", description="Log level.")
    log_format: str = Field("json", description="json (for log shippers) or console (for people).")
    dev_mode: bool = Field(False, description="Generate missing development keys and API keys at start (make run).")
    audit_url: str | None = Field(
        None, description="Audit store: postgresql://... or sqlite:///PATH; unset: <data_dir>/audit.sqlite.")
    store_url: str | None = Field(
        None, description="Registers (delivery log, cursors, consent, case state, identity register): "
        "postgresql://... shared by every API and worker pod; unset: SQLite files in the data directory (one host).")
    share_group: str = Field("", description="Consumer group of the share workers; unset: mash-broker.share with the "
                             "default topic prefix, else mash-broker.<prefix>.share.")
    worker_instance: str = Field(
        "", description="This process's stable name among the share workers, in each worker's Kafka transactional "
        "id <share group>.<worker>.<instance>: the same after a restart (so the restarted process fences its "
        "predecessor at once), different for every process running at one time (e.g. a StatefulSet pod name); "
        "unset: <host name>.<n>, n the lowest worker slot free on this host (a lock in the data directory).")
    oidc_issuer: str | None = Field(
        None, description="OpenID Connect issuer whose access tokens (JWT) are accepted beside API keys, e.g. "
        "https://login.microsoftonline.com/<tenant>/v2.0; unset: API keys only.")
    oidc_audience: str | None = Field(None, description="Audience (`aud`) the tokens must carry: the broker's "
                                      "client id or application id URI. Required with MASH_OIDC_ISSUER.")
    oidc_jwks_url: str | None = Field(None, description="The issuer's signing keys (JWKS); unset: found through "
                                      "<issuer>/.well-known/openid-configuration.")
    oidc_roles_claim: str = Field("roles", description="Claim listing the caller's roles as mash.<role>[.<scope>], "
                                  "e.g. mash.intake.health, mash.subscriber.mash_hub, mash.ig_auditor, mash.admin.")
    kafka_reads_interval_seconds: float = Field(
        30.0, ge=0, description="How often the process that runs the audit indexer asks Kafka for the subscribers' "
        "consumer-group offsets on their delivery topics and audits those that advanced as reads "
        "(delivery_read_up_to); 0 turns it off.")
    fhir_code_system_base: str = Field(
        "https://mash-broker.example/fhir", description="Base URL of the partnership's own FHIR code systems and "
        "identifier systems in the FHIR AuditEvent export (<base>/CodeSystem/audit-kind, .../lawful-basis, "
        ".../rule, ...): set it to a URL the partnership controls.")
    calendar_file: Path = Field(
        Path("deploy/calendars/exampleshire.yaml"), description="The partnership's calendar for the hub's timeliness "
        "clocks: time zone, when the working and school days start, school holidays, and the bank holidays file "
        "it names (broker/pipeline/hub/calendar.py).")
    hub_clock_interval_seconds: float = Field(
        5.0, gt=0, description="How often the hub watch settles the running timeliness clocks (met or breached).")
    # The insight watch (issue 17, broker/service/insight_watch.py; README, Hotspots): the rise detector's shell.
    insight_watch_interval_seconds: float = Field(
        3600.0, ge=0, description="How often the insight watch reads the audit store, runs the rise detector and "
        "raises mash.hotspot_rise to the hub; 0 turns it off.")
    insight_measures: str = Field("contacts,referrals", description="The measures (ids in schemas/measures.yaml, "
                                  "comma-separated) the detector watches by area, school and GP practice.")
    insight_period: Literal["week", "month", "quarter"] = Field("week", description="The detector's period.")
    insight_baseline_periods: int = Field(8, ge=1, le=520, description="Periods of a unit's own history it is "
                                          "compared with.")
    insight_min_baseline_periods: int = Field(4, ge=1, le=520, description="Less history than this: not tested.")
    insight_alpha: float = Field(0.01, gt=0, lt=1, description="Family-wise error rate of one detector run "
                                 "(Holm): the chance of any false alarm among steady units.")
    insight_min_observed: int = Field(3, ge=1, description="A rise needs at least this many in the period.")
    insight_min_population: int = Field(100, ge=0, description="Units (districts, schools, practices) smaller "
                                        "than this are never tested, nor shown alone outside the IG role.")

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    def group(self, role: str) -> str:
        """The consumer group of a broker role (share, audit-indexer). One per topic prefix: two deployments on one
        cluster must never share a group, or each one's restarts stall the other's consumption while the group
        rebalances. The default prefix keeps the names mash-broker.<role>."""
        if role == "share" and self.share_group:
            return self.share_group
        return f"mash-broker.{role}" if self.topic_prefix == "sg" else f"mash-broker.{self.topic_prefix}.{role}"


class Topics:
    """Kafka topic names, one place."""

    def __init__(self, prefix: str) -> None:
        self.events = f"{prefix}.events"
        self.deadletter = f"{prefix}.deadletter"
        self.audit = f"{prefix}.audit"
        self._deliver = f"{prefix}.deliver."

    def deliver(self, subscriber: str) -> str:
        return self._deliver + subscriber
