"""The audit log as FHIR: a collection Bundle of AuditEvents (FHIR R4B, whose AuditEvent is R4's unchanged), with
a Provenance resource that carries the chain head and the checkpoint signature that vouch for them. Pure functions.

How a decision reads in FHIR (the point of the coding: a withholding is not an export):

- decision or human_decision to deliver: `type` DICOM 110106 Export; `subtype` ISO 21089 `disclose`,
  decision-outcome `deliver`, the rule; `outcome` 0 (success).
- decision or human_decision to withhold: `type` `<base>/CodeSystem/audit-event-type` `withhold`; `subtype`
  decision-outcome `withhold`, the rule when one matched; `outcome` 4 (the disclosure asked of it did not happen).
- delivered: Export, ISO 21089 `transmit`; delivery_read and delivery_read_up_to: Export, ISO 21089 `access`.
- A consent override is a subtype coding (`<base>/CodeSystem/consent-override`, the restriction set aside) and an
  entity detail naming the gateway.

The lawful basis codes are `purposeOfEvent` codings (`<base>/CodeSystem/lawful-basis`, with their words), beside the
protocol purpose (`<base>/CodeSystem/purpose`). `<base>` is the partnership's own URL (setting
`MASH_FHIR_CODE_SYSTEM_BASE`): these code systems are the partnership's, not HL7's.

Provenance: `target` every AuditEvent of the Bundle; `entity` the chain head (`<base>/identifier/audit-chain-head`,
value `<seq>:<hash>`); `signature` the Ed25519 checkpoint at that head (`who` its key id, `when` its time, `data`
its signature, over the canonical checkpoint bytes broker/audit/README.md gives); `activity` the checkpoint's
purpose. Each AuditEvent carries its own entry's seq, prev_hash, record_sha256 and hash, so a checker holding the
chain (a JSON Lines export) can tie every AuditEvent to the signed head.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from broker.errors import InputRejected

DEFAULT_BASE = "https://mash-broker.example/fhir"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
ISO_21089 = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
SIGNATURE_TYPE = "urn:iso-astm:E1762-95:2013"
PROVENANCE_ROLE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"

_IMPORT, _EXPORT, _ACTIVITY = ("110107", "Import"), ("110106", "Export"), ("110100", "Application Activity")
_DICOM = {  # kind -> DICOM audit event type, for every kind but a withholding decision
    "record_received": _IMPORT, "record_adapted": _IMPORT, "record_rejected": _IMPORT, "deadlettered": _IMPORT,
    "event_published": _IMPORT, "decision": _EXPORT, "human_decision": _EXPORT, "delivered": _EXPORT,
    "delivery_read": _EXPORT, "delivery_read_up_to": _EXPORT,
}
_LIFECYCLE = {  # kind -> ISO 21089 record lifecycle event
    "record_received": ("receive", "Receive Record Lifecycle Event"),
    "record_adapted": ("transform", "Transform/Translate Record Lifecycle Event"),
    "event_published": ("originate", "Originate/Retain Record Lifecycle Event"),
    "delivered": ("transmit", "Transmit Record Lifecycle Event"),
    "delivery_read": ("access", "Access/View Record Lifecycle Event"),
    "delivery_read_up_to": ("access", "Access/View Record Lifecycle Event"),
    "key_unwrap": ("decrypt", "Decrypt Record Lifecycle Event"),
    "key_shred": ("destroy", "Destroy/Delete Record Lifecycle Event"),
    "identity_linked": ("link", "Link Record Lifecycle Event"),
}
_DISCLOSE = ("disclose", "Disclose Record Lifecycle Event")
_ACTION = {"record_received": "C", "record_adapted": "C", "event_published": "C", "delivery_read": "R",
           "delivery_read_up_to": "R", "key_shred": "D", "identity_linked": "U"}
_FAILED = {"record_rejected", "deadlettered"}
_DECISIONS = {"decision", "human_decision"}


class FhirBaseError(InputRejected, ValueError):
    """A code-system base that is not an absolute http(s) URL (names the setting, not the value)."""


def code_system_base(base: str) -> str:
    """The base without a trailing slash; refuses anything but an absolute http(s) URL with a host."""
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise FhirBaseError("MASH_FHIR_CODE_SYSTEM_BASE: not an absolute http(s) URL without query or fragment")
    return base.rstrip("/")


def _lawful_basis_words() -> Mapping[str, str]:
    from broker.policy.codes import LAWFUL_BASIS

    return LAWFUL_BASIS


def _joined(value: list[str] | dict[str, str]) -> str:
    """A field list, or masked fields with their mask kind: 'path (kind)'."""
    if isinstance(value, dict):
        return ", ".join(f"{path} ({kind})" for path, kind in value.items())
    return ", ".join(value)


class _Codes:
    def __init__(self, base: str) -> None:
        self.base = code_system_base(base)

    def system(self, name: str) -> str:
        return f"{self.base}/CodeSystem/{name}"

    def coding(self, name: str, code: str, display: str | None = None) -> dict[str, Any]:
        return {"system": self.system(name), "code": code, **({"display": display} if display else {})}

    def ident(self, name: str, value: Any) -> dict[str, Any]:
        return {"identifier": {"system": f"{self.base}/identifier/{name}", "value": str(value)}}


def _type_and_outcome(r: Mapping[str, Any], c: _Codes) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    kind = r["kind"]
    subtype = [c.coding("audit-kind", kind)]
    if kind in _DECISIONS:
        outcome = r.get("outcome", "withhold")
        subtype.append(c.coding("decision-outcome", outcome, "Disclosed" if outcome == "deliver" else "Withheld"))
        if r.get("rule_id"):
            subtype.append(c.coding("rule", r["rule_id"]))
        if r.get("consent_override"):
            subtype.append(c.coding("consent-override", r["consent_override"]["restriction"]))
        if outcome == "deliver":
            code, display = _DICOM[kind]
            subtype.insert(0, {"system": ISO_21089, "code": _DISCLOSE[0], "display": _DISCLOSE[1]})
            return {"system": DCM, "code": code, "display": display}, subtype, "0"
        # nothing left the broker: not an export, and the disclosure asked of it did not take place
        return c.coding("audit-event-type", "withhold", "Disclosure withheld"), subtype, "4"
    code, display = _DICOM.get(kind, _ACTIVITY)
    if kind in _LIFECYCLE:
        life, words = _LIFECYCLE[kind]
        subtype.insert(0, {"system": ISO_21089, "code": life, "display": words})
    return {"system": DCM, "code": code, "display": display}, subtype, "4" if kind in _FAILED else "0"


def _outcome_desc(r: Mapping[str, Any]) -> str | None:
    if r["kind"] in _DECISIONS:
        said = f"delivered under rule {r.get('rule_id')}" if r.get("outcome") == "deliver" else "withheld"
        return f"{said}: {r['reason']}" if r.get("reason") else said
    return r.get("reason")


def audit_event(entry: Mapping[str, Any], base: str = DEFAULT_BASE) -> dict[str, Any]:
    """One chained entry (with its body) as a FHIR AuditEvent."""
    c = _Codes(base)
    r = entry["record"]
    kind = r["kind"]
    type_, subtype, outcome = _type_and_outcome(r, c)
    event: dict[str, Any] = {
        "resourceType": "AuditEvent", "id": r["record_id"], "type": type_, "subtype": subtype,
        "action": _ACTION.get(kind, "E"), "recorded": r["time"], "outcome": outcome,
        "agent": [{"who": c.ident("actor", r["actor"]), "requestor": True}],
        "source": {"observer": {"display": "mash-broker"},
                   "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}]},
    }
    if (desc := _outcome_desc(r)) is not None:
        event["outcomeDesc"] = desc
    if r.get("subscriber"):
        reader = kind in ("delivery_read", "delivery_read_up_to")
        event["agent"].append({"who": c.ident("subscriber", r["subscriber"]), "requestor": reader})
    words = _lawful_basis_words()
    purposes = [{"coding": [c.coding("lawful-basis", code, words.get(code))]} for code in r.get("lawful_basis", [])]
    if r.get("purpose"):
        purposes.append({"coding": [c.coding("purpose", r["purpose"])]})
    if purposes:
        event["purposeOfEvent"] = purposes
    entities: list[dict[str, Any]] = []
    if r.get("subject"):
        entities.append({"what": c.ident("linkage-token", r["subject"]),
                         "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                         "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}})
    if r.get("event_id"):
        details = [{"type": "event_type", "valueString": r["event_type"]}] if r.get("event_type") else []
        for name in ("fields_released", "fields_masked", "fields_withheld"):
            if r.get(name):
                details.append({"type": name, "valueString": _joined(r[name])})
        if r.get("consent_override"):
            o = r["consent_override"]
            details.append({"type": "consent_override", "valueString": f"{o['restriction']} set aside under "
                            f"{o['gateway']}"})
        entities.append({"what": c.ident("event-id", r["event_id"]),
                         "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                         **({"detail": details} if details else {})})
    if r.get("topic"):  # where a delivery went, or how far a Kafka consumer group has read
        place = [{"type": k, "valueString": str(r[k])} for k in ("topic", "partition", "offset", "group") if k in r]
        entities.append({"what": c.ident("kafka-topic", r["topic"]), "name": "Kafka position", "detail": place})
    entities.append({"what": c.ident("audit-entry", entry["seq"]), "name": "audit chain entry",
                     "detail": [{"type": k, "valueString": entry[k]} for k in ("prev_hash", "record_sha256", "hash")]})
    event["entity"] = entities
    return event


def provenance(targets: Iterable[str], checkpoint: Mapping[str, Any], base: str = DEFAULT_BASE) -> dict[str, Any]:
    """A Provenance for the AuditEvents at `targets` (their fullUrls): the chain head they belong to and the signed
    checkpoint at it."""
    c = _Codes(base)
    head = f"{checkpoint['seq']}:{checkpoint['hash']}"
    return {
        "resourceType": "Provenance", "id": f"audit-checkpoint-{checkpoint['seq']}",
        "target": [{"reference": t} for t in targets], "recorded": checkpoint["time"],
        "activity": {"coding": [c.coding("checkpoint-purpose", checkpoint["purpose"])]},
        "agent": [{"type": {"coding": [{"system": PROVENANCE_ROLE, "code": "assembler", "display": "Assembler"}]},
                   "who": {"display": "mash-broker audit store"}}],
        "entity": [{"role": "source", "what": {**c.ident("audit-chain-head", head), "display": "audit chain head"}}],
        "signature": [{"type": [{"system": SIGNATURE_TYPE, "code": "1.2.840.10065.1.12.1.14",
                                 "display": "Source Signature"}],
                       "when": checkpoint["time"], "who": c.ident("audit-signing-key", checkpoint["key_id"]),
                       "targetFormat": "application/json", "sigFormat": "application/octet-stream",
                       "data": checkpoint["signature"]}],
    }


def fhir_bundle(entries: Iterable[Mapping[str, Any]], exported_at: str, *, base: str = DEFAULT_BASE,
                checkpoint: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A collection Bundle of AuditEvents (pruned entries, which have no body, are left out), and with `checkpoint`
    (the signed checkpoint at the export's head) a Provenance vouching for them."""
    items: list[dict[str, Any]] = [{"fullUrl": f"urn:uuid:{e['record']['record_id']}",
                                    "resource": audit_event(e, base)} for e in entries if e.get("record")]
    if checkpoint is not None and items:  # a Provenance needs a target
        prov = provenance([str(i["fullUrl"]) for i in items], checkpoint, base)
        items.append({"fullUrl": f"{code_system_base(base)}/Provenance/{prov['id']}", "resource": prov})
    return {"resourceType": "Bundle", "type": "collection", "timestamp": exported_at, "entry": items}
