"""Reading the register facts a decision needs beyond the event, for a batch of children (the shell of
broker/pipeline/register_facts.py): the identity register (every token each child carried, its date of birth, and
the school and GP practice it is registered with) and the recorded determinations register (s47(9) requests,
adult-at-risk determinations), one query each per batch.

Used wherever the broker decides: the share workers (`batch_facts`, which also ends the s47(9) requests of children
whose case the case register shows closed, with an audit record), held-delivery release and the IG explain page
(`read_facts`, which writes nothing).
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from cryptography.exceptions import InvalidTag

from broker.aio import blocking
from broker.clock import now_iso
from broker.crypto import KeyShredded
from broker.crypto.errors import DecryptionFailed
from broker.pipeline.register_facts import (
    BatchFacts,
    Registration,
    birth_dates,
    child_birth_dates,
    child_registrations,
    children,
    plan_birth_dates,
    plan_registrations,
    registrations,
)
from broker.service.determinations import s47_record

if TYPE_CHECKING:
    from broker.crypto.provider import KeyProvider
    from broker.service.ports import FactsPorts
    from broker.stores.determinations import S47Request

# The schema's label of subject.child.date_of_birth: the data key that seals it in the identity register is the
# child's own identity key, so shredding the child leaves every copy unreadable, as it does the events.
BIRTH_DATE_CLASS = "identity"
_NONCE = 12


def _aad(token: str, key_id: str, what: str = "birth-date") -> bytes:
    # a sealed fact moved to another child, or to another kind of fact, fails
    return f"mash-{what}-v1\x1f{token}\x1f{key_id}".encode()


def _seal(keys: KeyProvider, token: str, text: str, what: str) -> str:
    dk = keys.encryption_key(token, BIRTH_DATE_CLASS)
    nonce = os.urandom(_NONCE)
    sealed = dk.aead.encrypt(nonce, text.encode(), _aad(token, dk.key_id, what))
    return f"{dk.key_id}:{binascii.b2a_base64(nonce + sealed, newline=False).decode()}"


def _open(keys: KeyProvider, token: str, sealed: str, what: str, field: str) -> str | None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key_id, _, body = sealed.partition(":")
    try:
        raw = binascii.a2b_base64(body, strict_mode=True)
        key = keys.decryption_key(key_id, f"{what.replace('-', ' ')} {token}")
    except KeyShredded:
        return None
    except (binascii.Error, ValueError):
        raise DecryptionFailed(field, "malformed ciphertext") from None
    try:
        return AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], _aad(token, key_id, what)).decode()
    except InvalidTag:
        raise DecryptionFailed(field) from None


def seal_birth_date(keys: KeyProvider, token: str, dob: str) -> str:
    """`<key id>:<base64(nonce || AES-256-GCM ciphertext)>` under the child's identity data key."""
    return _seal(keys, token, dob, "birth-date")


def open_birth_date(keys: KeyProvider, token: str, sealed: str) -> str | None:
    """The date sealed under `token`; None when its key was shredded. A key that is merely unavailable raises
    (fail closed, as revealing an event does); a date that does not authenticate raises DecryptionFailed."""
    return _open(keys, token, sealed, "birth-date", "birth_dates.sealed")


def seal_registration(keys: KeyProvider, token: str, reg: Registration) -> str:
    """The child's school or GP practice code with its record's date, sealed as a date of birth is (the kind is
    bound in: a sealed school cannot be passed off as a GP practice)."""
    return _seal(keys, token, orjson.dumps({"code": reg.code, "as_of": reg.as_of}).decode(), f"registration-{reg.kind}")


def open_registration(keys: KeyProvider, token: str, kind: str, sealed: str) -> Registration | None:
    """The registration sealed under `token`; None when its key was shredded (raises as `open_birth_date` does)."""
    text = _open(keys, token, sealed, f"registration-{kind}", "registrations.sealed")
    if text is None:
        return None
    body = orjson.loads(text)
    return Registration(kind, str(body["code"]), str(body["as_of"]))


