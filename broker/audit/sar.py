"""The subject access report: what was shared about one child, in words a data protection officer can send.

A pure function over the audit's disclosures and timeline. The child is named only when the caller passes the
name (the IG API reveals it for this report alone, and audits that it did); recipients are named as the protocol
names their partner; fields are put in plain words and grouped by classification, operational ones (ids, types,
times, codes) left out; lawful bases are given in the words of UK GDPR and the DPA 2018 (broker/policy/codes.py);
times are local (Europe/London by default) with the zone. The page prints on A4 (`@page`), so "Print, save as PDF"
in any browser makes the file to send.

`plain_fields` and `recipient_words` are shared with the IG page's API, so the page and the report say one thing.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from broker.audit.disclosures import Disclosure
from broker.audit.verify import VerifyResult
from broker.policy.codes import LAWFUL_BASIS
from broker.schema.classification import field_classes

ZONE = "Europe/London"

# Classification -> what a reader calls it, in the order the report lists them. Operational is left out: ids,
# types, times and codes are how the broker routes, not what it tells anyone about the child.
CLASS_WORDS: dict[str, str] = {
    "identity": "Identity", "demographic": "Sex, ethnicity and language", "contact": "Contact details",
    "location": "Addresses and places", "health": "Health", "education": "Education", "social_care": "Social care",
    "criminal": "Criminal offence data", "intelligence": "Police intelligence",
    "narrative": "Professionals' written notes", "sensitive_operational": "Risk level, consent and source codes",
}
HIDDEN_CLASSES = frozenset({"operational"})
_ABBREVIATIONS = {"nhs": "NHS", "upn": "UPN", "la": "LA", "gp": "GP", "ods": "ODS", "urn": "URN", "id": "id",
                  "pnc": "PNC", "cro": "CRO", "sen": "SEN", "dash": "DASH", "ppn": "PPN", "cp": "CP", "cin": "CIN"}
_ROLE_WORDS = {"mash_hub": "MASH hub", "early_help": "early help", "school_dsl": "designated safeguarding lead",
               "police_ppu": "public protection unit", "gp_practice": "GP practice"}
MASK_WORDS = {"year_only": "year only", "month_only": "month and year only", "initials": "initials only",
              "outward_code": "first half of the postcode only", "partial": "in part", "redact": "blanked out"}
_INDEX = re.compile(r"\[\d+\]")


@dataclass(frozen=True, slots=True)
class Recipient:
    """A subscriber as the report names it: its partner's name, what the subscriber is for, how it is sent data."""

    label: str
    delivery: str = "http-pull"  # kafka | http-pull | sse


def recipient_words(protocol: Any) -> dict[str, Recipient]:
    """subscriber name -> Recipient, from a loaded protocol: "Riverside Children's Services (MASH hub)"."""
    out: dict[str, Recipient] = {}
    for name, sub in protocol.subscribers.items():
        partner = protocol.partners.get(sub.partner)
        role = _ROLE_WORDS.get(sub.role) or _word(sub.role)
        label = f"{partner.name} ({role})" if partner is not None else name
        out[name] = Recipient(label, sub.delivery)
    return out


# Where a field sits, said as a person would: "family name (related person)", not "related people person".
_PLACE_WORDS = {"related_people": "related person", "person": "", "addresses": "address", "local_ids": "local id",
                "former_upns": "former UPNs", "phones": "phone numbers", "emails": "e-mail addresses"}


def _word(part: str) -> str:
    bare = part.replace("[]", "")
    if bare in _PLACE_WORDS:
        return _PLACE_WORDS[bare]
    return " ".join(_ABBREVIATIONS.get(w, w) for w in bare.split("_"))


