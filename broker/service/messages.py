"""Kafka record encoding: compact JSON values, linkage-token keys, operational headers."""

from __future__ import annotations

# The encoding is pure and the planners need it: it lives in broker/pipeline/messages.py, one definition.
from broker.pipeline.messages import decode, encode, event_headers, header

__all__ = ["decode", "encode", "event_headers", "header"]