def _opened(rt: FactsPorts, tokens: Iterable[str]) -> dict[str, str | None]:
    """token -> its date of birth (None: in conflict); tokens with none, or one shredded, are left out."""
    out: dict[str, str | None] = {}
    for token, sealed in rt.identities.sealed_birth_dates(tokens).items():
        if sealed is None:
            out[token] = None
        elif (dob := open_birth_date(rt.keys, token, sealed)) is not None:
            out[token] = dob
    return out


def _opened_registrations(rt: FactsPorts,
                          sealed: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, Registration]]:
    """token -> {kind: registration}; those under a shredded key are left out."""
    out: dict[str, dict[str, Registration]] = {}
    for token, held in sealed.items():
        for kind, text in held.items():
            if (reg := open_registration(rt.keys, token, kind, text)) is not None:
                out.setdefault(token, {})[kind] = reg
    return out


def _to_learn(rt: FactsPorts, events: Iterable[Mapping[str, Any]]) -> tuple[
        list[tuple[str, str]], list[str], list[tuple[str, Registration]]]:
    """(dates learned, date conflicts, registrations learned) for these events as the register stands (blocking)."""
    events = list(events)
    dates, named = birth_dates(events), registrations(events)
    if not (dates or named) or rt.identities is None:
        return [], [], []
    learned, conflicts = plan_birth_dates(dates, _opened(rt, (t for t, _ in dates))) if dates else ([], [])
    regs = plan_registrations(named, _opened_registrations(
        rt, rt.identities.sealed_registrations(t for t, _ in named))) if named else []
    return learned, conflicts, regs


def facts_to_learn(rt: FactsPorts, events: Iterable[Mapping[str, Any]]) -> bool:
    """Whether `learn_facts` would write anything for these events as the register stands (blocking: reads
    only). Intake asks before publishing, so that a request about children whose dates of birth, schools and GP
    practices are held already makes no second thread hop; `learn_facts` still decides on its own fresh read."""
    return any(_to_learn(rt, events))


def learn_facts(rt: FactsPorts, events: Iterable[Mapping[str, Any]], at: str) -> None:
    """Intake: the identity register learns the dates of birth, schools and GP practices the accepted events carry
    (the latest record's school and practice win)."""
    learned, conflicts, regs = _to_learn(rt, events)
    if rt.identities is None:
        return
    if learned or conflicts:
        rt.identities.record_birth_dates([(t, seal_birth_date(rt.keys, t, dob)) for t, dob in learned], conflicts, at)
    if regs:
        rt.identities.record_registrations([(t, r.kind, seal_registration(rt.keys, t, r)) for t, r in regs], at)


def read_facts(rt: FactsPorts, tokens: Iterable[str]) -> BatchFacts:
    """The determinations in force, and the dates of birth, schools and GP practices of these children (under any
    token each carried: one query of the identity register for all three)."""
    wanted = list(dict.fromkeys(tokens))
    if not wanted or rt.identities is None:
        return BatchFacts()
    known = rt.identities.known(wanted)
    tied = children(wanted, known.child_of, known.members)
    determined = rt.determinations.in_force(tied)
    sealed = rt.identities.sealed_facts(t for ts in tied.values() for t in ts)
    dates: dict[str, str | None] = {}
    for token, held in sealed.birth_dates.items():
        if held is None:
            dates[token] = None
        elif (dob := open_birth_date(rt.keys, token, held)) is not None:
            dates[token] = dob
    return BatchFacts(determined, child_birth_dates(tied, dates),
                      child_registrations(tied, _opened_registrations(rt, sealed.registrations)))


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
    states = rt.cases.open_states(open_requests)  # one query for the batch, none when nothing is open
    closed = [t for t in open_requests if states[t] is False]
    if not closed or rt.determinations is None:
        return facts, []
    ended = rt.determinations.end_closed((a for t in closed for a in open_requests[t].s47_open), at=now_iso())
    return read_facts(rt, tokens), ended

