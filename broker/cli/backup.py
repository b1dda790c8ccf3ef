"""`mash-broker backup`: consistent, checksummed backups of the data directory, and their restore."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from broker.config import Settings
from broker.ops.backup import BackupError, create_backup, restore_backup

app = typer.Typer(help="Back up and restore the keystore, audit store, registers and keys.", no_args_is_help=True)


@app.command()
def create(out: Annotated[Path, typer.Option(help="Empty folder to write the backup to.")],
           data_dir: Annotated[Path | None, typer.Option(help="Data directory (MASH_DATA_DIR).")] = None,
           without_master_key: Annotated[bool, typer.Option(
               help="Leave keys/master.key out: keep it apart (a vault, a sealed envelope).")] = False) -> None:
    """Copy the data directory (SQLite by its online backup API, safe while the broker runs)."""
    try:
        report = create_backup(data_dir or Settings().data_dir, out, include_master_key=not without_master_key)
    except BackupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{len(report.files)} files backed up to {out}"
               + ("" if report.master_key_included else " (master key left out)"))


@app.command()
def restore(backup: Annotated[Path, typer.Argument(help="A folder written by `backup create`.")],
            data_dir: Annotated[Path | None, typer.Option(help="Data directory (MASH_DATA_DIR).")] = None,
            force: Annotated[bool, typer.Option(help="Overwrite a non-empty data directory.")] = False) -> None:
    """Check every file's checksum, then restore. Afterwards: `mash-broker audit verify` and `keys status`."""
    try:
        report = restore_backup(backup, data_dir or Settings().data_dir, force=force)
    except BackupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{len(report.files)} files restored")
