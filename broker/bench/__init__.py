"""Benchmarks: end-to-end throughput and latency, the bare Kafka baseline, and per-stage costs."""
