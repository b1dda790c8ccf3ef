"""HL7 v2 ADT adapter (ER7, pipe-delimited): admissions, discharges, registrations, updates and merges.

Each message in the input is one record. A bad message becomes a Rejection naming "message N" and the HL7 field
(e.g. PID-7); the other messages still flow. An NHS number failing Modulus 11 is kept and flagged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from adapters.health.fhir_common import PARENTAL, RELATIONSHIP_ROLE
from adapters.health.hl7v2_reading import (
    Message,
    components,
    date_only,
    message_line,
    segment_lines,
    split_messages,
    starts_like_hl7,
    ts,
)
from adapters.kit.events import new_event, warning
from adapters.kit.identifiers import check_nhs_number, normalise_postcode
from adapters.kit.interface import AdaptContext, AdapterInputError, AdapterOutput, FieldProblem, Rejection

FORMAT = "hl7v2"
MAX_BYTES = 20 * 1024 * 1024
MAX_MESSAGES = 10_000
NHS_AUTHORITIES = {"NHS", "2.16.840.1.113883.2.1.4.1"}  # namespace id, or the NHS number OID
NHS_ID_TYPES = {"NH", "HN"}
SEX = {"M": "male", "F": "female", "O": "other", "A": "other", "U": "unknown", "N": "unknown"}
ADDRESS_USE = {"H": "home", "C": "temporary", "TMP": "temporary"}

# PV1-2 patient class (HL7 table 0004) -> canonical setting.
SETTING = {"E": "emergency", "I": "inpatient", "O": "outpatient", "P": "inpatient", "R": "outpatient",
           "B": "inpatient"}
ENCOUNTER_EVENTS = {"A01", "A03", "A04"}
PERSON_EVENTS = {"A08", "A40"}
# A birth date this long before the message is not a real person's (a typing slip such as 1013 for 2013): kept, as
# the sender wrote it, and flagged so nobody acts on an age computed from it.
MAX_AGE_YEARS = 125

Warning = dict[str, str]


def _encounter_type(event: str, patient_class: str) -> str:
    """A01/A03: admission unless the class is E (emergency); A04: urgent care for E, else an attendance."""
    if patient_class == "E":
        return "health.urgent_care_attendance"
    return "health.attendance" if event == "A04" else "health.admission"


def _plausible_birth(birth: str, sent: str | None) -> bool:
    """A birth date no later than the message (else its receipt is unknown here: only the floor applies) and no more
    than MAX_AGE_YEARS before it."""
    born = dt.date.fromisoformat(birth)
    ref = dt.date.fromisoformat(sent[:10]) if sent else None
    floor = (ref.year if ref else dt.MAXYEAR) - MAX_AGE_YEARS
    return born.year >= floor and (ref is None or born <= ref)


def _person(msg: Message, pid: Any, system: str, warnings: list[Warning], sent: str | None = None) -> dict[str, Any]:
    person: dict[str, Any] = {}
    person.update(_identifiers(msg, pid, 3, "PID-3", system, warnings))
    name = _name(msg.repetitions(pid, 5))
    person["given_names"], person["family_name"] = name
    person["date_of_birth"] = date_only(msg.value(pid, 7), "PID-7")
    if person["date_of_birth"] and not _plausible_birth(person["date_of_birth"], sent):
        warnings.append(warning("date.implausible", "PID-7",
                                f"birth date more than {MAX_AGE_YEARS} years before, or after, the message"))
    sex = msg.value(pid, 8).upper()
    if sex:
        person["sex"] = SEX.get(sex)
        if sex not in SEX:
            warnings.append(warning("sex.unrecognised", "PID-8", "administrative sex code not in HL7 table 0001"))
    person["addresses"] = _addresses(msg.repetitions(pid, 11), "PID-11", warnings)
    person["phones"] = _phones(msg.repetitions(pid, 13))
    person["date_of_death"] = date_only(msg.value(pid, 29), "PID-29")
    return person


def _identifiers(msg: Message, seg: Any, field: int, label: str, system: str,
                 warnings: list[Warning]) -> dict[str, Any]:
    """NHS number (assigning authority NHS, type NH/HN) and the other identifiers as local ids."""
    out: dict[str, Any] = {}
    for i, rep in enumerate(msg.repetitions(seg, field)):
        value = components(rep, 1)
        if not value:
            continue
        authority = components(rep, 4)  # CX-4 HD: namespace id & universal id & type
        universal = rep[3][1].strip() if len(rep) >= 4 and len(rep[3]) > 1 else ""
        id_type = components(rep, 5).upper()
        if (authority.upper() in NHS_AUTHORITIES or universal in NHS_AUTHORITIES) and id_type in NHS_ID_TYPES:
            if "nhs_number" not in out:
                out["nhs_number"], w = check_nhs_number(value, f"{label}[{i + 1}]")
                warnings.extend(w)
            continue
        out.setdefault("local_ids", []).append({"system": f"{system}/{authority or universal or id_type or label}",
                                                "value": value[:100]})
    return out


def _name(reps: list[list[list[str]]]) -> tuple[list[str], str | None]:
    """XPN: the legal name (type L) if given, else the first; given names are XPN-2 and XPN-3."""
    chosen = next((r for r in reps if components(r, 7) == "L"), reps[0] if reps else None)
    if chosen is None:
        return [], None
    given = [n for n in (components(chosen, 2), *components(chosen, 3).split()) if n]
    return given, components(chosen, 1) or None


def _text(rep: list[list[str]], n: int) -> str:
    """Component n with all its subcomponents, space-joined: a `&` never stays inside text, and nothing after one is
    lost (components() keeps the first subcomponent only)."""
    return " ".join(s.strip() for s in rep[n - 1] if s.strip()) if len(rep) >= n else ""


def _street(rep: list[list[str]]) -> str:
    """XAD-1 is an SAD: street or mailing address & street name & dwelling number. The first subcomponent is the
    whole line when sent; else the dwelling number and street name make it."""
    sad = [s.strip() for s in rep[0]] if rep else []
    if sad and sad[0]:
        return sad[0]
    return " ".join(x for x in (sad[2] if len(sad) > 2 else "", sad[1] if len(sad) > 1 else "") if x)


def _addresses(reps: list[list[list[str]]], field: str, warnings: list[Warning]) -> list[dict[str, Any]]:
    """Each XAD repetition with something in it. One naming only a country (`^^^^^ENGLAND^L`, as PAS systems send)
    says nothing the canonical address can hold (it has no country): left out with a warning, not sent as an empty
    address that would read as "no fixed abode"."""
    out = []
    for i, rep in enumerate(reps):
        if not any(any(c) for c in rep):
            continue
        where = f"{field}[{i + 1}]"
        address = _address(rep, where, warnings)
        if not any(address.get(k) for k in ("lines", "city", "district", "postcode")):
            warnings.append(warning("address.country_only", where, "address names only a country or type; left out"))
            continue
        out.append(address)
    return out


def _address(rep: list[list[str]], field: str, warnings: list[Warning]) -> dict[str, Any]:
    """XAD: street^other^city^county^postcode^country^type."""
    postcode = None
    if _text(rep, 5):
        postcode, w = normalise_postcode(_text(rep, 5), f"{field}.5")
        warnings.extend(w)
    return {"lines": [x for x in (_street(rep), _text(rep, 2)) if x], "city": _text(rep, 3),
            "district": _text(rep, 4), "postcode": postcode,
            "use": ADDRESS_USE.get(components(rep, 7)) or ("other" if components(rep, 7) else None)}


def _phones(reps: list[list[list[str]]]) -> list[str]:
    """XTN: the number in XTN-1, else the unformatted XTN-12; e-mail addresses (XTN-3 'Internet') are left out."""
    out = []
    for rep in reps:
        if components(rep, 3).lower() == "internet":
            continue
        number = components(rep, 1) or components(rep, 12)
        if number:
            out.append(number[:40])
    return out


def _next_of_kin(msg: Message, system: str, warnings: list[Warning]) -> list[dict[str, Any]]:
    out = []
    for n, nk1 in enumerate(msg.segments("NK1"), start=1):
        code = msg.value(nk1, 3).upper() or msg.value(nk1, 7).upper()
        given, family = _name(msg.repetitions(nk1, 2))
        person = {
            "given_names": given, "family_name": family,
            "addresses": _addresses(msg.repetitions(nk1, 4), f"NK1[{n}]-4", warnings),
            "phones": _phones(msg.repetitions(nk1, 5)),
        }
        out.append({"role": RELATIONSHIP_ROLE.get(code, "other"), "relationship": code[:100] or None,
                    "parental_responsibility": True if code in PARENTAL else None, "person": person})
    return out


def _encounter_payload(msg: Message, pv1: Any, event: str) -> dict[str, Any]:
    patient_class = msg.value(pv1, 2).upper()
    location = "/".join(x for x in (msg.value(pv1, 3, c) for c in (4, 1, 2, 3)) if x)
    admit_source, disposition = msg.value(pv1, 14), msg.value(pv1, 36)
    return {
        "setting": SETTING.get(patient_class, "other"), "class_code": patient_class[:100] or None,
        "status": {"A01": "in-progress", "A03": "finished", "A04": "arrived"}[event],
        "period_start": ts(msg.value(pv1, 44), "PV1-44"), "period_end": ts(msg.value(pv1, 45), "PV1-45"),
        "location": location[:200] or None, "visit_number": msg.value(pv1, 19)[:50] or None,
        "admission_source": {"system": "http://terminology.hl7.org/CodeSystem/v2-0023", "code": admit_source[:100]}
        if admit_source else None,
        "discharge_disposition": {"system": "http://terminology.hl7.org/CodeSystem/v2-0112",
                                  "code": disposition[:100]} if disposition else None,
    }


def record_version(msg: Message) -> str:
    """MSH-7 and a digest of the whole message: two messages with the same control id and time but different content
    get different versions (so different event ids) instead of the second being dropped as a duplicate; a resend of
    the same message (same bytes, with or without MLLP framing or LF line ends) keeps its id and deduplicates."""
    digest = "sha256:" + hashlib.sha256(msg.text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    sent = msg.value(msg.segment("MSH"), 7)[:60]
    return f"{sent}/{digest}" if sent else digest


def _before(later: str | None, earlier: str | None) -> bool:
    """True when both times are known and `later` is before `earlier` (dates compare as the start of the day)."""
    if not later or not earlier:
        return False
    return _moment(later) < _moment(earlier)


def _moment(value: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def map_message(msg: Message, ctx: AdaptContext) -> dict[str, Any]:
    """One canonical event for one ADT message; FieldProblem names the HL7 field that stops it."""
    msh = msg.segment("MSH")
    message_type, event = msg.value(msh, 9, 1).upper(), msg.value(msh, 9, 2).upper()
    if message_type != "ADT":
        raise FieldProblem("MSH-9", "not an ADT message")
    if event not in ENCOUNTER_EVENTS | PERSON_EVENTS:
        raise FieldProblem("MSH-9", "trigger event not handled (A01, A03, A04, A08, A40)")
    control_id = msg.value(msh, 10)
    if not control_id:
        raise FieldProblem("MSH-10", "missing: message control id")
    system = (msg.value(msh, 4) or msg.value(msh, 4, 2) or msg.value(msh, 3) or ctx.system or "hl7v2")[:200]
    sent = ts(msg.value(msh, 7), "MSH-7")
    version = record_version(msg)
    evn = msg.segment("EVN")
    recorded = ts(msg.value(evn, 6), "EVN-6") or ts(msg.value(evn, 2), "EVN-2") if evn is not None else None
    pid = msg.segment("PID")
    if pid is None:
        raise FieldProblem("PID", "missing: patient identification segment")
    warnings: list[Warning] = []
    child = _person(msg, pid, system, warnings, sent)
    related = _next_of_kin(msg, system, warnings)
    common: dict[str, Any] = {"agency": "health", "system": system, "record_id": f"{control_id[:150]}:{event}",
              "record_version": version, "fmt": FORMAT, "child": child, "related_people": related,
              "warnings": warnings}
    if event in ENCOUNTER_EVENTS:
        pv1 = msg.segment("PV1")
        if pv1 is None:
            raise FieldProblem("PV1", "missing: patient visit segment")
        payload = _encounter_payload(msg, pv1, event)
        if event == "A03" and not payload["period_end"]:
            payload["period_end"] = recorded
            warnings.append(warning("discharge.time_missing", "PV1-45", "no discharge time; event time used"))
        if _before(payload["period_end"], payload["period_start"]):
            warnings.append(warning("date.order", "PV1-45", "discharge is before admission (PV1-44)"))
        occurred = (payload["period_end"] if event == "A03" else payload["period_start"]) or recorded or sent
        return new_event(event_type=_encounter_type(event, payload["class_code"] or ""), occurred_at=occurred or
                         ctx.received_at, payload=payload, **common)
    occurred = recorded or sent or ctx.received_at
    if event == "A08":
        return new_event(event_type="person.updated", occurred_at=occurred,
                         payload={"record_kind": "HL7v2 ADT^A08"}, **common)
    mrg = msg.segment("MRG")
    if mrg is None:
        raise FieldProblem("MRG", "missing: an A40 merge names the superseded identity in MRG")
    superseded = _identifiers(msg, mrg, 1, "MRG-1", system, warnings)
    given, family = _name(msg.repetitions(mrg, 7))
    superseded.update({"given_names": given, "family_name": family})
    if not superseded.get("nhs_number") and not superseded.get("local_ids"):
        raise FieldProblem("MRG-1", "missing: the prior patient identifier being merged")
    return new_event(event_type="person.merged", occurred_at=occurred,
                     payload={"record_kind": "HL7v2 ADT^A40 merge", "superseded": superseded}, **common)


CHARSET_GUESSED = warning("hl7.character_set_guessed", "MSH-18",
                          "no character set declared and the text is not UTF-8: read as Windows-1252")


class Hl7v2Adapter:
    name = "health.hl7v2"
    agency = "health"
    formats = ("HL7 v2 ADT (ER7) A01/A03/A04/A08/A40",)
    content_types = ("x-application/hl7-v2+er7", "application/hl7-v2")
    extensions = (".hl7",)
    # HL7 v2 announces itself (MSH, FHS or BHS first): chosen by content whatever the name or content type, since ADT
    # extracts and corpora are stored as .txt and sent as text/plain (kit.registry.select).
    recognised_by_content = True

    def sniff(self, data: bytes) -> bool:
        return starts_like_hl7(data)

    def adapt(self, data: bytes, ctx: AdaptContext) -> AdapterOutput:
        if len(data) > MAX_BYTES:
            raise AdapterInputError(Rejection(ctx.source, "", "", f"input larger than {MAX_BYTES} bytes"))
        texts = split_messages(data)
        if not texts and starts_like_hl7(data):
            return AdapterOutput()  # a batch envelope with no message in it: nothing to read, nothing wrong
        if not texts or not texts[0].startswith(b"MSH"):
            raise AdapterInputError(Rejection(ctx.source, "", "MSH", "not HL7 v2: input does not start with MSH"))
        if len(texts) > MAX_MESSAGES:
            raise AdapterInputError(Rejection(ctx.source, "", "", f"more than {MAX_MESSAGES} messages"))
        out = AdapterOutput()
        lines: list[list[list[tuple[bytes, int]]]] = []  # the segments' input lines, read on the first rejection

        def line(message: int, field: str = "") -> int | None:
            if not lines:
                lines.append(segment_lines(data))
            return message_line(lines[0], message, field)

        out.locate = lambda record: line(int(record[8:])) if record[8:].isdigit() else None  # "message N"
        for n, text in enumerate(texts, start=1):
            try:
                msg = Message.parse(text)
                event = map_message(msg, ctx)
                if msg.guessed:  # known only once every field was read (a hex escape may need the guess too)
                    event["data_quality"].append(CHARSET_GUESSED)
                out.add([event], f"message {n}")
            except FieldProblem as p:
                out.rejections.append(Rejection(ctx.source, f"message {n}", p.field, p.reason, line(n, p.field)))
        return out


ADAPTER = Hl7v2Adapter()
