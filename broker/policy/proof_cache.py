"""A proof paid once: the verdict "proven" kept on disk, keyed by everything the verdict depends on.

Proving the sample protocol costs seconds of CPU, and CI starts many service processes on the same file. The key is
sha256 over the protocol file's bytes, a digest of the code and schemas that decide and prove (every
broker/policy/*.py and broker/schema/*.py source, every schemas/*.json, computed once per process) and the broker's
version. The value is the proof's summary, and only a proof that passed is ever written: a refused protocol (an
invariant broken, or unprovable) leaves no entry, so there is no "refused" verdict to flip.

**Why an entry can be trusted.** An entry can only let a start skip a proof that this same code already passed for
these same bytes:
- the key hashes the bytes, so an entry made for a proven file is never found for a broken one unless the broken
  file's bytes have the same SHA-256 (a second preimage);
- the entry repeats its key and the protocol's invariant ids inside it, so a proven file's entry copied or renamed
  to a broken file's key is ignored;
- an entry, or the folder holding it, that another user owns or that group or others may write is ignored (the
  rule ssh applies to ~/.ssh): writing a trusted entry then needs the same access as editing the protocol file or
  the broker's own code, which could skip the proof anyway.
Anything unreadable, malformed, foreign or not exactly "proven" is ignored and the proof runs (and its entry is
written again). Entries are written atomically (a temporary file in the folder, then a rename).

`MASH_PROOF_CACHE`: the folder (default `$XDG_CACHE_HOME/mash-broker/proofs`, else `~/.cache/mash-broker/proofs`);
`off` disables the cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import orjson

import broker
from broker.policy.model import Protocol

log = logging.getLogger(__name__)

ENV = "MASH_PROOF_CACHE"
FORMAT = 1  # the entry's layout; an entry of another layout is foreign


def cache_dir() -> Path | None:
    """The cache folder, or None when `MASH_PROOF_CACHE=off`."""
    setting = os.environ.get(ENV, "").strip()
    if setting.lower() == "off":
        return None
    if setting:
        return Path(setting).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mash-broker" / "proofs"


def _sources() -> list[Path]:
    package = Path(broker.__file__).resolve().parent
    from broker.schema.loader import schema_dir

    found = [*(package / "policy").glob("*.py"), *(package / "schema").glob("*.py"), *schema_dir().glob("*.json")]
    return sorted(found)


@cache
def code_digest() -> str:
    """sha256 over the deciding and proving code and the schemas, by relative name and content (once per process:
    the code a process runs does not change under it)."""
    digest = hashlib.sha256()
    for path in _sources():
        digest.update(f"{path.parent.name}/{path.name}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def cache_key(text: bytes) -> str:
    digest = hashlib.sha256()
    for part in (hashlib.sha256(text).hexdigest(), code_digest(), broker.__version__):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


def _private(st: os.stat_result) -> bool:
    """Owned by this user and writable by no one else."""
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def read_entry(folder: Path, key: str, protocol: Protocol) -> dict[str, Any] | None:
    """The summary of a trusted "proven" entry for this key and protocol, or None (then the proof runs)."""
    path = folder / f"{key}.json"
    try:
        if not (_private(folder.stat()) and _private(path.lstat())) or not stat.S_ISREG(path.lstat().st_mode):
            log.warning("proof cache entry %s ignored: not private to this user", path.name)
            return None
        entry = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError):
        log.warning("proof cache entry %s ignored: unreadable", path.name)
        return None
    invariants = [i.id for i in protocol.invariants]
    if not (isinstance(entry, dict) and entry.get("format") == FORMAT and entry.get("key") == key
            and entry.get("verdict") == "proven" and entry.get("invariants") == invariants
            and entry.get("protocol") == protocol.revision
            and isinstance(entry.get("scopes"), int) and isinstance(entry.get("points"), int)):
        log.warning("proof cache entry %s ignored: not a proven entry for this protocol", path.name)
        return None
    return entry


def write_entry(folder: Path, key: str, summary: dict[str, Any]) -> None:
    """Keep a proven summary, atomically, private to this user; a folder that cannot be written only costs the next
    start its proof."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".entry-", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:  # mkstemp opens it 0600
                out.write(orjson.dumps({"format": FORMAT, "key": key, "verdict": "proven", **summary}))
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, folder / f"{key}.json")
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.warning("proof cache not written (%s): the next start proves again", exc.strerror)


def cached_verdict(protocol: Protocol, text: bytes, run: Callable[[], Any]) -> Any:
    """The proof of `protocol` (compiled from `text`): a trusted entry's, rebuilt as a proven Proof, or `run()`'s,
    kept when it proves the protocol."""
    from broker.policy.prove import Proof

    folder = cache_dir()
    if folder is None:
        return run()
    key = cache_key(text)
    entry = read_entry(folder, key, protocol)
    if entry is not None:
        return Proof(entry["protocol"], tuple(entry["invariants"]), entry["scopes"], entry["points"])
    proof = run()
    if proof.proven:  # never a refused protocol
        write_entry(folder, key, {"protocol": proof.revision, "invariants": list(proof.invariants),
                                  "scopes": proof.scopes, "points": proof.points})
    return proof
