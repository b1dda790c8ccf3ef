"""Exports of the audit log: verifiable JSON Lines, CSV for spreadsheets, a FHIR R4B AuditEvent Bundle, and a
subject access report (HTML) listing every disclosure about one child.

JSON Lines layout (one JSON object per line):
  1. header      {"type": "mash-broker-audit-export", "version": 2, "exported_at", "public_key", "key_id",
                  "checkpoint_every", "head": {"seq", "hash"}, "hash_rule"}
  2. entries     {"type": "entry", "seq", "prev_hash", "record_sha256", "hash", "record" | "pruned"}
  3. checkpoints {"type": "checkpoint", "seq", "hash", "time", "purpose", "key_id", "signature"}
`mash-broker audit verify EXPORT` (or broker.audit.verify.verify on the parsed lines, with the header's
checkpoint_every and head) checks it standalone. Version 1 files (no checkpoint_every, no head) still read.
"""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.audit.checkpoint import key_id, parse_public_key, public_key_b64
from broker.audit.disclosures import Disclosure
from broker.audit.verify import VerifyResult
from broker.errors import InputRejected

EXPORT_TYPE = "mash-broker-audit-export"
EXPORT_VERSION = 2
READABLE_VERSIONS = (1, 2)
HASH_RULE = ("entry.hash = SHA-256(canonical({seq, prev_hash, record_sha256})); record_sha256 = "
             "SHA-256(canonical(record)); canonical = JSON, sorted keys, no whitespace, UTF-8 (RFC 8785 for these "
             "records); the first entry's prev_hash is 64 zeros, or the hash in a signed prune checkpoint")


class ExportFormatError(InputRejected, ValueError):
    """An export file that cannot be read: names the line and the problem, never its content."""


# --- JSON Lines --------------------------------------------------------------------------------------------------
def write_jsonl(out: TextIO, entries: Iterable[Mapping[str, Any]], checkpoints: Sequence[Mapping[str, Any]],
                public_key: Ed25519PublicKey, exported_at: str, *, checkpoint_every: int = 0,
                head: tuple[int, str] | None = None) -> int:
    """`head`: the last entry written (the export ends there); `checkpoint_every`: the store's periodic interval,
    so the verifier expects a checkpoint at each of its multiples."""
    header = {"type": EXPORT_TYPE, "version": EXPORT_VERSION, "exported_at": exported_at,
              "public_key": public_key_b64(public_key), "key_id": key_id(public_key), "hash_rule": HASH_RULE,
              "checkpoint_every": checkpoint_every}
    if head is not None:
        header["head"] = {"seq": head[0], "hash": head[1]}
    out.write(json.dumps(header, sort_keys=True) + "\n")
    count = 0
    for entry in entries:
        out.write(json.dumps({"type": "entry", **entry}, sort_keys=True, ensure_ascii=False) + "\n")
        count += 1
    for cp in checkpoints:
        out.write(json.dumps({"type": "checkpoint", **cp}, sort_keys=True) + "\n")
    return count


