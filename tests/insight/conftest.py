"""Kafka for the insight integration tests: the integration suite's fixture (one Apache Kafka for the run)."""

from tests.integration.conftest import kafka_bootstrap  # noqa: F401
