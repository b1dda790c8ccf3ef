"""`mash-broker audit`: verify the chain (a live store or an export file), export, digest, checkpoint, prune.

verify exits 0 when the chain and its signed checkpoints hold, 1 when something was tampered with (naming the
first bad record), 2 when the input is unusable (missing file, not an export, no key, store unreachable).
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from broker.access.principal import cli_actor
from broker.audit.checkpoint import PublicKeyError, key_id, parse_public_key
from broker.audit.digest import DEFAULT_TIME_ZONE, DigestError, read_digest, write_digest_csv
from broker.audit.export import (
    ExportFormatError,
    embedded_public_key,
    header_checks,
    read_jsonl,
    write_csv,
    write_jsonl,
)
from broker.audit.fhir import fhir_bundle
from broker.audit.keys import SigningKeyMissing
from broker.audit.retention import RetentionError, parse_retention
from broker.audit.sar import subject_access_report
from broker.audit.store import AuditStore, open_audit_store
from broker.audit.verify import VerifyResult
from broker.audit.verify import verify as verify_chain
from broker.clock import now_iso
from broker.stores.identities import aliases_in

app = typer.Typer(help="Tamper-evident audit log: verify, export, checkpoint, prune.", no_args_is_help=True)

OK, TAMPERED, UNUSABLE = 0, 1, 2
FORMATS = ("jsonl", "csv", "fhir", "sar")

DataDir = Annotated[Path | None, typer.Option(help="Data directory holding audit.sqlite and the audit signing key "
                                                   "(MASH_DATA_DIR).")]
AuditUrl = Annotated[str | None, typer.Option(help="PostgreSQL URL of the audit store (MASH_AUDIT_URL); "
                                                   "default: SQLite in the data directory.")]


def _fail(message: str, code: int = UNUSABLE) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def _data_dir(data_dir: Path | None) -> Path:
    return data_dir or Path(os.environ.get("MASH_DATA_DIR", "data"))


def _open(data_dir: Path | None, audit_url: str | None, *, create_key: bool = False) -> AuditStore:
    directory = _data_dir(data_dir)
    url = audit_url or os.environ.get("MASH_AUDIT_URL") or None
    if url is None and not (directory / "audit.sqlite").is_file():
        raise _fail(f"no audit store at {directory / 'audit.sqlite'} (give --data-dir or --audit-url)")
    try:
        return open_audit_store(directory, url, create_key=create_key)
    except Exception as exc:  # a driver's message may hold the URL with its password: name the type only
        raise _fail(f"audit store unusable ({type(exc).__name__})") from None


def _report(result: VerifyResult, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result.to_dict(), sort_keys=True))
    elif result.ok:
        typer.echo(f"OK: {result.reason} (head seq {result.head_seq})")
    else:
        typer.echo(f"TAMPERED: first bad record seq {result.first_bad_seq}: {result.reason}")


@app.command()
def verify(
    export: Annotated[Path | None, typer.Argument(help="A JSON Lines export; omitted: the live store.")] = None,
    public_key: Annotated[Path | None, typer.Option(
        help="The published audit public key (base64 raw or PEM). Without it an export is checked against the key "
             "it embeds: compare the printed key id with the published one.")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(
        min=0, help="The interval of periodic checkpoints to expect (a checkpoint must stand at each multiple the "
                    "chain passed). Default: the export header's (compare it with the published one), or the "
                    "store's (1000).")] = None,
    data_dir: DataDir = None, audit_url: AuditUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check the hash chain, the signed checkpoints (one at every multiple of the interval), the index columns
    against the records, tombstones against the logged prunes and the head; exit 0 ok, 1 tampered, 2 unusable."""
    key = None
    if public_key is not None:
        try:
            key = parse_public_key(public_key.read_text())
        except (OSError, UnicodeDecodeError):
            raise _fail(f"cannot read public key file {public_key}") from None
        except PublicKeyError as exc:
            raise _fail(f"{public_key}: {exc}") from None
    if export is not None:
        try:
            with export.open(encoding="utf-8") as f:
                header, entries, checkpoints = read_jsonl(f)
        except (OSError, UnicodeDecodeError):
            raise _fail(f"cannot read export {export}") from None
        except ExportFormatError as exc:
            raise _fail(f"{export}: {exc}") from None
        if key is None:
            try:
                key = embedded_public_key(header)
            except PublicKeyError:
                raise _fail(f"{export}: header has no usable public key") from None
            typer.echo(f"checking against the key embedded in the export, key id {key_id(key)}: compare it with the "
                       "published audit key", err=True)
        elif header.get("key_id") != key_id(key):
            typer.echo("note: the export names a different key than the one given", err=True)
        if not checkpoints:
            typer.echo("warning: the export holds no signed checkpoint: truncation cannot be detected", err=True)
        try:
            checks = header_checks(header)
        except ExportFormatError as exc:
            raise _fail(f"{export}: {exc}") from None
        if checkpoint_every is not None:
            checks["checkpoint_every"] = checkpoint_every
        elif checks["checkpoint_every"]:
            typer.echo(f"expecting a signed checkpoint every {checks['checkpoint_every']} records, as the export "
                       "header says: compare it with the published interval", err=True)
        result = verify_chain(entries, checkpoints, key, **checks)
    else:
        store = _open(data_dir, audit_url)
        try:
            key = key or store.public_key
            if key is None:
                raise _fail("no audit public key in the data directory (give --public-key)")
            if checkpoint_every is not None:
                store.checkpoint_every = checkpoint_every
            result = store.verify(key)
        finally:
            store.close()
    _report(result, as_json)
    raise typer.Exit(OK if result.ok else TAMPERED)