def read_jsonl(lines: Iterable[str]) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(header, entries, checkpoints) in file order. Raises ExportFormatError for a file that is not an export."""
    header: dict[str, Any] | None = None
    entries: list[dict[str, Any]] = []
    checkpoints: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            raise ExportFormatError(f"line {number}: not JSON") from None
        if not isinstance(item, dict):
            raise ExportFormatError(f"line {number}: not a JSON object")
        kind = item.pop("type", None)
        if header is None:
            if kind != EXPORT_TYPE or item.get("version") not in READABLE_VERSIONS:
                raise ExportFormatError(f"line {number}: not a {EXPORT_TYPE} version "
                                        f"{' or '.join(map(str, READABLE_VERSIONS))} header")
            header = item
        elif kind == "entry":
            entries.append(item)
        elif kind == "checkpoint":
            checkpoints.append(item)
        else:
            raise ExportFormatError(f"line {number}: unknown line type")
    if header is None:
        raise ExportFormatError("empty file: no export header")
    return header, entries, checkpoints


def embedded_public_key(header: Mapping[str, Any]) -> Ed25519PublicKey:
    return parse_public_key(str(header.get("public_key", "")))


def header_checks(header: Mapping[str, Any]) -> dict[str, Any]:
    """verify()'s keyword arguments from an export header: checkpoint_every and head (absent in version 1).
    Raises ExportFormatError for values of the wrong type (never echoing them)."""
    every = header.get("checkpoint_every", 0)
    if not isinstance(every, int) or isinstance(every, bool) or every < 0:
        raise ExportFormatError("header: checkpoint_every is not a whole number")
    head = header.get("head")
    if head is None:
        return {"checkpoint_every": every}
    if not (isinstance(head, Mapping) and isinstance(head.get("seq"), int) and isinstance(head.get("hash"), str)):
        raise ExportFormatError("header: head is not {seq, hash}")
    return {"checkpoint_every": every, "head": (head["seq"], head["hash"])}


# --- CSV ---------------------------------------------------------------------------------------------------------
CSV_COLUMNS = (
    "seq", "time", "kind", "actor", "subject", "agency", "system", "subscriber", "event_id", "event_type",
    "decision_id", "outcome", "rule_id", "purpose", "lawful_basis", "protocol_id", "protocol_version",
    "fields_released", "fields_masked", "fields_withheld", "deadletter_id", "reason", "key_id", "action", "target",
    "count", "size", "content_sha256", "record_id", "record_sha256", "hash", "prev_hash", "pruned_at",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        value = "; ".join(f"{k} ({v})" for k, v in value.items())
    elif isinstance(value, list):
        value = "; ".join(str(v) for v in value)
    text = str(value)
    # A cell starting with = + - @ is a formula to a spreadsheet: quote it so it stays text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_csv(out: TextIO, entries: Iterable[Mapping[str, Any]]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for entry in entries:
        record = dict(entry.get("record") or {})
        pruned = entry.get("pruned") or {}
        row = {**record, "seq": entry["seq"], "record_sha256": entry["record_sha256"], "hash": entry["hash"],
               "prev_hash": entry["prev_hash"], "kind": record.get("kind", pruned.get("kind")),
               "time": record.get("time", pruned.get("time")), "pruned_at": pruned.get("at")}
        writer.writerow([_cell(row.get(c)) for c in CSV_COLUMNS])
        count += 1
    return count


# --- FHIR R4B AuditEvent Bundle ----------------------------------------------------------------------------------
NS = "https://mash-broker.example/fhir"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
_TYPE = {  # kind -> DICOM audit event type (code, display)
    "record_received": ("110107", "Import"), "record_adapted": ("110107", "Import"),
    "record_rejected": ("110107", "Import"), "deadlettered": ("110107", "Import"),
    "event_published": ("110107", "Import"), "decision": ("110106", "Export"), "delivered": ("110106", "Export"),
    "delivery_read": ("110106", "Export"), "key_unwrap": ("110100", "Application Activity"),
    "key_shred": ("110100", "Application Activity"), "protocol_change": ("110100", "Application Activity"),
    "admin_action": ("110100", "Application Activity"), "identity_linked": ("110100", "Application Activity"),
    "human_decision": ("110106", "Export"), "determination": ("110100", "Application Activity"),
}
_ACTION = {"record_received": "C", "record_adapted": "C", "event_published": "C", "delivery_read": "R",
           "key_shred": "D", "identity_linked": "U"}
_FAILED = {"record_rejected", "deadlettered"}


def _joined(value: list[str] | dict[str, str]) -> str:
    """A field list, or masked fields with their mask kind: 'path (kind)'."""
    if isinstance(value, dict):
        return ", ".join(f"{path} ({kind})" for path, kind in value.items())
    return ", ".join(value)


def _ident(system: str, value: Any) -> dict[str, Any]:
    return {"identifier": {"system": f"{NS}/{system}", "value": str(value)}}


def _lawful_basis_words() -> Mapping[str, str]:
    from broker.policy.codes import LAWFUL_BASIS

    return LAWFUL_BASIS


def audit_event(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One chained entry (with its body) as a FHIR R4B AuditEvent."""
    r = entry["record"]
    kind = r["kind"]
    code, display = _TYPE[kind]
    event: dict[str, Any] = {
        "resourceType": "AuditEvent", "id": r["record_id"],
        "type": {"system": DCM, "code": code, "display": display},
        "subtype": [{"system": f"{NS}/CodeSystem/audit-kind", "code": kind}],
        "action": _ACTION.get(kind, "E"), "recorded": r["time"],
        "outcome": "4" if kind in _FAILED else "0",
        "agent": [{"who": _ident("actor", r["actor"]), "requestor": True}],
        "source": {"observer": {"display": "mash-broker"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4",
                             "display": "Application Server"}]},
    }
    if r.get("reason"):
        event["outcomeDesc"] = r["reason"]
    elif kind == "decision":
        event["outcomeDesc"] = (f"delivered under rule {r.get('rule_id')}" if r.get("outcome") == "deliver"
                                else "withheld")
    if r.get("subscriber"):
        event["agent"].append({"who": _ident("subscriber", r["subscriber"]), "requestor": kind == "delivery_read"})
    words = _lawful_basis_words()
    purposes = [{"coding": [{"system": f"{NS}/CodeSystem/lawful-basis", "code": c,
                             **({"display": words[c]} if c in words else {})}]} for c in r.get("lawful_basis", [])]
    if r.get("purpose"):
        purposes.append({"coding": [{"system": f"{NS}/CodeSystem/purpose", "code": r["purpose"]}]})
    if purposes:
        event["purposeOfEvent"] = purposes
    entities: list[dict[str, Any]] = []
    if r.get("subject"):
        entities.append({"what": _ident("linkage-token", r["subject"]),
                         "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1",
                                  "display": "Person"},
                         "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1",
                                  "display": "Patient"}})
    if r.get("event_id"):
        details = [{"type": "event_type", "valueString": r["event_type"]}] if r.get("event_type") else []
        for name in ("fields_released", "fields_masked", "fields_withheld"):
            if r.get(name):
                details.append({"type": name, "valueString": _joined(r[name])})
        entities.append({"what": _ident("event-id", r["event_id"]),
                         "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2",
                                  "display": "System Object"}, **({"detail": details} if details else {})})
    entities.append({"what": _ident("audit-entry", entry["seq"]), "name": "audit chain entry",
                     "detail": [{"type": k, "valueString": entry[k]} for k in ("prev_hash", "record_sha256", "hash")]})
    event["entity"] = entities
    return event