def plain_field(path: str) -> str:
    """A schema path in words: `subject.child.date_of_birth` -> "date of birth (child)"."""
    parts = [p for p in _INDEX.sub("[]", path).split(".") if p]
    if parts and parts[0] in ("subject", "payload"):
        parts = parts[1:]
    if not parts:
        return path
    leaf = _word(parts[-1])
    where = " ".join(w for w in (_word(p) for p in parts[:-1]) if w)
    return f"{leaf} ({where})" if where else leaf


def plain_fields(event_type: str | None, paths: Iterable[str]) -> list[tuple[str, list[str]]]:
    """[(class in words, [field in words, ...]), ...] in CLASS_WORDS order; operational fields left out. A path the
    schema does not know counts as narrative, as the encryption and the policy count it (fail closed)."""
    classes = field_classes(event_type) if event_type else {}
    groups: dict[str, list[str]] = {}
    for path in paths:
        label = classes.get(_INDEX.sub("[]", path), "narrative")
        if label in HIDDEN_CLASSES:
            continue
        words = plain_field(path)
        bucket = groups.setdefault(label, [])
        if words not in bucket:
            bucket.append(words)
    order = list(CLASS_WORDS)
    return [(CLASS_WORDS.get(c, c.replace("_", " ")), groups[c])
            for c in sorted(groups, key=lambda c: order.index(c) if c in order else len(order))]


def local_time(iso: str | None, zone: str = ZONE) -> str:
    """"2 Mar 2026, 11:00 GMT"; an unreadable time is given as it is."""
    if not iso:
        return ""
    try:
        at = datetime.fromisoformat(iso).astimezone(ZoneInfo(zone))
    except ValueError:
        return iso
    return f"{at.day} {at:%b %Y, %H:%M} {at.tzname()}"


def basis_words(codes: Sequence[str]) -> list[str]:
    return [LAWFUL_BASIS.get(c, c) for c in codes]


def consent_lines(records: Iterable[Any]) -> list[str]:
    """Consent register records (kind, state, subject, recorded_on) in words; refs are never shown."""
    kinds = {"data_protection": "Consent to share (data protection)", "service_agreement": "Agreement to a service",
             "confidentiality": "Consent under the duty of confidence", "objection": "Objection (UK GDPR Art 21)"}
    out = []
    for r in records:
        whose = "the child" if r.subject == "child" else f"a {r.subject.replace('_', ' ')}"
        on = f", recorded {r.recorded_on}" if r.recorded_on else ""
        out.append(f"{kinds.get(r.kind, r.kind)}, {whose}: {r.state.replace('_', ' ')}{on}")
    return out


def override_words(o: Mapping[str, Any] | None) -> str:
    if not o:
        return ""
    on = f" (recorded {o['recorded_on']})" if o.get("recorded_on") else ""
    gateway = LAWFUL_BASIS.get(str(o.get("gateway")), str(o.get("gateway")))
    return f"Overridden: the {str(o.get('restriction', 'restriction')).replace('_', ' ')}{on} was set aside " \
           f"under a duty to disclose: {gateway}"


SAR_CSS = """
@page{size:A4;margin:14mm 12mm}
body{font:10.5pt/1.4 system-ui,"Segoe UI",Arial,sans-serif;color:#1b1b1b;margin:0 auto;max-width:186mm;padding:8mm 0}
h1{font-size:17pt;margin:0 0 2mm}h2{font-size:12.5pt;margin:6mm 0 2mm;border-bottom:1px solid #888}
.sub{color:#444;margin:0 0 4mm}dl{display:grid;grid-template-columns:38mm 1fr;gap:1mm 4mm;margin:0}
dt{font-weight:600}dd{margin:0}table{border-collapse:collapse;width:100%;table-layout:fixed}
th,td{border:1px solid #999;padding:1.2mm 1.6mm;text-align:left;vertical-align:top;font-size:9pt;
overflow-wrap:anywhere}th{background:#eef1f5}thead{display:table-header-group}tr{break-inside:avoid}
.ok{color:#0b6b2b}.bad{color:#a40000;font-weight:700}.muted{color:#555}ul{margin:0;padding-left:4mm}
.disclosures th:nth-child(1){width:11%}.disclosures th:nth-child(2){width:13%}
.disclosures th:nth-child(3){width:28%}.disclosures th:nth-child(4){width:20%}.disclosures th:nth-child(5){width:17%}
.disclosures th:nth-child(6){width:11%}.summary th:nth-child(1){width:32%}.summary th:nth-child(2){width:14%}
.group{font-weight:600}.ref{font-family:ui-monospace,Consolas,monospace;font-size:8pt;color:#555}
@media print{body{padding:0;max-width:none}a{color:inherit;text-decoration:none}}
"""


