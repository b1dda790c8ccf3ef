"""Find a child for IG (pure): from what an IG officer knows (an NHS number, a UPN, an LA child id, or family name,
first given name, date of birth and postcode) to the identifiers the pipeline keys children by, built by the very
functions intake uses (broker/pipeline/identify.py), so a lookup finds exactly the tokens the events carry.

What the data supports, and no more:
- NHS number and UPN are checked (check digit) and keyed as intake keys them;
- an LA child id is one local authority's own number, so intake scopes it by the sending system's code: the lookup
  needs that code too (`la_system`, the LA's code as it sends it);
- the pipeline never keys on name and birth date alone. Its only name key is the probable match of family name,
  first given name, date of birth and postcode together, used as an event's token only when the child had no NHS
  number, UPN or LA id, and never linked in the identity register. So a name lookup needs all four and finds only the
  events keyed that way; the answer says so.

Every problem names the field and the reason, never the value: a lookup's input is a child's identifier.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.errors import InputRejected
from broker.pipeline.identify import LinkageKey, identifiers, probable_identifier, token_for

# Why an IG officer looks a child up: a code from a fixed list (as access-to-record systems ask), so the audit log
# records the purpose without free text that could carry a name.
REASONS: dict[str, str] = {
    "subject_access_request": "a subject access request (UK GDPR Art 15)",
    "rectification_or_erasure": "a request to rectify, erase or restrict (UK GDPR Art 16-18)",
    "complaint": "a complaint about the sharing",
    "disclosure_request": "a request for disclosure from a third party (DPA 2018 Sch 2)",
    "safeguarding_review": "a safeguarding practice review or case audit",
    "breach_investigation": "a personal data breach investigation (UK GDPR Art 33)",
    "ig_audit": "an information governance audit of the sharing",
}
FIND_ACTION = "ig.find_child"  # the admin_action that records a lookup
REFERENCE = re.compile(r"^(?![\s\S]*[0-9]{10})[A-Za-z0-9][A-Za-z0-9/_.-]{0,39}$")  # a request or ticket reference
NAME_NOTE = ("found by the probable-match key (family name, first given name, date of birth, postcode): the "
             "pipeline uses it only for a child with no NHS number, UPN or LA child id, and never links it to "
             "other records; look up by NHS number, UPN or LA child id to find every record")


class ChildQueryRejected(InputRejected, ValueError):
    """A lookup that cannot be made: names the fields and why, never a value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True, slots=True)
class ChildQuery:
    reason: str
    reference: str | None = None
    nhs_number: str | None = None
    upn: str | None = None
    la_child_id: str | None = None
    la_system: str | None = None  # the LA's system code as it sends (intake scopes its child ids by it)
    family_name: str | None = None
    given_name: str | None = None
    birth_date: str | None = None
    postcode: str | None = None

    def __repr__(self) -> str:  # never print an identifier
        given = [f for f in ("nhs_number", "upn", "la_child_id", "family_name") if getattr(self, f)]
        return f"ChildQuery(reason={self.reason!r}, given={'+'.join(given)})"


@dataclass(frozen=True, slots=True)
class Lookup:
    bases: tuple[str, ...]  # nhs_number, upn, la_child_id, name_dob_postcode: what the tokens were computed from
    tokens: tuple[str, ...]  # one per basis, as intake would key it
    note: str | None = None  # what the answer cannot cover, in words


