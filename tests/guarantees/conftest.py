"""Kafka for the guarantee suite: the integration suite's fixture (KAFKA_BOOTSTRAP_SERVERS, testcontainers, one
Apache Kafka for the run where Java 17+ is to hand, else the embedded Tansu); tansu_bootstrap, either_kafka;
apache_bootstrap (that node whatever kafka_bootstrap is)."""

from tests.integration.conftest import apache_bootstrap, either_kafka, kafka_bootstrap, tansu_bootstrap  # noqa: F401
