"""The command line's two ways to a register's facts: one call to the running service's API, for the commands whose
act the service must make and audit under the caller's credential (decisions, determinations, consent reviews); and
a register opened on the host, for listings an operator reads there.

Exit codes as every such command documents them: 1 refused (with the service's value-free reason), 2 unusable (no
key, or no answer).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from broker.config import Settings


def call_service(command: str, method: str, path: str, body: dict[str, Any] | None, *, url: str | None,
                 key: str | None, key_hint: str = "", timeout: float = 60) -> dict[str, Any]:
    """The JSON answer of `method path` (under the service's base URL) with `--key` or MASH_API_KEY."""
    import httpx

    key = key or os.environ.get("MASH_API_KEY")
    if not key:
        typer.echo(f"{command}: give --key or set MASH_API_KEY{f' ({key_hint})' if key_hint else ''}", err=True)
        raise typer.Exit(2)
    settings = Settings()
    base = url or f"http://{settings.host}:{settings.port}"
    try:
        r = httpx.request(method, f"{base}{path}", json=body, timeout=timeout,
                          headers={"Authorization": f"Bearer {key}"})
    except httpx.HTTPError as exc:
        typer.echo(f"{command}: the service did not answer ({type(exc).__name__})", err=True)
        raise typer.Exit(2) from None
    if r.status_code not in (200, 201, 202):  # 202: a hub decision, accepted once Kafka has it
        detail = r.json().get("detail") if r.headers.get("content-type", "").startswith("application/json") else ""
        typer.echo(f"refused ({r.status_code}): {detail}", err=True)
        raise typer.Exit(1)
    answer: dict[str, Any] = r.json()
    return answer


R = TypeVar("R")


def open_local_register(cls: Callable[[Path, str | None], R], file: str, what: str, data_dir: Path | None) -> R:
    """A register read on the host (SQLite in the data directory, or MASH_STORE_URL); exits 1 when there is none."""
    settings = Settings()
    folder = data_dir or settings.data_dir
    if not settings.store_url and not (folder / file).is_file():
        typer.echo(f"no {what} register in the data directory", err=True)
        raise typer.Exit(1)
    return cls(folder / file, settings.store_url)
