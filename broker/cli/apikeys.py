"""`mash-broker apikeys`: create, list and revoke API keys (only their hashes are stored).

A running service sees a created or revoked key within about a second (broker/api/auth.py, ApiKeyStore.refresh).
Creation and revocation are audited: the command appends an admin_action (apikey.create / apikey.revoke, target the
key id, actor the account that ran it) to the audit store directly. A key is only created when that record can be
written (an unaudited key must not exist: if the record fails, the key is removed again); a revocation takes effect
even when the audit store is unusable (stopping a key matters more), and the command then says so and exits 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from adapters.kit.registry import AGENCIES
from broker.access.apikeys import ApiKeyStore
from broker.access.principal import ROLES, Principal, cli_actor
from broker.audit.store import AuditStore, open_audit_store
from broker.clock import now_iso
from broker.config import Settings
from broker.policy.compile import load_protocol
from broker.policy.errors import ProtocolError

app = typer.Typer(help="API keys for agency intake, subscribers, IG auditors and admins.", no_args_is_help=True)


def _data_dir(data_dir: Path | None) -> Path:
    return data_dir or Settings().data_dir


def _store(data_dir: Path | None) -> ApiKeyStore:
    return ApiKeyStore(_data_dir(data_dir) / "api-keys.json")


def _audit(data_dir: Path | None) -> AuditStore:
    """The audit store the service writes to (MASH_AUDIT_URL, or audit.sqlite in the data directory)."""
    return open_audit_store(_data_dir(data_dir), Settings().audit_url)


def _record(audit: AuditStore, action: str, principal: Principal) -> None:
    scoped = {"agency": principal.scope} if principal.role == "intake" else \
        {"subscriber": principal.scope} if principal.role == "subscriber" else {}
    reason = f"API key for the {principal.role} role"
    if principal.role == "decision_maker":  # the partner it decides for (a protocol slug, value-free)
        reason += f", for partner {principal.scope}"
    audit.log("admin_action", actor=cli_actor(), time=now_iso(), action=action, target=principal.key_id,
              reason=reason, **scoped)


def _protocol_names(protocol_file: Path | None, role: str) -> set[str]:
    """The names a scope of `role` must be one of: the protocol's subscribers, or its partners for decision_maker."""
    path = protocol_file or Settings().protocol_file
    try:
        protocol = load_protocol(path)
    except ProtocolError as exc:
        typer.echo(f"cannot check the {role} scope against the protocol: {exc}", err=True)
        raise typer.Exit(2) from None
    if role == "hub_decision":  # a hub's decisions: only a subscriber whose role is mash_hub
        return {n for n, s in protocol.subscribers.items() if s.role == "mash_hub"}
    return set(protocol.partners if role == "decision_maker" else protocol.subscribers)


DataDir = Annotated[Path | None, typer.Option(help="Data directory (MASH_DATA_DIR).")]


@app.command()
def create(role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
           scope: Annotated[str | None, typer.Option(
               help="Agency (intake), subscriber name (subscriber) or partner id (decision_maker).")] = None,
           protocol_file: Annotated[Path | None, typer.Option(
               help="Protocol whose subscribers a subscriber scope must name (MASH_PROTOCOL_FILE).")] = None,
           data_dir: DataDir = None) -> None:
    """Create a key; it is printed once and only its hash is kept. The scope must exist: an agency for intake, a
    subscriber of the protocol for subscriber."""
    named = _protocol_names(protocol_file, role) \
        if role in ("subscriber", "decision_maker", "hub_decision") and scope is not None else None
    subscribers = named if role in ("subscriber", "hub_decision") else None
    partners = named if role == "decision_maker" else None
    keys = _store(data_dir)
    try:
        audit = _audit(data_dir)
    except Exception as exc:  # a driver's message may hold the URL with its password: name the type only
        typer.echo(f"audit store unusable ({type(exc).__name__}): no key created", err=True)
        raise typer.Exit(2) from None
    try:
        try:
            key, principal = keys.create(role, scope, agencies=AGENCIES, subscribers=subscribers, partners=partners)
        except ValueError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        try:
            _record(audit, "apikey.create", principal)
        except Exception as exc:
            keys.revoke(principal.key_id)
            typer.echo(f"the audit record could not be written ({type(exc).__name__}): the key was removed again",
                       err=True)
            raise typer.Exit(2) from None
    finally:
        audit.close()
    typer.echo(f"{principal.key_id}\t{principal.grant}\t{key}")


@app.command("list")
def list_keys(data_dir: DataDir = None) -> None:
    table = Table("key id", "role", "scope")
    for p in _store(data_dir).principals():
        table.add_row(p.key_id, p.role, p.scope or "")
    Console().print(table)


@app.command()
def revoke(key_id: str, data_dir: DataDir = None) -> None:
    """Revoke a key; a running service refuses it within about a second."""
    gone = _store(data_dir).revoke(key_id)
    if gone is None:
        typer.echo("no such key id", err=True)
        raise typer.Exit(1)
    try:
        audit = _audit(data_dir)
        try:
            _record(audit, "apikey.revoke", gone)
        finally:
            audit.close()
    except Exception as exc:
        typer.echo(f"key {gone.key_id} revoked, but the audit store could not record it ({type(exc).__name__})",
                   err=True)
        raise typer.Exit(2) from None
    typer.echo(f"revoked {gone.key_id}")
