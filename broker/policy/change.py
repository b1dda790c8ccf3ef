"""What a protocol change does to permissions, for the `protocol_change` audit record and the IG page.

The service keeps each protocol file it has run under, by content hash, in `<data_dir>/protocols/` (the audit
record names the hash, so the previous version is found again). When the protocol in force changes,
`change_summary` is the static permission diff (prove.static_diff) between the previous file and this one, cut to
what an auditor reads: per subscriber, event type and path, the outcome before and after and under which facts.
Paths, codes and fact names only: no event, no value (the counterexamples are `policy diff --static`'s).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from broker.policy.compile import parse_protocol
from broker.policy.errors import ProtocolError
from broker.policy.model import Protocol
from broker.policy.prove import static_diff

MAX_ROWS = 200  # an audit record stays small; the full diff is `mash-broker policy diff --static`


def archive(data_dir: Path, protocol_file: Path) -> str:
    """Keep this protocol file by its SHA-256 (the audit record's content_sha256); returns the hash."""
    text = protocol_file.read_bytes()
    digest = hashlib.sha256(text).hexdigest()
    folder = data_dir / "protocols"
    folder.mkdir(parents=True, exist_ok=True)
    kept = folder / f"{digest}.yaml"
    if not kept.exists():
        kept.write_bytes(text)
    return digest


def archived(data_dir: Path, digest: str | None, protocol_file: Path) -> Protocol | None:
    """The protocol kept under this hash, compiled (key files against the live file's folder); None when absent or
    no longer compiling (a language change): the record then says the diff is unknown, never a wrong one."""
    if not digest:
        return None
    kept = data_dir / "protocols" / f"{digest}.yaml"
    if not kept.is_file():
        return None
    try:
        text = kept.read_text(encoding="utf-8")
        return parse_protocol(text, str(kept), base_dir=protocol_file.resolve().parent)
    except (ProtocolError, UnicodeDecodeError):
        return None


def change_summary(old: Protocol | None, new: Protocol) -> dict[str, Any]:
    """The permission diff an audit record carries: rows of (subscriber, event type, path or null for the event
    itself, from, to, when), at most MAX_ROWS, with the total."""
    if old is None:
        return {"known": False, "changes": 0, "rows": [], "note": "no earlier protocol file kept to compare with"}
    found = static_diff(old, new)
    rows = [{"subscriber": name, "event_type": event_type, "path": row["path"], "from": row["from"],
             "to": row["to"], "when": {k: [str(v) for v in vs] for k, vs in row["when"].items()}}
            for name, types in found["subscribers"].items() for event_type, rs in types.items() for row in rs]
    return {"known": True, "from": found["from"], "to": found["to"], "changes": len(rows), "rows": rows[:MAX_ROWS],
            "truncated": len(rows) > MAX_ROWS}


def protocol_change_diff(data_dir: Path, protocol_file: Path, protocol: Protocol,
                         previous_sha256: str | None) -> dict[str, Any]:
    """For the runtime: archive the file in force and diff it against the previous one (by its recorded hash)."""
    archive(data_dir, protocol_file)
    return change_summary(archived(data_dir, previous_sha256, protocol_file), protocol)

