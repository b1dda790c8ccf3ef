"""A pupil and the pupil's contacts, from CTF/CME <Pupil> or School Census <PupilIdentifiers>, as canonical persons."""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Any

from adapters.education.codes import RELATIONSHIP_ROLE, SEX
from adapters.education.reading import Element, Reader, children, find, find_all, value
from adapters.kit.events import prune
from adapters.kit.identifiers import check_upn, normalise_postcode
from adapters.kit.interface import FieldProblem

# Where identity elements sit: directly under <Pupil> (CTF, CME), under <BasicDetails> (some CTF writers),
# or under <PupilIdentifiers> (School Census).
HOLDERS = ("", "BasicDetails", "PupilIdentifiers")
MAX_CONTACTS = 50
MAX_LIST = 10


def _paths(name: str, holders: tuple[str, ...] = HOLDERS) -> tuple[str, ...]:
    return tuple(f"{h}/{name}" if h else name for h in holders)


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text).casefold() if c.isalnum())


def _capped(r: Reader, items: list[Any], where: str, what: str, limit: int = MAX_LIST) -> list[Any]:
    if len(items) > limit:
        r.warn("list.truncated", where, f"more than {limit} {what}; the first {limit} kept")
    return items[:limit]


def _upn(r: Reader) -> str | None:
    node = find(r.record, *_paths("UPN"))
    text = value(node)
    if text is None or node is None:  # node is None only when text is: for the type checker
        return None
    if len(text) > 20:
        raise FieldProblem(r.field(node), "longer than 20 characters")
    compact, warnings = check_upn(text, r.field(node))
    r.warnings.extend(warnings)
    return compact


def _former_upns(r: Reader) -> list[str]:
    out = []
    for holder in HOLDERS:
        base = find(r.record, holder) if holder else r.record
        for node in children(base, "FormerUPN"):
            text = value(node)
            if text is None:
                continue
            if len(text) > 20:
                r.warn("identifier.upn_invalid", node, "former UPN longer than 20 characters; left out")
                continue
            compact, warnings = check_upn(text, r.field(node))
            r.warnings.extend(warnings)
            out.append(compact)
    return _capped(r, out, "FormerUPN", "former UPNs")


def _sex(r: Reader) -> str | None:
    node = find(r.record, *_paths("Sex"), *_paths("Gender"))
    code = value(node)
    if code is None or node is None:  # node is None only when code is: for the type checker
        return None
    if code.upper() not in SEX:
        r.warn("code.unknown", node, "not a DfE sex code; left out")
        return None
    return SEX[code.upper()]


def _first_language(r: Reader) -> str | None:
    for kind in find_all(r.record, "BasicDetails/Languages/Type"):
        if (value(find(kind, "LanguageType")) or "").upper() == "F":
            return r.text("Language", within=kind)
    return r.text("BasicDetails/FirstLanguage", "FirstLanguage")


def address(r: Reader, el: Element | None, use: str) -> dict[str, Any]:
    """CTF <Address>: BS7666Address (SAON, PAON, Street, Locality, Town, AdministrativeArea, PostTown) and/or
    AddressLines (AddressLine1..5), with PostCode. {} when nothing is there."""
    if el is None:
        return {}
    lines: list[str] = []
    bs = find(el, "BS7666Address")
    if bs is not None:
        paon_street = " ".join(t for t in (r.text("PAON", within=bs, max_len=100),
                                            r.text("Street", within=bs, max_len=100)) if t)
        lines += [t for t in (r.text("SAON", within=bs, max_len=200), paon_street,
                              r.text("Locality", within=bs, max_len=200)) if t]
    lines += [t for n in range(1, 6) if (t := r.text(f"AddressLines/AddressLine{n}", within=el, max_len=200))]
    postcode = None
    node = find(el, "PostCode", "Postcode", "BS7666Address/PostCode")
    raw = value(node)
    if raw is not None and node is not None:
        postcode, warnings = normalise_postcode(raw, r.field(node))
        r.warnings.extend(warnings)
        if len(postcode) > 10:
            postcode = None  # already flagged as not a UK postcode shape
    city = (r.text("Town", "PostTown", within=bs) if bs is not None else None) or r.text("Town", within=el)
    district = r.text("AdministrativeArea", within=bs) if bs is not None else None
    found = prune({"lines": _capped(r, lines, r.field(el), "address lines", 6), "city": city,
                   "district": district, "postcode": postcode})
    return {**found, "use": use} if found else {}


