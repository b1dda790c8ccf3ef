"""`mash-broker apikeys`: create, list and revoke API keys (only their hashes are stored)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from broker.api.auth import ROLES, ApiKeyStore
from broker.config import Settings

app = typer.Typer(help="API keys for agency intake, subscribers, IG auditors and admins.", no_args_is_help=True)


def _store(data_dir: Path | None) -> ApiKeyStore:
    return ApiKeyStore((data_dir or Settings().data_dir) / "api-keys.json")


DataDir = Annotated[Path | None, typer.Option(help="Data directory (MASH_DATA_DIR).")]


@app.command()
def create(role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
           scope: Annotated[str | None, typer.Option(help="Agency (intake) or subscriber name (subscriber).")] = None,
           data_dir: DataDir = None) -> None:
    """Create a key; it is printed once and only its hash is kept."""
    try:
        key, principal = _store(data_dir).create(role, scope)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{principal.key_id}\t{principal.actor}\t{key}")


@app.command("list")
def list_keys(data_dir: DataDir = None) -> None:
    table = Table("key id", "role", "scope")
    for p in _store(data_dir).principals():
        table.add_row(p.key_id, p.role, p.scope or "")
    Console().print(table)


@app.command()
def revoke(key_id: str, data_dir: DataDir = None) -> None:
    if not _store(data_dir).revoke(key_id):
        typer.echo("no such key id", err=True)
        raise typer.Exit(1)
