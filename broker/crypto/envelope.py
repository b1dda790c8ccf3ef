"""Field-level envelope encryption of canonical events, and of dead-letter payloads. Pure: keys come from a provider.

Every leaf whose classification is not `operational` is replaced by the string

    enc:v1:<key_id>:<base64(nonce[12] || AES-256-GCM ciphertext+tag)>

The plaintext is the leaf's JSON text (so strings, numbers, booleans and null come back with their type), padded
with spaces to a multiple of 16 bytes so a ciphertext's length only roughly hints at its value's length. The key is
the data key for (linkage token, classification). The associated data binds the event id, schema version, linkage
token, the concrete field path (with list indices, e.g. `subject.child.given_names[0]`) and the key id: a ciphertext
copied to another field or another event, or an event re-keyed to another child, fails to open.

Revealing marks a leaf whose key was shredded with SHREDDED (the string "[shredded]") and lists its path; a key that
is merely unavailable raises KeyUnavailable (fail closed), or, when asked, becomes UNAVAILABLE ("[unavailable]").
Neither ever yields plaintext. The structure stays in the clear: keys, list lengths and operational values.
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.crypto.errors import CryptoError, DecryptionFailed, KeyShredded, KeyUnavailable
from broker.crypto.provider import KeyProvider
from broker.schema.classification import field_classes

PREFIX = "enc:v1:"
SHREDDED = "[shredded]"
UNAVAILABLE = "[unavailable]"
DEADLETTER_SCOPE = "deadletter"
_NONCE = 12
_PAD = 16


@dataclass(frozen=True, slots=True)
class Revealed:
    """A revealed event, and the concrete paths of leaves that could not be opened (their value is a marker)."""

    event: dict[str, Any]
    shredded: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)


def _nonce_stream() -> Iterator[bytes]:
    """Random 96-bit nonces drawn from the OS in blocks: one syscall per 64 fields instead of one per field (a
    generator: `next()` on it costs less than a method call per field)."""
    while True:
        block = os.urandom(_NONCE * 64)
        for start in range(0, _NONCE * 64, _NONCE):
            yield block[start:start + _NONCE]


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode()


# The plaintext of a leaf is its JSON text padded with spaces to a multiple of 16: the padding by length mod 16.
_PADDING = tuple(b" " * (-n % _PAD) for n in range(_PAD))


class _Node:
    """One schema position: its label if it is a leaf, and its children by key ("[]" for list items)."""

    __slots__ = ("children", "label")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.label = "narrative"  # what an unexpected scalar here counts as: fail closed


_SCALARS = frozenset({str, int, float, bool, type(None)})  # JSON leaves: never a dict or a list
_UNKNOWN = _Node()  # any position the schema does not know: narrative, and so is everything under it


@cache
def _schema_tree(event_type: str) -> _Node:
    """The classified leaf paths of an event type as a tree, so walking an event builds no schema-path strings."""
    root = _Node()
    for path, label in field_classes(event_type).items():
        node = root
        for part in path.split("."):
            node = node.children.setdefault(part.partition("[")[0], _Node())
            for _ in range(part.count("[]")):  # "lines[]": the list, then its items
                node = node.children.setdefault("[]", _Node())
        node.label = label
    return root


def _envelope_header(event: Mapping[str, Any]) -> tuple[str, str, _Node]:
    """(linkage token, associated-data prefix, schema tree) of an event; CryptoError naming what is missing."""
    try:
        event_id, version = event["event_id"], event["schema_version"]
        token = event["subject"]["linkage"]["token"]
        event_type = event["event_type"]
    except (KeyError, TypeError):
        raise CryptoError("event lacks event_id, schema_version, event_type or subject.linkage.token") from None
    if not all(isinstance(v, str) and v for v in (event_id, version, token, event_type)):
        raise CryptoError("event_id, schema_version, event_type and the linkage token must be non-empty strings")
    return token, f"mash-enc-v1\x1f{event_id}\x1f{version}\x1f{token}\x1f", _schema_tree(event_type)


def _map_leaves(value: Any, tree: _Node, leaf: Callable[[Any, str, str], Any]) -> Any:
    """A copy of `value` with `leaf(value, concrete path, classification)` applied to every scalar that is not
    operational (operational scalars are kept). Unknown paths count as narrative: fail closed. One walk for protect
    and reveal (`_copy_collecting`): the leaves are listed as the copy is made, then each is replaced in place."""
    box, pending = _copy_collecting(value, tree)
    for out, where, v, path, classification in pending:
        out[where] = leaf(v, path, classification)
    return box[0]


# One leaf to seal: (the copy's container, its key or index there, the value, concrete path, classification).
_Pending = tuple[Any, Any, Any, str, str]


def _copy_collecting(value: Any, tree: _Node) -> tuple[list[Any], list[_Pending]]:
    """A copy of `value` (in a one-item box, so a bare scalar has a container too) with every non-operational scalar
    left in place and listed, in walk order, for sealing or opening. One walk where protect used to make two (the
    classifications first, for the keys, then the copy), which was a third of its CPU (session 12).

    The hot path of protect and reveal: scalars are handled inline (no call per leaf) and a concrete path string is
    only built for a container's prefix or a listed leaf. Plain dict and list are tested by exact type first;
    subclasses still take the same branches through isinstance."""
    pending: list[_Pending] = []
    add = pending.append

    def walk_dict(node: Mapping[str, Any], children: dict[str, _Node], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in node.items():
            schema = children.get(k, _UNKNOWN)
            t = type(v)
            if t in _SCALARS:
                out[k] = v
                label = schema.label
                if label != "operational":
                    add((out, k, v, f"{prefix}{k}", label))
            elif t is dict or (t is not list and isinstance(v, dict)):
                path = f"{prefix}{k}"
                out[k] = walk_dict(v, schema.children, f"{path}." if path else "")  # "" key at the top: no dot
            elif t is list or isinstance(v, list):
                out[k] = walk_list(v, schema.children.get("[]", _UNKNOWN), f"{prefix}{k}")
            else:
                out[k] = v
                label = schema.label
                if label != "operational":
                    add((out, k, v, f"{prefix}{k}", label))
        return out

    def walk_list(items: list[Any], schema: _Node, concrete: str) -> list[Any]:
        out: list[Any] = []
        label = schema.label
        sealed = label != "operational"
        for i, v in enumerate(items):
            t = type(v)
            if t in _SCALARS:
                out.append(v)
                if sealed:
                    add((out, i, v, f"{concrete}[{i}]", label))
            elif t is dict or (t is not list and isinstance(v, dict)):
                out.append(walk_dict(v, schema.children, f"{concrete}[{i}]."))
            elif t is list or isinstance(v, list):
                out.append(walk_list(v, schema.children.get("[]", _UNKNOWN), f"{concrete}[{i}]"))
            else:
                out.append(v)
                if sealed:
                    add((out, i, v, f"{concrete}[{i}]", label))
        return out

    box: list[Any] = [None]
    t = type(value)
    if t is dict or (t is not list and isinstance(value, dict)):
        box[0] = walk_dict(value, tree.children, "")
    elif t is list or isinstance(value, list):
        box[0] = walk_list(value, tree.children.get("[]", _UNKNOWN), "")
    else:
        box[0] = value
        if tree.label != "operational":
            add((box, 0, value, "", tree.label))
    return box, pending


@dataclass(slots=True)
class Unsealed:
    """An event copied and its leaves to seal listed (`unsealed`), not yet encrypted (`seal`): a planner can first
    ask the key store for every event's keys at once (`KeyPreparer`), then seal each."""

    scope: str
    event_id: str
    aad_head: str
    box: list[Any]
    pending: list[_Pending]

    @property
    def classifications(self) -> list[str]:
        return sorted({p[4] for p in self.pending})