def _fields_cell(d: Disclosure) -> str:
    e = html.escape
    parts = []
    for words, fields in plain_fields(d.event_type, d.fields_released):
        parts.append(f'<li><span class="group">{e(words)}:</span> {e(", ".join(fields))}</li>')
    masked = [f"{plain_field(p)}: {MASK_WORDS.get(k, k.replace('_', ' '))}" for p, k in d.fields_masked.items()]
    if masked:
        parts.append(f'<li><span class="group">Partly shown:</span> {e("; ".join(masked))}</li>')
    withheld = [f for _, fs in plain_fields(d.event_type, d.fields_withheld) for f in fs]
    if withheld:
        parts.append(f'<li class="muted"><span class="group">Not shared:</span> {e(", ".join(withheld))}</li>')
    return "<ul>" + "".join(parts) + "</ul>" if parts else "&mdash;"


def _read_cell(d: Disclosure, recipient: Recipient | None, zone: str) -> str:
    if d.read_at:
        return f"Read {html.escape(local_time(d.read_at, zone))}"
    if recipient is not None and recipient.delivery == "kafka":
        return "No read recorded (read from Kafka)"
    return "Not read yet"


def subject_access_report(subject: str, found: Sequence[Disclosure], timeline: Sequence[Mapping[str, Any]],
                          generated_at: str, verification: VerifyResult | None = None, *,
                          child: Mapping[str, str] | None = None, child_note: str | None = None,
                          recipients: Mapping[str, Recipient] | None = None,
                          consent: Sequence[str] | None = None, tokens: Sequence[str] = (),
                          generated_by: str | None = None, zone: str = ZONE) -> str:
    """HTML listing every disclosure about one child: when, to whom, what (in words, by class), why (rule, purpose,
    lawful basis), whether consent was overridden, and whether the recipient read it. `child`: {"name",
    "date_of_birth"} when revealed for this report; `consent`: the consent register's records in words (None: the
    register was not read)."""
    e = html.escape
    named = recipients or {}

    def who(sub: str) -> str:
        return named[sub].label if sub in named else sub

    withheld = sum(1 for t in timeline if (t.get("record") or {}).get("kind") == "decision"
                   and t["record"].get("outcome") == "withhold")
    received = sum(1 for t in timeline if (t.get("record") or {}).get("kind") == "event_published")
    overrides = sum(1 for d in found if d.consent_override)

    if child and child.get("name"):
        born = f"<dt>Date of birth</dt><dd>{e(child['date_of_birth'])}</dd>" if child.get("date_of_birth") else ""
        child_block = f"<dl><dt>Name</dt><dd>{e(child['name'])}</dd>{born}"
    else:
        child_block = f"<dl><dt>Name</dt><dd class=\"muted\">{e(child_note or 'not shown in this copy')}</dd>"
    refs = ", ".join(tokens or [subject])
    child_block += f'<dt>Audit reference</dt><dd class="ref">{e(refs)}</dd></dl>'

    per: dict[str, list[Disclosure]] = {}
    for d in found:
        per.setdefault(d.subscriber, []).append(d)
    summary_rows = "".join(
        f"<tr><td>{e(who(sub))}</td><td>{len(ds)}</td><td>{e(local_time(ds[0].delivered_at or ds[0].decided_at, zone))}"
        f"</td><td>{e(local_time(ds[-1].delivered_at or ds[-1].decided_at, zone))}</td>"
        f"<td>{sum(1 for d in ds if d.read_at)} of {len(ds)}</td>"
        f"<td>{sum(1 for d in ds if d.consent_override) or 'none'}</td></tr>" for sub, ds in per.items())
    summary = ('<table class="summary"><thead><tr><th>Recipient</th><th>Disclosures</th><th>First</th><th>Last</th>'
               "<th>Read</th><th>Consent overridden</th></tr></thead><tbody>" + summary_rows + "</tbody></table>"
               ) if per else ""

    rows = []
    for d in found:
        basis = "<br>".join(e(w) for w in basis_words(d.lawful_basis)) or "&mdash;"
        why = (f"Rule <b>{e(d.rule_id or '')}</b>" + (f", for {e(d.purpose)}" if d.purpose else "")
               + f"<br>{basis}")
        override = override_words(d.consent_override)
        consent_cell = f'<span class="bad">{e(override)}</span>' if override else "Not overridden"
        rows.append(
            f"<tr><td>{e(local_time(d.delivered_at or d.decided_at, zone))}</td><td>{e(who(d.subscriber))}</td>"
            f"<td>{e((d.event_type or '').replace('.', ': ').replace('_', ' '))}{_fields_cell(d)}</td><td>{why}</td>"
            f"<td>{consent_cell}</td>"
            f"<td>{_read_cell(d, named.get(d.subscriber), zone)}</td></tr>")
    table = ('<table class="disclosures"><thead><tr><th>When</th><th>Recipient</th><th>What was shared</th>'
             "<th>Why: rule and lawful basis</th><th>Consent</th><th>Read</th></tr></thead><tbody>"
             + "".join(rows) + "</tbody></table>") if rows else (
        "<p>No information about this child has been shared.</p>")

    if consent is None:
        consent_block = "<p class=\"muted\">The consent register was not read for this copy.</p>"
    elif consent:
        consent_block = "<ul>" + "".join(f"<li>{e(line)}</li>" for line in consent) + "</ul>"
    else:
        consent_block = "<p>No consent, agreement or objection is recorded for this child.</p>"
    consent_block += (f'<p class="bad">Consent was overridden for {overrides} disclosure(s): see the Consent '
                      "column.</p>" if overrides else "<p>Consent was not overridden for any disclosure.</p>")

    if verification is None:
        status = "<p>Audit chain: not verified for this report.</p>"
    elif verification.ok:
        status = f'<p class="ok">Audit chain verified: {e(verification.reason)}.</p>'
    else:
        status = (f'<p class="bad">Audit chain verification FAILED at record {verification.first_bad_seq}: '
                  f"{e(verification.reason)}.</p>")
    by = f" by {e(generated_by)}" if generated_by else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Subject access report</title>
<style>{SAR_CSS}</style></head><body>
<h1>Subject access report</h1>
<p class="sub">What the safeguarding partnership shared about this child, through mash-broker.
Generated {e(local_time(generated_at, zone))}{by}.</p>
<h2>The child</h2>
{child_block}
<h2>Summary</h2>
<p>{received} record(s) about this child reached the broker; {len(found)} disclosure(s) were made to
{len(per)} recipient(s); {withheld} decision(s) withheld information from a recipient.</p>
{summary}
<h2>Consent</h2>
{consent_block}
<h2>Disclosures</h2>
{table}
<h2>About this report</h2>
{status}
<p>Each row is one release to one recipient, under the named rule of the information sharing protocol and the
lawful basis given (UK GDPR and the Data Protection Act 2018). Information is described by kind, never by its
content; the broker's own ids, codes and times are left out. Records past their retention period are no longer
listed. Times are {e(zone)} local time.</p>
</body></html>
"""
