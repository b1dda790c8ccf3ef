"""`mash-broker doctor`: check an installation (Kafka, topics, data dir, key files, protocol, keys) in plain words.

Exit status 0 when nothing is a problem, 1 otherwise; the checks themselves live in broker/ops/checks.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from broker.ops.checks import CheckResult, healthy, run_checks

app = typer.Typer(help="Check this installation and say plainly what is wrong.", invoke_without_command=True)

STYLE = {"ok": "green", "info": "cyan", "warning": "yellow", "problem": "bold red"}


def render(results: list[CheckResult], console: Console) -> None:
    table = Table("check", "status", "detail", title="mash-broker doctor", show_lines=False)
    for r in results:
        table.add_row(r.check, f"[{STYLE[r.status]}]{r.status}[/]", r.detail)
    console.print(table)
    problems = [r for r in results if not r.healthy]
    if problems:
        console.print(f"[bold red]{len(problems)} problem(s)[/]: " + "; ".join(r.check for r in problems))
    else:
        console.print("[green]healthy[/]")


@app.callback()
def doctor(
    ctx: typer.Context,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory (MASH_DATA_DIR).")] = None,
    protocol_file: Annotated[Path | None, typer.Option(help="Protocol file (MASH_PROTOCOL_FILE).")] = None,
) -> None:
    """Run every check; exit 0 when healthy, 1 when any check found a problem."""
    if ctx.invoked_subcommand is not None:
        return
    from broker.config import Settings

    settings = Settings()
    overrides = {k: v for k, v in {"data_dir": data_dir, "protocol_file": protocol_file}.items() if v is not None}
    settings = settings.model_copy(update=overrides)
    results = asyncio.run(run_checks(settings))
    render(results, Console(width=max(Console().width, 120)))
    raise typer.Exit(0 if healthy(results) else 1)
