"""Pipeline stages: plain functions over events. Kafka, HTTP and the clock live in broker/service."""
