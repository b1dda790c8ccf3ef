"""Reprocessing a dead letter: find it and the sealed input it references, open the input, run intake again.

Erasure comes first. A dead letter's input is refused (DeadLetterErased, 409, value-free) when any child it names was
erased after the input was received: by the tokens recorded beside the sealed input, before it is opened; and,
because an adapter fixed since may now read records it could not name then, by the tokens the opened input's
events carry, before anything is published. Shredding any of those children has also destroyed one share of the
input's content key (broker/crypto/split_seal.py), so such an input usually cannot be opened at all; a dead letter
received after a child's erasure is new data and may be reprocessed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from adapters.kit.interface import AdaptContext
from adapters.kit.registry import AGENCIES
from broker.aio import blocking
from broker.crypto import KeyShredded
from broker.crypto.split_seal import open_split
from broker.errors import Conflict, NotFound
from broker.kafka.scan import scan_topic
from broker.pipeline.deadletter import INPUT_KIND, input_key
from broker.pipeline.intake import prepare
from broker.schema.envelope import linkage_token
from broker.service.intake import IntakeResult, ingest
from broker.service.messages import decode

if TYPE_CHECKING:
    from broker.service.ports import ReprocessPorts



class DeadLetterNotFound(NotFound, LookupError):
    pass


class DeadLetterErased(Conflict, PermissionError):
    """The dead letter's input names a child erased after it was received: it is not opened or reprocessed."""

    def __init__(self, deadletter_id: str) -> None:
        super().__init__(f"dead letter {deadletter_id}: its input is about a child erased after it was received; "
                         "it is not reopened or reprocessed")


async def find_deadletter(rt: ReprocessPorts, deadletter_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The rejection record (newest wins) and the input message it references (None for a record that carries
    its input, or none). One scan: the topic is small and read rarely."""
    found: dict[str, Any] | None = None
    inputs: dict[bytes, dict[str, Any]] = {}
    async for record in scan_topic(rt.bootstrap, rt.settings.topics.deadletter, **rt.kafka_security):
        if record.key == deadletter_id.encode():
            found = decode(record.value)
        elif record.key is not None and len(record.key) == 64:
            value = decode(record.value)
            if isinstance(value, dict) and value.get("kind") == INPUT_KIND:
                inputs[record.key] = value
    if found is None or not isinstance(found, dict):
        raise DeadLetterNotFound(deadletter_id)
    ref = found.get("input_ref")
    return found, inputs.get(input_key(ref)) if isinstance(ref, str) else None


def _ms(when: str) -> float:
    return dt.datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp()


def erased_since(rt: ReprocessPorts, tokens: Iterable[str], received_at: str) -> bool:
    """Whether any of the tokens was erased at or after `received_at` (the input is older than the erasure)."""
    wanted = [t for t in tokens if isinstance(t, str)]
    if rt.erasures is None or not wanted:
        return False
    return any(_ms(at) >= _ms(received_at) for at in rt.erasures.erased_at(wanted).values())


def _open_input(rt: ReprocessPorts, deadletter_id: str, record: dict[str, Any], kept: dict[str, Any] | None) -> bytes:
    if kept is not None:
        if erased_since(rt, kept.get("tokens") or (), kept["received_at"]):
            raise DeadLetterErased(deadletter_id)
        try:
            return open_split(kept["sealed"], f"deadletter:{kept['content_sha256']}", rt.keys)
        except KeyShredded:  # a child's share (or the dead-letter scope) was shredded
            raise DeadLetterErased(deadletter_id) from None
    if record.get("input"):  # a record from before inputs were kept once per request, or a worker's poison message
        try:
            return rt.open_deadletter_input(record["input"], record["content_sha256"])
        except KeyShredded:
            raise DeadLetterErased(deadletter_id) from None
    raise DeadLetterNotFound(f"{deadletter_id} (its input was not kept)")


def _named_erased_since(rt: ReprocessPorts, named: list[str], received_at: str) -> bool:
    """Whether a child the input names (under the token it carries now, too) was erased since it was received."""
    if named:
        named = [*named, *(rt.identities.current(t) for t in set(named))]
    return erased_since(rt, named, received_at)


async def reprocess(rt: ReprocessPorts, deadletter_id: str, actor: str) -> IntakeResult:
    """Run the dead letter's original input through intake again (after an adapter fix or a protocol change)."""
    record, kept = await find_deadletter(rt, deadletter_id)
    if record.get("agency") not in AGENCIES:
        raise DeadLetterNotFound(f"{deadletter_id} is a worker dead letter (no agency input to reprocess)")
    data = await blocking(_open_input, rt, deadletter_id, record, kept)
    received_at = (kept or record)["received_at"]
    # the children the input names today (an adapter fixed since may read more of it): none erased since
    ctx = AdaptContext(source="reprocess", received_at=received_at, system=record.get("system"),
                       settings=rt.adapter_settings)
    prepared = await blocking(prepare, record["agency"], data, ctx, rt.linkage,
                              content_type=record.get("content_type"))
    named = [i.token for ids in prepared.identities for i in ids] + prepared.rejected_tokens
    named += [linkage_token(e) for e in prepared.events]
    if await blocking(_named_erased_since, rt, named, received_at):
        raise DeadLetterErased(deadletter_id)
    result = await ingest(rt, record["agency"], data, content_type=record.get("content_type"),
                          system=record.get("system"), actor=actor, source=f"reprocess:{deadletter_id}")
    await rt.emit_audit([rt.audit_record("admin_action", time=record["received_at"], actor=actor,
                                         action="deadletter.reprocess", target=deadletter_id,
                                         count=len(result.event_ids))])
    return result
