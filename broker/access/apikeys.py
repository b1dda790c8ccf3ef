"""The broker's own API keys: random 32-byte tokens of which only the SHA-256 is stored (a fast hash is right for
high-entropy keys), each with one role and, for intake, subscriber and decision_maker keys, one scope (the agency,
subscriber or partner it may act for). HTTP authentication is broker/api/auth.py; this module is I/O on one file
and imports nothing above it, so the service and the CLI open the key list without importing the HTTP layer.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from broker.access.principal import ROLES, SCOPED, Principal
from broker.logging import get_logger

__all__ = ["RECHECK_S", "ApiKeyStore", "scope_problem"]

RECHECK_S = 1.0  # how often the key file's identity (inode, size, mtime) is looked at: once a second at most
log = get_logger("mash.auth")


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def scope_problem(role: str, scope: str | None, agencies: Collection[str] | None = None,
                  subscribers: Collection[str] | None = None, partners: Collection[str] | None = None) -> str | None:
    """Why this role and scope cannot make a key, or None. Pure: the caller gives the agencies and the protocol's
    subscribers and partners (None: not checked). The message names the role and the choices, never the scope
    given."""
    if role not in ROLES:
        return f"unknown role (expected one of {', '.join(ROLES)})"
    if (role in SCOPED) != (scope is not None):
        return f"role {role} {'needs' if role in SCOPED else 'takes no'} scope"
    known = {"intake": agencies, "subscriber": subscribers, "decision_maker": partners,
             "hub_decision": subscribers}.get(role)
    if known is not None and scope not in known:
        what = {"intake": "agency", "subscriber": "subscriber in the protocol",
                "decision_maker": "partner in the protocol", "hub_decision": "hub subscriber in the protocol"}[role]
        return f"no such {what} for an {role} key (expected one of {', '.join(sorted(known)) or 'none'})"
    return None


class ApiKeyStore:
    """Hashed keys in a JSON file (0600), shared by the running service and `mash-broker apikeys`.

    The service sees a key created or revoked by another process within about a second: authenticate() looks at
    the file's inode, size and modification time at most once a second (one stat, no parse) and reads the file again
    only when one changed. A file that disappears revokes every key; one that cannot be read or parsed refuses
    every key until it is fixed (fail closed: a revocation must never be undone by a broken file). Writers take an
    exclusive lock beside the file and re-read it first, so two commands never lose each other's change."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._keys: dict[str, Principal] = {}
        self._seen: tuple[int, int, int] | None = None
        self._checked_at = clock()
        self.reload()

    def _identity(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def reload(self) -> None:
        """Read the file now (raises on a file that is not a key list)."""
        seen = self._identity()
        if seen is None:
            self._keys, self._seen = {}, None
            return
        rows = json.loads(self.path.read_text())["keys"]
        self._keys = {r["sha256"]: Principal(r["id"], r["role"], r.get("scope")) for r in rows}
        self._seen = seen

    def refresh(self) -> None:
        """Re-read the file if it changed since it was last read, looking at most once per RECHECK_S."""
        now = self._clock()
        if now - self._checked_at < RECHECK_S:
            return
        self._checked_at = now
        seen = self._identity()
        if seen == self._seen:
            return
        try:
            self.reload()
        except (OSError, ValueError, KeyError, TypeError):
            self._keys, self._seen = {}, seen  # fail closed until the file is readable again
            log.error("api_keys_unreadable", path=str(self.path))

    @contextmanager
    def _writing(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_suffix(".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.reload()  # another process may have written since this one read
            yield
        finally:
            os.close(fd)

    def _save(self) -> None:
        rows = [{"id": p.key_id, "sha256": h, "role": p.role, "scope": p.scope} for h, p in self._keys.items()]
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"keys": rows}, f, indent=1)
        os.replace(tmp, self.path)  # a new inode: readers see the whole old file or the whole new one
        self._seen = self._identity()

    def create(self, role: str, scope: str | None = None, *, agencies: Collection[str] | None = None,
               subscribers: Collection[str] | None = None,
               partners: Collection[str] | None = None) -> tuple[str, Principal]:
        """A new key (returned once, never stored) and its principal. With `agencies` / `subscribers` / `partners`
        given, an intake, subscriber or decision_maker scope must be one of them."""
        problem = scope_problem(role, scope, agencies, subscribers, partners)
        if problem:
            raise ValueError(problem)
        key = "mbk_" + secrets.token_urlsafe(32)
        principal = Principal("k_" + secrets.token_hex(6), role, scope)
        with self._writing():
            self._keys[_digest(key)] = principal
            self._save()
        return key, principal

    def revoke(self, key_id: str) -> Principal | None:
        """Remove the key; returns what it was (None: no such key id)."""
        with self._writing():
            gone = next((p for p in self._keys.values() if p.key_id == key_id), None)
            if gone is not None:
                self._keys = {h: p for h, p in self._keys.items() if p.key_id != key_id}
                self._save()
        return gone

    def principals(self) -> list[Principal]:
        self.refresh()
        return list(self._keys.values())

    def authenticate(self, key: str) -> Principal | None:
        self.refresh()
        digest = _digest(key)
        found = None
        for stored, principal in self._keys.items():  # constant-time compare over all keys
            if hmac.compare_digest(stored, digest):
                found = principal
        return found
