"""`mash-broker keys`: crypto-shred a child, rotate keys, show key status, generate subscriber key pairs.

Keys live under <data dir>/keys (MASH_DATA_DIR, default ./data). The local KMS's master key comes from
--master-key-file, else MASH_MASTER_KEY, else <data dir>/keys/master.key; MASH_KMS=vault uses Vault transit instead.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from broker.access.principal import cli_actor
from broker.audit.store import open_audit_store
from broker.config import Settings
from broker.crypto.errors import CryptoError
from broker.crypto.factory import open_key_provider
from broker.crypto.hpke_keys import SUITES, X25519, generate_subscriber_keypair
from broker.crypto.keystore import KeyStore
from broker.errors import NotFound
from broker.service.erasure import erase_child, key_shred_records, known_child
from broker.stores.erasures import ErasureRegister
from broker.stores.identities import IdentityRegister
from broker.stores.registry import open_forgotten

app = typer.Typer(help="Data keys, key-encryption keys, crypto-shredding and subscriber key pairs.",
                  no_args_is_help=True)

DataDir = Annotated[Path | None, typer.Option(help="Data directory (MASH_DATA_DIR, default ./data).")]
MasterKeyFile = Annotated[Path | None, typer.Option(help="Master key file, mode 0600 (else MASH_MASTER_KEY).")]


def _open(data_dir: Path | None, master_key_file: Path | None) -> KeyStore:
    try:
        return open_key_provider(data_dir or Settings().data_dir, master_key_file=master_key_file)
    except CryptoError as exc:
        typer.echo(f"keys: {exc}", err=True)
        raise typer.Exit(2) from None


class UnknownChild(NotFound, LookupError):
    """The token names no child the broker has records about: nothing is erased or recorded."""


def shred_subject(store: KeyStore, token: str, data_dir: Path, store_url: str | None = None,
                  audit_url: str | None = None, actor: str | None = None) -> dict[str, Any]:
    """Erase a child under every token it has carried: the erasure register, its data keys, and `key_shred`
    records appended to the audit store (under its writer lock: safe beside a running indexer). The `person.erased`
    notice is owed in the erasure register; the running service publishes it (this command has no Kafka producer).
    Returns the audit fields."""
    actor = actor or cli_actor()
    erasures = ErasureRegister(data_dir / ErasureRegister.FILE, store_url)
    audit = open_audit_store(data_dir, audit_url)
    identities = IdentityRegister(data_dir / IdentityRegister.FILE, store_url)
    # every register a shred forgets (broker/stores/registry.py), the identity register opened once for both jobs
    forget = open_forgotten(data_dir, store_url, identities=identities)
    try:
        if not known_child(identities, audit, token, store):
            raise UnknownChild("no record of this child: erasure is recorded only for a token the broker has "
                               "received records about (check the token)")
        reports, summary = erase_child(store, erasures, audit, identities.aliases(token), actor,
                                       forget=forget)
        audit.append(key_shred_records(reports, summary, actor))
    finally:
        audit.close()
        erasures.close()
        for register in {id(r): r for r in (identities, *forget)}.values():
            register.close()
    return {**reports[0].audit_fields(), **summary, "actor": actor}


@app.command()
def shred(subject: Annotated[str, typer.Option(help="The child's linkage token (every version of it, one by one).")],
          yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
          data_dir: DataDir = None, master_key_file: MasterKeyFile = None) -> None:
    """Crypto-shred one child: destroy its data keys, so every copy of its protected fields is unreadable for good.

    Reaches every token the identity register ties to the child (tokens folded in by `person.linked`), records the
    erasure in the erasure register and `key_shred` records in the audit store (actor `cli:<user>`); the running
    service tells the subscribers that received the child's data (`person.erased`). Prints the audit record fields
    (JSON) on stdout.
    """
    if not yes:
        typer.confirm("Shredding cannot be undone. Destroy this subject's data keys?", abort=True)
    settings = Settings()
    data_dir = data_dir or settings.data_dir
    store = _open(data_dir, master_key_file)
    try:
        fields = shred_subject(store, subject, data_dir, settings.store_url, settings.audit_url)
    except UnknownChild as exc:
        typer.echo(f"keys: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.close()
    if fields["data_keys_shredded"] == 0:
        typer.echo("keys: no live data keys for that subject (unknown token, or already shredded)", err=True)
    typer.echo(json.dumps(fields))


@app.command()
def rotate(kek: Annotated[bool, typer.Option("--kek", help="Add a new KEK version per classification.")] = False,
           data_keys: Annotated[bool, typer.Option("--data-keys", help="Retire the active data keys.")] = False,
           rewrap: Annotated[bool, typer.Option("--rewrap", help="Re-wrap data keys under the newest KEKs.")] = False,
           subject: Annotated[str | None, typer.Option(help="With --data-keys: only this linkage token.")] = None,
           data_dir: DataDir = None, master_key_file: MasterKeyFile = None) -> None:
    """Rotate key-encryption keys and/or data keys. No downtime: old versions keep decrypting."""
    if not (kek or data_keys or rewrap):
        typer.echo("keys rotate: give --kek, --data-keys and/or --rewrap", err=True)
        raise typer.Exit(2)
    store = _open(data_dir, master_key_file)
    result: dict[str, Any] = {}
    try:
        if kek:
            result["kek_versions"] = store.rotate_keks()
        if data_keys:
            result["data_keys_retired"] = store.rotate_data_keys(subject)
        if rewrap:
            result["data_keys_rewrapped"] = store.rewrap()
    except CryptoError as exc:
        typer.echo(f"keys rotate: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.close()
    typer.echo(json.dumps(result))


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
           data_dir: DataDir = None, master_key_file: MasterKeyFile = None) -> None:
    """Data keys by classification and state, KEK versions in use, rotation due, shredded subjects."""
    store = _open(data_dir, master_key_file)
    try:
        info = store.status()
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(info, default=str))
        return
    console = Console()
    console.print(f"KMS: {info['kms']['kms']}  subjects with keys: {info['scopes_with_keys']}  "
                  f"shredded subjects: {info['shredded_scopes']}  needing rewrap: {info['needing_rewrap']}")
    table = Table("classification", "active", "retired", "shredded")
    for name, counts in sorted(info["by_classification"].items()):
        table.add_row(name, *(str(counts[s]) for s in ("active", "retired", "shredded")))
    console.print(table)
    keks = Table("KEK", "latest version", "data keys per version")
    for name, v in info["kek_versions_in_use"].items():
        keks.add_row(name, str(v["latest"]), ", ".join(f"v{k}: {n}" for k, n in v["wrapping"].items()))
    console.print(keks)
    r = info["rotation"]
    console.print(f"rotation: max age {r['max_age_seconds']:.0f} s, max uses {r['max_uses']}, "
                  f"active keys due {r['active_due']}")


@app.command("generate-subscriber-key")
def generate_subscriber_key(
    out: Annotated[Path, typer.Option(help="Private key file to create (mode 0600; never overwritten).")],
    suite: Annotated[str, typer.Option(help=f"HPKE suite: {', '.join(SUITES)}.")] = X25519,
) -> None:
    """Make a subscriber key pair: private key to --out (for the subscriber), public key printed (for the protocol)."""
    if suite not in SUITES:
        typer.echo(f"unknown suite {suite!r} ({', '.join(SUITES)})", err=True)
        raise typer.Exit(2)
    private, public_b64 = generate_subscriber_keypair(suite)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        typer.echo(f"{out} exists; not overwritten", err=True)
        raise typer.Exit(1) from None
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64encode(private) + b"\n")
    typer.echo(json.dumps({"suite": suite, "public_key": public_b64, "private_key_file": str(out)}))