@app.command()
def export(
    out: Annotated[Path, typer.Option(help="File to write.")],
    format: Annotated[str, typer.Option("--format", help="jsonl (verifiable), csv, fhir (AuditEvent Bundle) or "
                                                          "sar (subject access report, HTML; needs --subject).")],
    subject: Annotated[str | None, typer.Option(help="Only this child (linkage token): csv, fhir, sar.")] = None,
    data_dir: DataDir = None, audit_url: AuditUrl = None,
) -> None:
    """Export the audit log. A jsonl export is signed at the head first, ends at that checkpoint and carries every
    checkpoint up to it, the store's checkpoint interval and its head."""
    if format not in FORMATS:
        raise _fail(f"unknown format (expected one of {', '.join(FORMATS)})")
    if format == "sar" and not subject:
        raise _fail("--format sar needs --subject TOKEN")
    if format == "jsonl" and subject:
        raise _fail("a jsonl export is the whole chain (a per-child extract could not be verified): drop --subject")
    store = _open(data_dir, audit_url)
    try:
        now = now_iso()
        with out.open("w", encoding="utf-8", newline="") as f:
            if format == "jsonl":
                if store.public_key is None:
                    raise _fail("no audit key in the data directory: a verifiable export needs the public key")
                if store.signing_key is not None:
                    cp = store.checkpoint("on_demand")
                    head = (cp["seq"], cp["hash"])
                else:
                    head = store.head()
                # the chain up to that head, and the checkpoints signed by then: records appended while the file is
                # written belong to the next export
                checkpoints = [c for c in store.checkpoints() if c["seq"] <= head[0]]
                count = write_jsonl(f, store.entries(through_seq=head[0]), checkpoints, store.public_key, now,
                                    checkpoint_every=store.checkpoint_every, head=head)
            else:
                # a child's records under every token the identity register ties to it
                tokens = aliases_in(_data_dir(data_dir), subject, os.environ.get("MASH_STORE_URL")) if subject else []
                entries = store.timeline(subject, aliases=tokens) if subject else list(store.entries())
                if format == "csv":
                    count = write_csv(f, entries)
                elif format == "fhir":
                    bundle = _fhir(store, entries, now)
                    count = len(bundle["entry"])
                    json.dump(bundle, f, indent=1)
                else:
                    assert subject is not None
                    found = store.every_disclosure(subject=subject, aliases=tokens)
                    status = store.verify() if store.public_key is not None else None
                    f.write(subject_access_report(subject, found, entries, now, status, tokens=tokens, child_note=
                        "not revealed by the command line: take the report from the IG page to name the child"))
                    count = len(found)
        store.log("admin_action", actor=cli_actor(), action="audit.export", target=format, subject=subject,
                  count=count)
    finally:
        store.close()
    typer.echo(f"wrote {count} {'disclosures' if format == 'sar' else 'records'} to {out}")