def unsealed(event: Mapping[str, Any], *, scope: str | None = None) -> Unsealed:
    """The first half of `protect_event`: CryptoError if the event lacks its id, version, type or token."""
    token, aad_head, tree = _envelope_header(event)
    box, pending = _copy_collecting(event, tree)
    return Unsealed(scope or token, event["event_id"], aad_head, box, pending)


def seal(todo: Unsealed, keys: KeyProvider) -> dict[str, Any]:
    """The second half of `protect_event` (once per Unsealed: it fills its copy in place)."""
    # per classification: one key (one counted use) per event, all asked for at once so that a new child's keys are
    # made in one transaction (asked for even when there are none: the provider's erasure refusal must still run);
    # and the key's cipher, ciphertext prefix and associated-data tail, so that each leaf only formats its path
    sealers = {c: (dk.aead.encrypt, f"{PREFIX}{dk.key_id}:", f"\x1f{dk.key_id}")
               for c, dk in keys.encryption_keys(todo.scope, todo.classifications, event_id=todo.event_id).items()}
    nonces = _nonce_stream()
    dumps, b2a_base64, aad_head = orjson.dumps, binascii.b2a_base64, todo.aad_head  # bound once, not per field
    for out, where, value, path, classification in todo.pending:
        encrypt, head, tail = sealers[classification]
        nonce = next(nonces)
        text = dumps(value)
        sealed = encrypt(nonce, text + _PADDING[len(text) % _PAD], f"{aad_head}{path}{tail}".encode())
        out[where] = head + b2a_base64(nonce + sealed, newline=False).decode()
    protected: dict[str, Any] = todo.box[0]  # a dict in, a dict out
    return protected


