"""Dead-letter records: the rejection (value-free) plus the rejected input, sealed, so it can be reprocessed."""

from __future__ import annotations

import uuid
from typing import Any

from adapters.kit.interface import Rejection

DEADLETTER_NAMESPACE = uuid.UUID("9a0f3d4c-0d2b-4c55-8f0e-646561646c74")


def deadletter_id(content_sha256: str, rejection: Rejection) -> str:
    """Deterministic: resending the same bad input yields the same dead-letter id."""
    return str(uuid.uuid5(DEADLETTER_NAMESPACE, "\x1f".join((content_sha256, rejection.record, rejection.field))))


def deadletter_record(rejection: Rejection, *, agency: str, system: str | None, content_type: str | None,
                      received_at: str, content_sha256: str, sealed_input: str) -> dict[str, Any]:
    return {
        "deadletter_id": deadletter_id(content_sha256, rejection),
        "received_at": received_at,
        "agency": agency,
        "system": system,
        "content_type": content_type,
        "content_sha256": content_sha256,
        "rejection": rejection.to_dict(),
        "input": sealed_input,
    }
