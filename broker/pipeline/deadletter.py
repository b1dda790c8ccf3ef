"""Dead letters, bounded: one sealed copy of a rejected input per request, value-free records that reference it.

A request with rejections puts on the dead-letter topic
- one input message, keyed by the input's SHA-256, holding the input sealed (broker/crypto/split_seal.py) and the
  linkage tokens of the children its events name, so that reprocessing can refuse an input about an erased child
  before opening it;
- one rejection record per rejected input record (`per_record`: every problem of one CSV row, Bundle entry, HL7 v2
  message or CIN Child, however many fields or events it had, is one dead letter listing them all), at most
  MAX_REJECTION_RECORDS of them, each naming the input by its hash (`input_ref`) instead of carrying it; further
  rejected records are counted in one summary record (the HTTP answer still lists every problem).

So a 400-record file with 400 bad records costs one copy of the file, not 400. Ids and keys are deterministic: a
resent input makes the same records, and readers keep the newest of a key.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from typing import Any

from adapters.kit.interface import Rejection

DEADLETTER_NAMESPACE = uuid.UUID("9a0f3d4c-0d2b-4c55-8f0e-646561646c74")
INPUT_KIND = "deadletter_input"
MAX_REJECTION_RECORDS = 100  # dead-letter records (rejected input records) per request; the rest summarised in one
MAX_PROBLEMS_PER_RECORD = 50  # problems one dead letter lists; the rest counted (`problems_not_listed`)


def deadletter_id(content_sha256: str, rejection: Rejection) -> str:
    """Deterministic: resending the same bad input yields the same dead-letter id."""
    return str(uuid.uuid5(DEADLETTER_NAMESPACE, "\x1f".join((content_sha256, rejection.record, rejection.field,
                                                             rejection.reason))))


def input_key(content_sha256: str) -> bytes:
    """The input message's Kafka key: the content hash (rejection records are keyed by their dead-letter id)."""
    return content_sha256.encode()


def per_record(rejections: Sequence[Rejection]) -> list[list[Rejection]]:
    """The rejections grouped by the input record they name, in the order first named: one dead letter each. The
    whole input's problems (record "") are one group too."""
    groups: dict[tuple[str, str], list[Rejection]] = {}
    for rejection in rejections:
        groups.setdefault((rejection.source, rejection.record), []).append(rejection)
    return list(groups.values())


def bounded(records: Sequence[Sequence[Rejection]], source: str,
            limit: int = MAX_REJECTION_RECORDS) -> tuple[list[Sequence[Rejection]], Rejection | None]:
    """The rejected records dead-lettered one by one, and one value-free summary of the rest (None when all fit)."""
    if len(records) <= limit:
        return list(records), None
    rest = len(records) - limit
    return list(records[:limit]), Rejection(
        source, "", "", f"{rest} further rejected record(s) of this input not recorded one by one (limit {limit} "
        "per request); the HTTP answer listed every one")


def summary_reason(problems: Sequence[Rejection]) -> str:
    """The first problem's reason, saying how many more the record has: what the audit log keeps of a record."""
    first, more = problems[0].reason, len(problems) - 1
    return first if more <= 0 else f"{first} (and {more} more problem(s) in this record; its dead letter lists them)"


def sealed_input_size(size: int, overhead: int) -> int:
    """Bytes of the input message for an input of `size` bytes (base64 plus the seal and the message fields)."""
    return 4 * math.ceil((size + 16 + 12) / 3) + overhead + 1024


def input_message(*, content_sha256: str, agency: str, system: str | None, content_type: str | None,
                  received_at: str, size: int, tokens: Sequence[str], sealed: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": INPUT_KIND,
        "content_sha256": content_sha256,
        "received_at": received_at,
        "agency": agency,
        "system": system,
        "content_type": content_type,
        "size": size,
        "tokens": sorted(set(tokens)),  # pseudonymous linkage tokens, as on every event's Kafka key
        "sealed": sealed,
    }


def deadletter_record(rejection: Rejection, *, agency: str, system: str | None, content_type: str | None,
                      received_at: str, content_sha256: str, sealed_input: str | None = None,
                      problems: Sequence[Rejection] = ()) -> dict[str, Any]:
    """One rejected record (value-free), referencing the request's sealed input by its hash; a share worker's
    poison message (one message, one rejection) still carries its own sealed copy in `sealed_input`. `rejection` is
    the record's first problem; `problems`, when given, all of them (field, reason, line), bounded."""
    where: dict[str, Any] = {"input": sealed_input} if sealed_input is not None else {"input_ref": content_sha256}
    if problems:
        where["problems"] = [{"field": p.field, "reason": p.reason, "line": p.line}
                             for p in problems[:MAX_PROBLEMS_PER_RECORD]]
        if len(problems) > MAX_PROBLEMS_PER_RECORD:
            where["problems_not_listed"] = len(problems) - MAX_PROBLEMS_PER_RECORD
    return {
        "deadletter_id": deadletter_id(content_sha256, rejection),
        "received_at": received_at,
        "agency": agency,
        "system": system,
        "content_type": content_type,
        "content_sha256": content_sha256,
        "rejection": rejection.to_dict(),
        **where,
    }
