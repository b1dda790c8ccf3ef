"""`mash-broker stores`: the registers (the list is broker/stores/registry.py's REGISTERS)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from broker.config import Settings
from broker.stores.registry import register_names

app = typer.Typer(help="The registers: SQLite files in the data directory, or PostgreSQL (MASH_STORE_URL): "
                       f"{register_names()}.",
                  no_args_is_help=True)


@app.command()
def migrate(data_dir: Annotated[Path | None, typer.Option(help="Data directory (MASH_DATA_DIR).")] = None,
            url: Annotated[str | None, typer.Option(help="PostgreSQL URL (MASH_STORE_URL).")] = None) -> None:
    """Copy the data directory's SQLite registers into PostgreSQL, then rename each file to <name>.migrated.

    Run it with the broker stopped, once, when a deployment moves to MASH_STORE_URL; until then a broker pointed at
    PostgreSQL refuses to start beside SQLite registers (consent recorded by IG must not be left behind).
    """
    from broker.stores.migrate import migrate as copy_registers

    settings = Settings()
    target = url or settings.store_url
    if not target:
        typer.echo("stores migrate: give --url or set MASH_STORE_URL (postgresql://...)", err=True)
        raise typer.Exit(2)
    try:
        copied = copy_registers(data_dir or settings.data_dir, target)
    except Exception as exc:  # a driver's message may hold the URL with its password: name the type only
        typer.echo(f"stores migrate: failed ({type(exc).__name__}); nothing was renamed after the failing register",
                   err=True)
        raise typer.Exit(1) from None
    for name, count in copied.items():
        typer.echo(f"{name}: {count} rows")
    if not copied:
        typer.echo("no SQLite registers in the data directory")