def phones(r: Reader, el: Element) -> list[str]:
    numbers = [t for p in find_all(el, "Phones/Phone") if (t := r.text("PhoneNo", within=p, max_len=40))]
    return _capped(r, numbers, r.field(el), "phone numbers")


def emails(r: Reader, el: Element) -> list[str]:
    found = [v for node in children(el, "Email") if (v := value(node))]
    kept = [e for e in found if len(e) <= 200]
    if len(kept) < len(found):
        r.warn("email.invalid", r.field(el), "email address longer than 200 characters; left out")
    return _capped(r, kept, r.field(el), "email addresses")


def pupil(r: Reader) -> dict[str, Any]:
    """The pupil as the canonical child (without school). FieldProblem when the pupil cannot be identified."""
    upn = _upn(r)
    family = r.text(*_paths("Surname"), *_paths("LegalSurname"))
    forename = r.text(*_paths("Forename"), *_paths("LegalForename"))
    middle = r.text(*_paths("MiddleNames"), max_len=200)
    if not upn and not (family and forename):
        raise FieldProblem("UPN", "missing, and no surname and forename either: the pupil cannot be identified")
    given = [forename] if forename else []
    given += [m for m in (middle or "").split() if len(m) <= 100]
    child = {
        "upn": upn,
        "former_upns": _former_upns(r),
        "family_name": family,
        "given_names": _capped(r, given, "Forename", "given names"),
        "date_of_birth": r.date(*_paths("DOB"), strict=True),
        "sex": _sex(r),
        "ethnicity": r.text("BasicDetails/Ethnicity", "Ethnicity"),
        "language": _first_language(r),
        "addresses": [a for a in [address(r, find(r.record, "Address"), "home")] if a],
        "phones": phones(r, r.record),
        "emails": emails(r, r.record),
    }
    if not child["date_of_birth"]:
        r.warn("pupil.dob_missing", "DOB", "date of birth missing")
    return child


def pupil_key(child: dict[str, Any]) -> str:
    """Position-independent, not itself readable: a hash of the UPN, else of surname, forename and date of birth."""
    if child.get("upn"):
        basis = "upn\x1f" + child["upn"]
    else:
        given = (child.get("given_names") or [""])[0]
        basis = "\x1f".join(("name", _fold(child.get("family_name") or ""), _fold(given),
                             child.get("date_of_birth") or ""))
    return hashlib.sha256(basis.encode()).hexdigest()[:24]


def _contact(r: Reader, el: Element, pupil_addresses: list[dict[str, Any]]) -> dict[str, Any] | None:
    code = r.text("Relationship", within=el)
    role = RELATIONSHIP_ROLE.get((code or "").upper())
    if code and role is None and (where := find(el, "Relationship")) is not None:  # found: it gave `code`
        r.warn("code.unknown", where, "relationship code not on the DfE list; role 'other'")
    given = r.text("Forename", within=el)
    sex_code = (value(find(el, "Gender")) or value(find(el, "Sex")) or "").upper()
    own = address(r, find(el, "Address"), "home")
    same = r.flag("AddressAsPupil", within=el)
    person = prune({
        "family_name": r.text("Surname", within=el),
        "given_names": [given] if given else [],
        "sex": SEX.get(sex_code),
        "addresses": [own] if own else (list(pupil_addresses) if same else []),
        "phones": phones(r, el),
        "emails": emails(r, el),
    })
    if not person:
        r.warn("contact.empty", el, "contact has no name or contact details; left out")
        return None
    responsibility = r.flag("Responsibility", within=el)
    return {"role": role or "other", "relationship": code, "parental_responsibility": responsibility, "person": person}


def contacts(r: Reader, pupil_addresses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Contacts/Contact in <Order>, as related people."""
    found = find_all(r.record, "Contacts/Contact")
    if len(found) > MAX_CONTACTS:
        raise FieldProblem("Contacts", f"more than {MAX_CONTACTS} contacts")

    def order(el: Element) -> int:
        text = value(find(el, "Order")) or ""
        return int(text) if text.isascii() and text.isdigit() and len(text) < 6 else MAX_CONTACTS + 1

    ranked = sorted(found, key=order)  # stable: ties keep document order
    return [c for el in ranked if (c := _contact(r, el, pupil_addresses)) is not None]