def _clean(value: str | None) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def lookup_identifiers(q: ChildQuery, *, strict: bool = True) -> list[tuple[str, str]]:
    """(basis, normalised identifier) for each identifier given, by intake's own normalisation. `strict`: raise
    ChildQueryRejected (field and reason) on one that is not valid or not complete."""
    problems: list[str] = []
    child: dict[str, object] = {}
    if nhs := _clean(q.nhs_number):
        child["nhs_number"] = nhs
    if upn := _clean(q.upn):
        child["upn"] = upn
    la_id, la_system = _clean(q.la_child_id), _clean(q.la_system)
    if la_id and not la_system:
        problems.append("la_system: required with la_child_id (an LA child id is scoped by its local authority's "
                        "system code)")
    elif la_id:
        child["la_child_id"] = la_id
    found = [(basis, identifier) for basis, _, identifier in identifiers(child, {"system": la_system or ""})]
    got = {b for b, _ in found}
    if nhs and "nhs_number" not in got:
        problems.append("nhs_number: not a valid NHS number (10 digits with a check digit)")
    if upn and "upn" not in got:
        problems.append("upn: not a valid unique pupil number")
    name = [_clean(v) for v in (q.family_name, q.given_name, q.birth_date, q.postcode)]
    if any(name):
        family, given, born, postcode = name
        try:
            born = dt.date.fromisoformat(born).isoformat() if born else None
        except ValueError:
            problems.append("birth_date: not an ISO date (YYYY-MM-DD)")
            born = None
        missing = [f for f, v in zip(("family_name", "given_name", "birth_date", "postcode"),
                                     (family, given, born, postcode), strict=True) if not v]
        if missing and not problems:
            problems.append(f"{', '.join(missing)}: required for a lookup by name (the pipeline never keys on name "
                            "and birth date alone, only on family name, first given name, date of birth and postcode "
                            "together)")
        elif not missing:
            identifier = probable_identifier({"family_name": family, "given_names": [given], "date_of_birth": born,
                                              "addresses": [{"postcode": postcode}]})
            if identifier:
                found.append(("name_dob_postcode", identifier))
    if not found and not problems:
        problems.append("give nhs_number, upn, la_child_id with la_system, or family_name, given_name, birth_date "
                        "and postcode")
    if strict:
        if q.reason not in REASONS:
            problems.append(f"reason: required, one of {', '.join(REASONS)}")
        if q.reference is not None and not REFERENCE.match(q.reference):
            problems.append("reference: not a request reference (letters, digits, / _ . -, up to 40, no 10-digit "
                            "run)")
        if problems:
            raise ChildQueryRejected(problems)
    return found


def lookup(q: ChildQuery, key: LinkageKey) -> Lookup:
    """The tokens intake would give the child for what the query carries (ChildQueryRejected when it cannot)."""
    found = lookup_identifiers(q)
    bases = tuple(b for b, _ in found)
    note = NAME_NOTE if bases == ("name_dob_postcode",) else None
    return Lookup(bases, tuple(token_for(identifier, key) for _, identifier in found), note)


def reason_text(q: ChildQuery) -> str:
    """The audit record's reason: the purpose in words with its code, and the request reference (value-free)."""
    return f"{REASONS[q.reason]} (reason {q.reason})" + (f"; reference {q.reference}" if q.reference else "")


def found_child(aliases_of: Mapping[str, list[str]],
                has_records: Callable[[str], bool] = lambda token: True) -> tuple[str, list[str]]:
    """From each computed token's aliases in the identity register (its child's current token first): the child's
    current token and every token it carried. A token the register ties to nothing else and under which nothing is
    recorded is an identifier the broker never saw: it does not split the answer. Identifiers that name different
    children are a conflict the register refused to link, not for a lookup to resolve: ChildQueryRejected."""
    seen = {t: a for t, a in aliases_of.items() if a and (len(a) > 1 or has_records(a[0]))} or dict(aliases_of)
    currents = list(dict.fromkeys(aliases[0] for aliases in seen.values() if aliases))
    if len(currents) != 1:
        raise ChildQueryRejected(["the identifiers given belong to different children in the identity register: "
                                  "look up by one of them at a time"])
    return currents[0], list(dict.fromkeys(t for aliases in seen.values() for t in aliases))


@dataclass(frozen=True, slots=True)
class FoundChild:
    subject: str  # the child's current token
    tokens: tuple[str, ...]  # every token the child carried (the identity register's), the current first
    with_records: tuple[str, ...]  # those under which the audit log holds something
    lookup: Lookup

    def answer(self) -> dict[str, object]:
        """The lookup's answer: tokens and kinds of identifier, never an identifier."""
        return {"subject": self.subject, "tokens": list(self.tokens), "matched_by": list(self.lookup.bases),
                "recorded": bool(self.with_records), "tokens_with_records": list(self.with_records),
                "note": self.lookup.note}


def find_child(q: ChildQuery, key: LinkageKey, aliases: Callable[[str], list[str]],
               has_records: Callable[[str], bool]) -> FoundChild:
    """The lookup end to end, over the identity register (`aliases`) and the audit log (`has_records`) given."""
    found = lookup(q, key)
    subject, tokens = found_child({t: aliases(t) for t in found.tokens}, has_records)
    return FoundChild(subject, tuple(tokens), tuple(t for t in tokens if has_records(t)), found)


def lookup_record(q: ChildQuery, found: FoundChild) -> dict[str, Any]:
    """The fields of the admin_action that records the lookup as an IG read (the caller adds the actor)."""
    return {"action": FIND_ACTION, "target": "by:" + ".".join(found.lookup.bases), "subject": found.subject,
            "count": len(found.tokens), "reason": reason_text(q)}
