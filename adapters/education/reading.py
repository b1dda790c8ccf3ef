"""Reading one record element of a DfE XML file: values by relative path, with errors that name the path.

DfE files (CTF, CME, School Census) carry no namespace and keep one value per leaf element, so a record is read
by short relative paths such as "BasicDetails/DOB". Every problem names the element path inside the record and
never the value. `Reader` collects data-quality warnings for the record as it goes.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from functools import cache
from zoneinfo import ZoneInfo

from lxml import etree

from adapters.kit.dates import parse_date
from adapters.kit.events import warning
from adapters.kit.interface import FieldProblem
from adapters.kit.xml import element_path, local_children

LONDON = ZoneInfo("Europe/London")  # a DfE DateTime carries no offset: it is the sender's local time, England
MAX_WARNINGS = 100  # the schema's data_quality maxItems
_TRUE, _FALSE = {"true", "1", "y", "yes"}, {"false", "0", "n", "no"}
_INTEGER = re.compile(r"^[0-9]{1,9}$")
_DATETIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2}$")

Element = etree._Element
Warning = dict[str, str]


def children(el: Element | None, name: str) -> list[Element]:
    """Child elements with this local name, in document order."""
    return local_children(el, name)


@cache
def _steps(path: str) -> tuple[str, ...]:
    """'A/B' -> the lxml child filters for each step: ('{*}A', '{*}B'). Paths are the adapters' own constants."""
    return tuple("{*}" + step if step else "" for step in path.split("/"))


def find(el: Element | None, *paths: str) -> Element | None:
    """The first element reached by any of the relative paths ("A/B/C": first match at each step)."""
    if el is None:
        return None
    for path in paths:
        node: Element | None = el
        for step in _steps(path):
            # an empty step names no element (node is never None here: the loop breaks first)
            node = next(node.iterchildren(step), None) if step and node is not None else None
            if node is None:
                break
        if node is not None:
            return node
    return None


def find_all(el: Element | None, path: str) -> list[Element]:
    """Every element at a relative path: find_all(pupil, "Contacts/Contact")."""
    *parents, last = path.split("/")
    holder = find(el, "/".join(parents)) if parents else el
    return children(holder, last)


def value(el: Element | None) -> str | None:
    """Stripped text of a leaf, None when absent or blank."""
    if el is None:
        return None
    text = (el.text or "").strip()
    return text or None


def position(el: Element) -> str:
    """Where a record sits in its file, without the root: CTFpupilData/Pupil[3]."""
    return element_path(el).split("/", 1)[-1]


def local_datetime(text: str, field: str) -> str:
    """ISO 8601 date-time with offset; a DateTime without one is England local time."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise FieldProblem(field, "not a valid date-time (YYYY-MM-DDThh:mm:ss)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=LONDON)
    try:
        text = moment.isoformat(timespec="seconds")
    except (ValueError, OverflowError):
        text = ""
    if not _DATETIME.match(text):  # e.g. year 1: London's offset then was local mean time, in seconds
        raise FieldProblem(field, "not a valid date-time (out of range)")
    return text


class Reader:
    """Values of one record element, with the record's data-quality warnings."""

    def __init__(self, record: Element) -> None:
        self.record = record
        self.warnings: list[Warning] = []

    def field(self, node: Element) -> str:
        """Path of `node` inside the record: Contacts/Contact[2]/Responsibility; the full path for the record itself
        or a node outside it. Counted from the record down, never from the root (a file may hold many records)."""
        if node is not self.record and any(a is self.record for a in node.iterancestors()):
            return element_path(node, self.record)
        return element_path(node)

    def warn(self, code: str, node: Element | str, message: str) -> None:
        where = node if isinstance(node, str) else self.field(node)
        if len(self.warnings) < MAX_WARNINGS - 1:
            self.warnings.append(warning(code, where, message))
        elif len(self.warnings) == MAX_WARNINGS - 1:
            self.warnings.append(warning("data_quality.truncated", "", "further warnings omitted"))

    def text(self, *paths: str, within: Element | None = None, max_len: int = 100) -> str | None:
        """The value at the first path present; FieldProblem when longer than the schema allows."""
        node = find(self.record if within is None else within, *paths)
        text = value(node)
        if text is not None and node is not None and len(text) > max_len:
            raise FieldProblem(self.field(node), f"longer than {max_len} characters")
        return text

    def date(self, *paths: str, within: Element | None = None, strict: bool = False) -> str | None:
        """ISO date. Malformed: FieldProblem when `strict`, else a warning and None (the detail is dropped)."""
        node = find(self.record if within is None else within, *paths)
        text = value(node)
        if text is None or node is None:  # node is None only when text is: for the type checker
            return None
        try:
            return parse_date(text, self.field(node))
        except FieldProblem:
            if strict:
                raise
            self.warn("date.invalid", node, "not a valid date (YYYY-MM-DD); left out")
            return None

    def count(self, *paths: str, within: Element | None = None) -> int | None:
        """A non-negative whole number, or None with a warning when it is not one."""
        node = find(self.record if within is None else within, *paths)
        text = value(node)
        if text is None or node is None:  # node is None only when text is: for the type checker
            return None
        if not _INTEGER.match(text):
            self.warn("number.invalid", node, "not a whole number of sessions; left out")
            return None
        return int(text)

    def decimal(self, *paths: str, within: Element | None = None) -> float | None:
        """A non-negative decimal, or None with a warning."""
        node = find(self.record if within is None else within, *paths)
        text = value(node)
        if text is None or node is None:  # node is None only when text is: for the type checker
            return None
        try:
            number = Decimal(text)
        except InvalidOperation:
            number = Decimal(-1)
        if not number.is_finite() or number < 0 or number > 10_000:
            self.warn("number.invalid", node, "not a number of sessions; left out")
            return None
        return int(number) if number == number.to_integral_value() else float(number)

    def flag(self, *paths: str, within: Element | None = None) -> bool | None:
        """xs:boolean (true/false/1/0; Y/N tolerated), or None with a warning."""
        node = find(self.record if within is None else within, *paths)
        text = value(node)
        if text is None or node is None:  # node is None only when text is: for the type checker
            return None
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        self.warn("boolean.invalid", node, "not true or false; left out")
        return None
