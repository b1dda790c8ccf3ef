"""Kafka at the edge: the embedded broker, topic administration, producers and consumers."""