def fhir_bundle(entries: Iterable[Mapping[str, Any]], exported_at: str) -> dict[str, Any]:
    """A collection Bundle of AuditEvents; pruned entries (no body) are left out."""
    items = [{"fullUrl": f"urn:uuid:{e['record']['record_id']}", "resource": audit_event(e)}
             for e in entries if e.get("record")]
    return {"resourceType": "Bundle", "type": "collection", "timestamp": exported_at, "entry": items}


# --- Subject access report ---------------------------------------------------------------------------------------
_SAR_CSS = """body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1b1b}table{border-collapse:collapse;width:100%}
th,td{border:1px solid #bbb;padding:.35rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}
th{background:#eef1f5}.ok{color:#0b6b2b}.bad{color:#a40000}code{font-size:.85rem}"""


def _list(values: Sequence[str] | Mapping[str, str]) -> str:
    if isinstance(values, Mapping):
        return "<br>".join(f"<code>{html.escape(p)}</code> ({html.escape(k)})" for p, k in values.items()) or "&mdash;"
    return "<br>".join(f"<code>{html.escape(v)}</code>" for v in values) or "&mdash;"


def _override(o: Mapping[str, Any] | None) -> str:
    """A consent restriction set aside under a duty to disclose, in words; a dash when consent was not overridden."""
    if not o:
        return "&mdash;"
    on = f" (recorded {html.escape(str(o['recorded_on']))})" if o.get("recorded_on") else ""
    return (f'<strong class="bad">Overridden</strong>: the {html.escape(str(o["restriction"]))}{on} was set aside'
            f" under the duty to disclose <code>{html.escape(str(o['gateway']))}</code>")


def subject_access_report(subject: str, found: Sequence[Disclosure], timeline: Sequence[Mapping[str, Any]],
                          generated_at: str, verification: VerifyResult | None = None) -> str:
    """HTML listing every disclosure about one child: when, to whom, under which rule and lawful basis, which
    fields were released, masked or withheld, and when the recipient read it."""
    e = html.escape
    words = _lawful_basis_words()
    withheld = sum(1 for t in timeline if (t.get("record") or {}).get("kind") == "decision"
                   and t["record"].get("outcome") == "withhold")
    received = sum(1 for t in timeline if (t.get("record") or {}).get("kind") == "event_published")
    rows = []
    for d in found:
        basis = "<br>".join(f"<code>{e(c)}</code> {e(words.get(c, ''))}" for c in d.lawful_basis) or "&mdash;"
        rows.append(
            f"<tr><td>{e(d.delivered_at or d.decided_at)}</td><td>{e(d.subscriber)}</td><td>{e(d.event_type or '')}"
            f"</td><td><code>{e(d.rule_id or '')}</code></td><td>{e(d.purpose or '')}</td><td>{basis}</td>"
            f"<td>{_list(d.fields_released)}</td><td>{_list(d.fields_masked)}</td><td>{_list(d.fields_withheld)}</td>"
            f"<td>{_override(d.consent_override)}</td>"
            f"<td>{e(d.read_at or 'not yet read')}</td><td>{e(d.protocol_version or '')}</td></tr>")
    if verification is None:
        status = "<p>Audit chain: not verified for this report.</p>"
    elif verification.ok:
        status = f'<p class="ok">Audit chain verified: {e(verification.reason)}.</p>'
    else:
        status = (f'<p class="bad">Audit chain verification FAILED at record {verification.first_bad_seq}: '
                  f"{e(verification.reason)}.</p>")
    table = ("<table><thead><tr><th>Shared on</th><th>Recipient</th><th>Event</th><th>Rule</th><th>Purpose</th>"
             "<th>Lawful basis</th><th>Fields released</th><th>Fields masked</th><th>Fields withheld</th>"
             "<th>Consent override</th><th>Read by recipient</th><th>Protocol version</th></tr></thead>"
             "<tbody>" + "".join(rows) + "</tbody></table>"
             ) if rows else "<p>No information about this child has been shared.</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Subject access report: disclosures</title>
<style>{_SAR_CSS}</style></head><body>
<h1>Subject access report: disclosures about one child</h1>
<p>Child (linkage token): <code>{e(subject)}</code><br>Generated: {e(generated_at)}</p>
{status}
<p>{received} event(s) about this child reached the broker; {len(found)} disclosure(s) were made;
{withheld} decision(s) withheld information from a recipient.</p>
<h2>Disclosures</h2>
{table}
<p>Each row is one release to one recipient, under the named rule of the information sharing protocol.
Fields are named by their place in the record, never by their content. Records past their retention period are
no longer listed.</p>
</body></html>
"""
