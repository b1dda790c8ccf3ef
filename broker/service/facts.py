"""Reading the register facts a decision needs beyond the event, for a batch of children (the shell of
broker/pipeline/register_facts.py): the identity register (every token each child carried, and its date of birth)
and the recorded determinations register (s47(9) requests, adult-at-risk determinations), one query each per
batch.

Used wherever the broker decides: the share workers (`batch_facts`, which also ends the s47(9) requests of children
whose case the case register shows closed, with an audit record), held-delivery release and the IG explain page
(`read_facts`, which writes nothing).
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag

from broker.aio import blocking
from broker.clock import now_iso
from broker.crypto import KeyShredded
from broker.crypto.errors import DecryptionFailed
from broker.pipeline.register_facts import BatchFacts, birth_dates, child_birth_dates, children, plan_birth_dates
from broker.service.determinations import s47_record

if TYPE_CHECKING:
    from broker.crypto.provider import KeyProvider
    from broker.service.ports import FactsPorts
    from broker.stores.determinations import S47Request

# The schema's label of subject.child.date_of_birth: the data key that seals it in the identity register is the
# child's own identity key, so shredding the child leaves every copy unreadable, as it does the events.
BIRTH_DATE_CLASS = "identity"
_NONCE = 12


def _aad(token: str, key_id: str) -> bytes:
    return f"mash-birth-date-v1\x1f{token}\x1f{key_id}".encode()  # a sealed date moved to another child fails


def seal_birth_date(keys: KeyProvider, token: str, dob: str) -> str:
    """`<key id>:<base64(nonce || AES-256-GCM ciphertext)>` under the child's identity data key."""
    dk = keys.encryption_key(token, BIRTH_DATE_CLASS)
    nonce = os.urandom(_NONCE)
    sealed = dk.aead.encrypt(nonce, dob.encode(), _aad(token, dk.key_id))
    return f"{dk.key_id}:{binascii.b2a_base64(nonce + sealed, newline=False).decode()}"


def open_birth_date(keys: KeyProvider, token: str, sealed: str) -> str | None:
    """The date sealed under `token`; None when its key was shredded. A key that is merely unavailable raises
    (fail closed, as revealing an event does); a date that does not authenticate raises DecryptionFailed."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key_id, _, body = sealed.partition(":")
    try:
        raw = binascii.a2b_base64(body, strict_mode=True)
        key = keys.decryption_key(key_id, f"birth date {token}")
    except KeyShredded:
        return None
    except (binascii.Error, ValueError):
        raise DecryptionFailed("birth_dates.sealed", "malformed ciphertext") from None
    try:
        return AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], _aad(token, key_id)).decode()
    except InvalidTag:
        raise DecryptionFailed("birth_dates.sealed") from None


def _opened(rt: FactsPorts, tokens: Iterable[str]) -> dict[str, str | None]:
    """token -> its date of birth (None: in conflict); tokens with none, or one shredded, are left out."""
    out: dict[str, str | None] = {}
    for token, sealed in rt.identities.sealed_birth_dates(tokens).items():
        if sealed is None:
            out[token] = None
        elif (dob := open_birth_date(rt.keys, token, sealed)) is not None:
            out[token] = dob
    return out


def birth_dates_to_learn(rt: FactsPorts, events: Iterable[Mapping[str, Any]]) -> bool:
    """Whether `learn_birth_dates` would write anything for these events as the register stands (blocking: one
    read). Intake asks before publishing, so that a request about children whose dates are held already makes no
    second thread hop; `learn_birth_dates` still decides on its own fresh read."""
    dates = birth_dates(events)
    if not dates or rt.identities is None:
        return False
    learned, conflicts = plan_birth_dates(dates, _opened(rt, (t for t, _ in dates)))
    return bool(learned or conflicts)


def learn_birth_dates(rt: FactsPorts, events: Iterable[Mapping[str, Any]], at: str) -> None:
    """Intake: the identity register learns the dates of birth the accepted events carry (one read, one write)."""
    dates = birth_dates(events)
    if not dates or rt.identities is None:
        return
    learned, conflicts = plan_birth_dates(dates, _opened(rt, (t for t, _ in dates)))
    rt.identities.record_birth_dates([(t, seal_birth_date(rt.keys, t, dob)) for t, dob in learned], conflicts, at)


def read_facts(rt: FactsPorts, tokens: Iterable[str]) -> BatchFacts:
    """The determinations in force and the dates of birth of these children (under any token each carried)."""
    wanted = list(dict.fromkeys(tokens))
    if not wanted or rt.identities is None:
        return BatchFacts()
    known = rt.identities.known(wanted)
    tied = children(wanted, known.child_of, known.members)
    determined = rt.determinations.in_force(tied)
    return BatchFacts(determined, child_birth_dates(tied, _opened(rt, (t for ts in tied.values() for t in ts))))


async def batch_facts(rt: FactsPorts, tokens: Iterable[str]) -> BatchFacts:
    """`read_facts` for a share batch, after ending the s47(9) requests of children whose case is closed (their
    end is audited at once: the register's write is not part of the batch's Kafka transaction)."""
    facts, ended = await blocking(_ending_closed, rt, list(tokens))
    if ended:
        await rt.emit_audit([s47_record(rt, r, "ended", "share", r.end_reason) for r in ended])
    return facts


def _ending_closed(rt: FactsPorts, tokens: list[str]) -> tuple[BatchFacts, list[S47Request]]:
    """The registers' part of `batch_facts` (blocking): the facts once the closed cases' requests are ended."""
    facts = read_facts(rt, tokens)
    open_requests = {t: d for t, d in facts.determined.items() if d.s47_open}
    closed = [t for t in open_requests if rt.cases.is_open(t) is False]
    if not closed or rt.determinations is None:
        return facts, []
    ended = rt.determinations.end_closed((a for t in closed for a in open_requests[t].s47_open), at=now_iso())
    return read_facts(rt, tokens), ended

