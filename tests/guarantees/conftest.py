"""Kafka for the guarantee suite: the integration suite's fixture (KAFKA_BOOTSTRAP_SERVERS, testcontainers or the
embedded broker)."""

from tests.integration.conftest import kafka_bootstrap  # noqa: F401