def protect_event(event: Mapping[str, Any], keys: KeyProvider, *, scope: str | None = None) -> dict[str, Any]:
    """A copy of the event with every non-operational leaf encrypted under its child's key for its classification.

    Unknown leaf paths count as narrative (fail closed). The input is not changed. `scope` replaces the child's
    token as the key scope: the broker's own notices about a child (person.erased) must not live or die with the
    child's keys. The event id goes to the key provider, which refuses an erased child's old events (ErasedData).
    """
    return seal(unsealed(event, scope=scope), keys)


def _split(value: Any, path: str) -> tuple[str, bytes, bytes]:
    """(key id, nonce, ciphertext) of one protected leaf."""
    if not isinstance(value, str) or not value.startswith(PREFIX):
        raise DecryptionFailed(path, "expected a ciphertext (enc:v1:...)")
    key_id, sep, body = value[len(PREFIX):].partition(":")
    try:
        raw = binascii.a2b_base64(body, strict_mode=True)
    except (binascii.Error, ValueError):
        raw = b""
    if not sep or not key_id or len(raw) < _NONCE + 16:
        raise DecryptionFailed(path, "malformed ciphertext")
    return key_id, raw[:_NONCE], raw[_NONCE:]


def reveal_event(protected: Mapping[str, Any], keys: KeyProvider, *, reason: str | None = None,
                 on_unavailable: Literal["raise", "mark"] = "raise") -> Revealed:
    """Open every protected leaf.

    Shredded key: the leaf becomes SHREDDED and its path is listed in `shredded`. Unavailable key: KeyUnavailable is
    raised, or with on_unavailable="mark" the leaf becomes UNAVAILABLE and is listed. A ciphertext that does not
    authenticate raises DecryptionFailed naming its path. `reason` goes to the key provider's unwrap audit hook.
    """
    _, aad_head, tree = _envelope_header(protected)
    why = reason or f"event {protected['event_id']}"
    ciphers: dict[str, AESGCM | str] = {}  # key id -> cipher, or the marker to put in its leaves
    shredded: list[str] = []
    unavailable: list[str] = []

    def cipher_for(key_id: str) -> AESGCM | str:
        found = ciphers.get(key_id)
        if found is None:
            try:
                found = AESGCM(keys.decryption_key(key_id, why))
            except KeyShredded:
                found = SHREDDED
            except KeyUnavailable:
                if on_unavailable == "raise":
                    raise
                found = UNAVAILABLE
            ciphers[key_id] = found
        return found

    def decrypt(value: Any, path: str, _classification: str) -> Any:
        key_id, nonce, sealed = _split(value, path)
        cipher = ciphers.get(key_id) or cipher_for(key_id)
        if isinstance(cipher, str):
            (shredded if cipher == SHREDDED else unavailable).append(path)
            return cipher
        try:
            plain = cipher.decrypt(nonce, sealed, f"{aad_head}{path}\x1f{key_id}".encode())
        except InvalidTag:
            raise DecryptionFailed(path) from None
        return orjson.loads(plain)

    event = _map_leaves(protected, tree, decrypt)
    return Revealed(event, shredded, unavailable)


def _blob_aad(context: str, key_id: str) -> bytes:
    return f"mash-blob-v1\x1f{context}\x1f{key_id}".encode()


def protect_blob(data: bytes, context: str, keys: KeyProvider, *, scope: str = DEADLETTER_SCOPE) -> str:
    """Encrypt raw bytes (a rejected input) under a narrative key of `scope`; `context` (e.g. the dead-letter's
    content hash) is bound as associated data and must be given again to open it.

    Passing a scope per retention period (e.g. "deadletter:2026-01") lets expired dead letters be shredded at once.
    """
    dk = keys.encryption_key(scope, "narrative")
    nonce = os.urandom(_NONCE)
    sealed = dk.aead.encrypt(nonce, bytes(data), _blob_aad(context, dk.key_id))
    return f"{PREFIX}{dk.key_id}:{_b64(nonce + sealed)}"


def reveal_blob(sealed: str, context: str, keys: KeyProvider, *, reason: str | None = None) -> bytes:
    """The bytes protect_blob encrypted. Raises KeyShredded, KeyUnavailable, or DecryptionFailed (wrong context,
    tampering)."""
    key_id, nonce, ciphertext = _split(sealed, "blob")
    cipher = AESGCM(keys.decryption_key(key_id, reason or f"blob {context}"))
    try:
        return cipher.decrypt(nonce, ciphertext, _blob_aad(context, key_id))
    except InvalidTag:
        raise DecryptionFailed("blob") from None
