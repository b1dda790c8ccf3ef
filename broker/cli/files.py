"""File-level commands: convert native records, validate canonical events."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from adapters.kit.interface import AdaptContext
from adapters.kit.registry import AGENCIES
from broker.adapter_settings import adapter_settings
from broker.clock import now_iso
from broker.config import Settings
from broker.pipeline.identify import LinkageKey
from broker.pipeline.intake import prepare
from broker.schema.event_files import NOT_JSON, read_documents
from broker.schema.validate import validate_event
from broker.secrets import InvalidSecret, SecretError, linkage_key

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        _err(f"{path}: cannot read ({exc.strerror})")
        raise typer.Exit(EXIT_USAGE) from None


def _convert_key(settings: Settings) -> LinkageKey:
    try:
        return linkage_key(settings.data_dir, settings.linkage_key_version, create=False)
    except InvalidSecret as exc:  # configured but unreadable: an ephemeral key instead would hide the mistake
        _err(f"error: {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    except SecretError:
        _err("note: no linkage key configured; using an ephemeral key (tokens differ between runs)")
        return LinkageKey(settings.linkage_key_version, secrets.token_bytes(32))


def convert(
    files: Annotated[list[Path], typer.Argument(help="Native record files.")],
    agency: Annotated[str, typer.Option(help=f"One of: {', '.join(AGENCIES)}.")],
    system: Annotated[str | None, typer.Option(help="Sending system id, when the file does not name it.")] = None,
) -> None:
    """Print canonical events as JSON Lines on stdout; each rejection on stderr as file: record: field: reason."""
    if agency not in AGENCIES:
        _err(f"--agency must be one of {', '.join(AGENCIES)}")
        raise typer.Exit(EXIT_USAGE)
    settings = Settings()
    adapting = adapter_settings(settings)  # read once for every file
    key = _convert_key(settings)
    rejected = False
    for path in files:
        data = _read(path)
        ctx = AdaptContext(source=str(path), received_at=now_iso(), system=system, settings=adapting)
        result = prepare(agency, data, ctx, key, filename=path.name)
        for event in result.events:
            sys.stdout.buffer.write(orjson.dumps(event) + b"\n")
        for rejection in result.rejections:
            rejected = True
            _err(str(rejection))
        if result.skipped:  # named by kind (a FHIR resource type), never by a value: not an error
            kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(result.skipped.items()))
            _err(f"{path}: skipped (no safeguarding fact): {kinds}")
        if not result.events and not result.rejections:
            # Read without fault but nothing in it is about a child (an Organization, an empty batch): said, so an
            # operator does not take silence for success; not an error (exit code unchanged).
            _err(f"{path}: no child in this file")
    sys.stdout.flush()
    raise typer.Exit(EXIT_REJECTED if rejected else EXIT_OK)


def validate(files: Annotated[list[Path], typer.Argument(help="Canonical events: JSON or JSON Lines.")]) -> None:
    """Check canonical events against schemas/safeguarding-event.schema.json."""
    bad = False
    for path in files:
        for position, doc in read_documents(_read(path)):
            where = f"{path}: {position}" if position else str(path)
            if doc is NOT_JSON:
                bad = True
                _err(f"{where}: not valid JSON")
                continue
            if not isinstance(doc, dict):
                bad = True
                _err(f"{where}: not a JSON object")
                continue
            for problem in validate_event(doc):
                bad = True
                _err(f"{where}: {problem}")
    raise typer.Exit(EXIT_REJECTED if bad else EXIT_OK)