def _fhir(store: AuditStore, entries: list[dict[str, Any]], now: str) -> dict[str, Any]:
    """The Bundle, vouched for by a checkpoint at the head (signed now when the key is here, else the last one
    signed); entries appended after it are left for the next export, as in a jsonl export."""
    from broker.config import Settings

    if store.signing_key is not None:
        cp: dict[str, Any] | None = store.checkpoint("on_demand")
    else:
        cp = max(store.checkpoints(), key=lambda c: c["seq"], default=None)
    covered = [e for e in entries if cp is None or e["seq"] <= cp["seq"]]
    return fhir_bundle(covered, now, base=Settings().fhir_code_system_base, checkpoint=cp)


@app.command()
def digest(
    agency: Annotated[str, typer.Option("--agency", help="The partner (protocol partners[].id) whose data it is: "
                                        "its digest must be switched on (partners[].disclosure_digest).")],
    date: Annotated[str, typer.Option("--date", help="The day (YYYY-MM-DD) in --time-zone.")],
    out: Annotated[Path | None, typer.Option(help="Write here; default: standard output.")] = None,
    format: Annotated[str, typer.Option("--format", help="json or csv.")] = "json",
    time_zone: Annotated[str, typer.Option("--time-zone", help="IANA zone the day is in.")] = DEFAULT_TIME_ZONE,
    protocol_file: Annotated[Path | None, typer.Option(help="Protocol (MASH_PROTOCOL_FILE).")] = None,
    data_dir: DataDir = None, audit_url: AuditUrl = None,
) -> None:
    """A partner's disclosure digest for one day: what of its data went to whom, under which rule and lawful basis,
    consent overrides first, for its IG lead (as NHS CP-IS tells a local authority). Exit 2 when it cannot be made."""
    from broker.config import Settings
    from broker.policy.compile import load_protocol
    from broker.policy.errors import ProtocolError

    if format not in ("json", "csv"):
        raise _fail("unknown format (expected json or csv)")
    try:
        protocol = load_protocol(protocol_file or Settings().protocol_file)
    except (ProtocolError, OSError) as exc:
        raise _fail(f"cannot read the protocol: {exc}") from None
    store = _open(data_dir, audit_url)
    try:
        made = read_digest(store, protocol, agency, date=date, time_zone=time_zone, generated_at=now_iso())
        text = io.StringIO()
        if format == "json":
            text.write(json.dumps(made, indent=1, ensure_ascii=False) + "\n")
        else:
            write_digest_csv(text, made)
        # who asked for which partner's digest: IG reading what the broker disclosed is itself audited
        store.log("admin_action", actor=cli_actor(), action="audit.digest", target=agency,
                  count=made["summary"]["disclosures"])
    except DigestError as exc:
        raise _fail(str(exc)) from None
    finally:
        store.close()
    if out is None:
        typer.echo(text.getvalue(), nl=False)
    else:
        out.write_text(text.getvalue(), encoding="utf-8")
        typer.echo(f"wrote {made['summary']['disclosures']} disclosures to {out}", err=True)


@app.command()
def checkpoint(data_dir: DataDir = None, audit_url: AuditUrl = None) -> None:
    """Sign the chain head now (also done every N records and before each jsonl export)."""
    store = _open(data_dir, audit_url)
    try:
        if store.signing_key is None:
            raise SigningKeyMissing("no signing key")
        # logged first, so the checkpoint covers the record of who asked for it
        store.log("admin_action", actor=cli_actor(), action="audit.checkpoint")
        cp = store.checkpoint("on_demand")
    except SigningKeyMissing:
        raise _fail("the audit signing key is not in the data directory") from None
    finally:
        store.close()
    typer.echo(f"checkpoint at seq {cp['seq']} hash {cp['hash']} key {cp['key_id']}")


