"""Reading the CIN census XML: namespace-free element access with structural checks, and the file's Header."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from lxml import etree

from adapters.kit.interface import FieldProblem
from adapters.kit.xml import element_path, local_children

Element = etree._Element
LEA_CODE = re.compile(r"^[0-9]{3}$")


def elements(parent: Element | None, name: str) -> list[Element]:
    """Child elements with this local name (CIN files carry no namespace, but a default one is tolerated)."""
    return local_children(parent, name)


def one(parent: Element | None, name: str, field: str | None = None) -> Element | None:
    """The single child element of this name, or None; more than one is a structural error for the record."""
    found = elements(parent, name)
    if len(found) > 1:
        raise FieldProblem(field or name, "appears more than once (the CIN schema allows one)")
    return found[0] if found else None


def text(parent: Element | None, name: str, field: str | None = None) -> str | None:
    """Stripped text of the single child element of this name; absent or empty -> None."""
    el = one(parent, name, field)
    if el is None:
        return None
    if len(el):
        raise FieldProblem(field or name, "has child elements where a value is expected")
    return (el.text or "").strip() or None


def relative_path(el: Element, base: Element) -> str:
    """Path of `el` below `base`, e.g. 'CINdetails[2]/Assessments'."""
    return element_path(el, base)


@dataclass(frozen=True, slots=True)
class CinHeader:
    year: int | None  # CollectionDetails/Year: the census year, e.g. 2025 for 1 April 2024 to 31 March 2025
    reference_date: str | None
    lea: str | None  # three-digit DfE local authority code of the (first) Source


def read_header(root: Element) -> CinHeader:
    """The Header, read tolerantly: it is optional in the schema and a bad value is simply not used."""
    headers = elements(root, "Header")
    header = headers[0] if headers else None
    details = next(iter(elements(header, "CollectionDetails")), None)
    sources = elements(header, "Source")
    year_text = _first_text(details, "Year")
    year = int(year_text) if year_text and re.fullmatch(r"[0-9]{4}", year_text) else None
    reference = _first_text(details, "ReferenceDate")
    try:
        reference = dt.date.fromisoformat(reference).isoformat() if reference else None
    except ValueError:
        reference = None
    lea = _first_text(sources[0], "LEA") if sources else None
    return CinHeader(year=year, reference_date=reference, lea=lea if lea and LEA_CODE.match(lea) else None)


def _first_text(parent: Element | None, name: str) -> str | None:
    found = elements(parent, name)
    return (found[0].text or "").strip() or None if found else None
