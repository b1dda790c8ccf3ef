"""Moving a host's SQLite registers into PostgreSQL (`mash-broker stores migrate`), and the guard that makes a
broker pointed at PostgreSQL refuse to start while registers still sit in SQLite files beside it: the consent
register holds what IG recorded, and a deployment switched to MASH_STORE_URL must not start without it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from broker.stores.registry import REGISTERS as SPECS

REGISTERS = tuple(spec.cls for spec in SPECS)  # the register classes, in broker/stores/registry.py's order
MIGRATED = ".migrated"
_CHUNK = 5000


def sqlite_registers(data_dir: Path) -> list[str]:
    """The register files still in the data directory."""
    return [spec.file for spec in SPECS if (data_dir / spec.file).is_file()]


def migrate(data_dir: Path, url: str) -> dict[str, int]:
    """Copy every SQLite register into the PostgreSQL database at `url` (rows already there are kept), then rename
    each file to <name>.migrated so the broker starts on PostgreSQL. Returns rows copied per register."""
    copied: dict[str, int] = {}
    for spec in SPECS:
        name = spec.file
        if not (data_dir / name).is_file():
            continue
        source = sqlite3.connect(data_dir / name)
        target = spec.open(data_dir, url)  # creates the tables in PostgreSQL
        try:
            count = 0
            held = {t for (t,) in source.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            for table in spec.tables:  # fixed table names, from the register list
                if table not in held:  # a file from before the register gained this table
                    continue
                rows = source.execute(f"SELECT * FROM {table}")
                marks = ",".join("?" * len(rows.description))
                while chunk := rows.fetchmany(_CHUNK):
                    with target.db.transaction():
                        target.db.executemany(f"INSERT INTO {table} VALUES ({marks}) ON CONFLICT DO NOTHING", chunk)
                    count += len(chunk)
            copied[name] = count
        finally:
            source.close()
            target.close()
        for suffix in ("", "-wal", "-shm"):
            path = data_dir / (name + suffix)
            if path.exists():
                path.rename(path.with_name(path.name + MIGRATED))
    return copied
