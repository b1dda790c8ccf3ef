"""Backup and restore of a data directory: keystore, audit store, registers, keys, API keys.

SQLite files are copied with SQLite's online backup API, so a backup is consistent while the broker runs. A
manifest records every file's SHA-256; restore checks them all before it writes anything. The master key can be
left out (`include_master_key=False`) so that the keystore backup and the key that unwraps it are kept apart.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from broker.errors import BrokerError

MANIFEST = "manifest.json"
MASTER_KEY = Path("keys") / "master.key"
SKIP_SUFFIXES = ("-wal", "-shm", ".tmp")


class BackupError(BrokerError, RuntimeError):
    pass


@dataclass(frozen=True)
class BackupReport:
    files: dict[str, str]  # relative path -> sha256
    master_key_included: bool


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy_private(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o600)


def _sqlite_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    source, target = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    os.chmod(dst, 0o600)


def create_backup(data_dir: Path, out_dir: Path, *, include_master_key: bool = True) -> BackupReport:
    if not data_dir.is_dir():
        raise BackupError(f"{data_dir} is not a data directory")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise BackupError(f"{out_dir} is not empty")
    files: dict[str, str] = {}
    for src in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        rel = src.relative_to(data_dir)
        if src.name.endswith(SKIP_SUFFIXES) or (rel == MASTER_KEY and not include_master_key):
            continue
        dst = out_dir / rel
        (_sqlite_copy if src.suffix == ".sqlite" else _copy_private)(src, dst)
        files[str(rel)] = _sha256(dst)
    manifest = {"format": 1, "files": files, "master_key_included": include_master_key}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return BackupReport(files, include_master_key)


def restore_backup(backup_dir: Path, data_dir: Path, *, force: bool = False) -> BackupReport:
    """Verify every file against the manifest, then copy into `data_dir` (which must be empty unless `force`)."""
    try:
        manifest = json.loads((backup_dir / MANIFEST).read_text())
        files: dict[str, str] = manifest["files"]
    except (OSError, ValueError, KeyError):
        raise BackupError(f"{backup_dir} has no readable {MANIFEST}") from None
    for rel, digest in files.items():
        path = backup_dir / rel
        if ".." in Path(rel).parts or not path.is_file():
            raise BackupError(f"backup file {rel} is missing")
        if _sha256(path) != digest:
            raise BackupError(f"backup file {rel} does not match its manifest checksum")
    if data_dir.exists() and any(data_dir.iterdir()) and not force:
        raise BackupError(f"{data_dir} is not empty (use --force to overwrite)")
    for rel in files:
        _copy_private(backup_dir / rel, data_dir / rel)
    return BackupReport(files, bool(manifest.get("master_key_included")))
