"""The child's name and date of birth, revealed for a subject access report (an IG officer's request, audited).

The broker keeps no name in the clear: the only copy is in the encrypted events on the events topic. So the name is
read back from the newest event recorded about the child: that one event is found on the topic (by its linkage-token
key and event id), cut down to the child's names and date of birth before anything is opened, and only those leaves
are decrypted: one identity data key is unwrapped, which the key provider audits as a `key_unwrap`, and the IG route
records the reveal itself (admin_action `ig.reveal_identity`). Nothing else of the event is opened.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import aclosing
from typing import Any

from broker.aio import blocking
from broker.crypto import reveal_event
from broker.crypto.envelope import SHREDDED, UNAVAILABLE
from broker.kafka.scan import scan_topic
from broker.service.messages import decode

NAME_FIELDS = ("given_names", "family_name", "date_of_birth")  # of subject.child: identity, one data key
REASON = "ig subject access report"


def name_leaves(protected: Mapping[str, Any]) -> dict[str, Any]:
    """The sealed event cut to what opening the child's name needs: the envelope's binding fields (event id,
    schema version, type, token: the associated data) and subject.child's name and birth date ciphertexts."""
    child = (protected.get("subject") or {}).get("child") or {}
    return {"event_id": protected["event_id"], "schema_version": protected["schema_version"],
            "event_type": protected["event_type"],
            "subject": {"linkage": dict(protected["subject"]["linkage"]),
                        "child": {k: child[k] for k in NAME_FIELDS if k in child}}}


def child_words(child: Mapping[str, Any]) -> dict[str, str] | None:
    """{"name", "date_of_birth"} from revealed leaves; None if the name was shredded, unavailable or absent."""
    given = child.get("given_names") or []
    parts = [*(given if isinstance(given, list) else [given]), child.get("family_name")]
    words = [str(p) for p in parts if p and p not in (SHREDDED, UNAVAILABLE)]
    if not words or any(p in (SHREDDED, UNAVAILABLE) for p in parts if p):
        return None
    born = child.get("date_of_birth")
    return {"name": " ".join(words),
            **({"date_of_birth": str(born)} if born and born not in (SHREDDED, UNAVAILABLE) else {})}


async def reveal_child_name(rt: Any, tokens: Sequence[str], event_ids: Sequence[str]) -> dict[str, str] | None:
    """The child's name from the newest of `event_ids` found on the events topic (newest first); None when none is
    there any more (retention passed, or the child was erased: their keys are shredded)."""
    wanted = {eid: rank for rank, eid in enumerate(event_ids)}
    keys = {t.encode() for t in tokens}
    best: tuple[int, dict[str, Any]] | None = None
    records = scan_topic(rt.bootstrap, rt.settings.topics.events, **rt.kafka_security)
    async with aclosing(records):  # stopping early must still stop the consumer
        async for record in records:
            if record.key not in keys:
                continue  # another child's event: not even decoded
            sealed = decode(record.value)
            rank = wanted.get(sealed.get("event_id", ""))
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, sealed)
                if rank == 0:
                    break
    if best is None:
        return None
    revealed = await blocking(reveal_event, name_leaves(best[1]), rt.keys, reason=REASON, on_unavailable="mark")
    return child_words(revealed.event["subject"]["child"])