@app.command()
def prune(
    keep: Annotated[list[str] | None, typer.Option(
        help="Retention per record kind, KIND=DAYS (repeatable or comma-separated; MASH_AUDIT_RETENTION). "
             "Kinds not named are kept.")] = None,
    compact: Annotated[bool, typer.Option(help="Also drop the leading run of pruned records behind a signed "
                                               "prune checkpoint.")] = False,
    now: Annotated[str | None, typer.Option(help="Prune as of this time (ISO 8601); default: now.")] = None,
    data_dir: DataDir = None, audit_url: AuditUrl = None,
) -> None:
    """Apply retention: records past their kind's period become tombstones; the chain still verifies."""
    items = list(keep or []) or [os.environ.get("MASH_AUDIT_RETENTION", "")]
    try:
        retention = parse_retention(items)
    except RetentionError as exc:
        raise _fail(str(exc)) from None
    if not retention:
        typer.echo("no retention configured (--keep KIND=DAYS or MASH_AUDIT_RETENTION): nothing pruned")
        return
    store = _open(data_dir, audit_url)
    try:
        result = store.prune(retention, now=now, actor=cli_actor(), compact=compact)
    except SigningKeyMissing:
        raise _fail("compaction needs the audit signing key") from None
    finally:
        store.close()
    detail = ", ".join(f"{k} {n}" for k, n in sorted(result.by_kind.items())) or "none"
    typer.echo(f"pruned {result.pruned} records ({detail}); compacted {result.compacted}")


if __name__ == "__main__":  # pragma: no cover
    app(sys.argv[1:])


# What each --by asks for. Identifiers are prompted for (hidden, or read from piped stdin), never taken as options:
# an option's value stays in the shell's history and in the process list.
BY_FIELDS = {"nhs_number": ("nhs_number",), "upn": ("upn",), "la_child_id": ("la_child_id", "la_system"),
             "name": ("family_name", "given_name", "birth_date", "postcode")}


@app.command("find-child")
def find_child_command(
    reason: Annotated[str, typer.Option(help="Why you look (required): subject_access_request, "
                                             "rectification_or_erasure, complaint, disclosure_request, "
                                             "safeguarding_review, breach_investigation, ig_audit.")],
    by: Annotated[list[str], typer.Option(help="What you know: nhs_number, upn, la_child_id (with its LA's system "
                                               "code) or name (family name, first given name, date of birth and "
                                               "postcode); repeat to give several. Each value is prompted for.")],
    reference: Annotated[str | None, typer.Option(help="The request or ticket reference.")] = None,
    data_dir: DataDir = None, audit_url: AuditUrl = None,
) -> None:
    """Find a child: the tokens intake gives the identifiers (the data directory's linkage key), every token the
    identity register ties to the child, and the lookup recorded in the audit log (your uid, the reason). Prints
    tokens only; then `mash-broker audit export --format sar --subject TOKEN`."""
    from broker.config import Settings
    from broker.pipeline.find_child import ChildQuery, ChildQueryRejected, find_child, lookup_record
    from broker.secrets import linkage_key
    from broker.stores.identities import IdentityRegister

    unknown = [b for b in by if b not in BY_FIELDS]
    if unknown or not by:
        raise _fail(f"--by: one of {', '.join(BY_FIELDS)}")
    values = {field: typer.prompt(field.replace("_", " "), hide_input=True, default="", show_default=False)
              for b in dict.fromkeys(by) for field in BY_FIELDS[b]}
    query = ChildQuery(reason=reason, reference=reference, **values)
    directory = _data_dir(data_dir)
    settings = Settings()
    try:
        key = linkage_key(directory, settings.linkage_key_version, create=False)
    except Exception as exc:  # the key's path may name the host's layout, never a value: the type is enough
        raise _fail(f"the linkage key is not readable in the data directory ({type(exc).__name__})") from None
    store = _open(data_dir, audit_url)
    register = IdentityRegister(directory / IdentityRegister.FILE, os.environ.get("MASH_STORE_URL") or None)
    try:
        found = find_child(query, key, register.aliases, lambda token: bool(store.search(subject=token, limit=1)))
        store.log("admin_action", actor=cli_actor(), **lookup_record(query, found))
    except ChildQueryRejected as exc:
        raise _fail(str(exc)) from None
    finally:
        register.close()
        store.close()
    typer.echo(json.dumps({**found.answer(), "key_version": key.version}, indent=1))
