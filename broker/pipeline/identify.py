"""Cross-agency linkage: a keyed, versioned token per child, used as the Kafka message key.

The token is HMAC-SHA256 over the best normalised identifier the event carries: a valid NHS number, then a valid
UPN, then the local authority child id (scoped by the sending LA), then family name + first given name + date of
birth + postcode (a probable match), then the source's own local id. Agencies hold different identifiers, so the
intake shell then asks the identity register (broker/pipeline/resolve.py) whether another record already tied one
of the child's identifiers to a token. Rotating the key bumps `key_version`; tokens of different versions never
compare equal, so a rotation is a re-keying of every stream (see schemas/README.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from stdnum.exceptions import ValidationError
from stdnum.gb import nhs, upn


@dataclass(frozen=True, slots=True)
class LinkageKey:
    version: int
    secret: bytes

    def __repr__(self) -> str:  # never print the secret
        return f"LinkageKey(version={self.version})"


def _fold(text: str) -> str:
    """Case- and accent-insensitive, letters and digits only."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed.casefold() if c.isalnum())


class _Scheme(Protocol):
    """A python-stdnum number module (stdnum.gb.nhs, stdnum.gb.upn)."""

    def validate(self, number: str) -> str: ...


def _valid(scheme: _Scheme, value: str | None) -> str | None:
    """The compact form of a valid identifier, else None (one pass: stdnum's is_valid and compact each clean it)."""
    if not value:
        return None
    try:
        return scheme.validate(value)
    except ValidationError:
        return None


def identifiers(child: Mapping[str, Any], source: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Every deterministic identifier the child carries, strongest first: (basis, confidence, normalised identifier).

    Only these link records in the identity register; a probable match or a source's local id never does.
    """
    found = []
    number = _valid(nhs, child.get("nhs_number"))
    if number:
        confidence = "verified" if child.get("nhs_number_verification") == "verified" else "high"
        found.append(("nhs_number", confidence, f"nhs:{number}"))
    pupil = _valid(upn, child.get("upn"))
    if pupil:
        found.append(("upn", "high", f"upn:{pupil}"))
    if child.get("la_child_id"):
        found.append(("la_child_id", "high", f"la:{_fold(source['system'])}:{_fold(child['la_child_id'])}"))
    return found


def identifier_kind(identifier: str) -> str:
    """What a child has at most one of: 'nhs', 'upn', or 'la:<local authority>' (an LA child id is per LA)."""
    return identifier.rpartition(":")[0]


def _fallback_basis(child: Mapping[str, Any], source: Mapping[str, Any]) -> tuple[str, str, str]:
    """For a child with no deterministic identifier: a probable match, else the source's own local id."""
    postcode = next((a.get("postcode") for a in child.get("addresses", []) if a.get("postcode")), None)
    given = (child.get("given_names") or [None])[0]
    if child.get("family_name") and given and child.get("date_of_birth") and postcode:
        key = "|".join((_fold(child["family_name"]), _fold(given), child["date_of_birth"], _fold(postcode)))
        return "name_dob_postcode", "probable", f"pm:{key}"
    local = (child.get("local_ids") or [None])[0]
    if local:
        return "source_local_id", "low", f"local:{source['agency']}:{_fold(local['system'])}:{local['value']}"
    return "source_local_id", "low", f"record:{source['agency']}:{source['system']}:{source['record_id']}"


def probable_identifier(child: Mapping[str, Any]) -> str | None:
    """The probable-match identifier (family name, first given name, date of birth, postcode: all four), as the
    fallback keys it; None without all four. For looking a child up (broker/pipeline/find_child.py)."""
    basis, _, identifier = _fallback_basis(child, {"agency": "", "system": "", "record_id": ""})
    return identifier if basis == "name_dob_postcode" else None


def token_for(identifier: str, key: LinkageKey) -> str:
    digest = hmac.new(key.secret, identifier.encode(), hashlib.sha256).digest()
    return f"lt{key.version}_" + base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class Identity:
    """One deterministic identifier of a child, as the identity register sees it: no identifier, only its token."""

    kind: str  # what a child has one of: 'nhs', 'upn', 'la:<local authority>'
    token: str  # the identifier's own token


def link_identified(event: dict[str, Any], key: LinkageKey) -> tuple[dict[str, Any], list[Identity]]:
    """The event with `subject.linkage` set (a new dict; the input is not changed), and its child's deterministic
    identities, strongest first, for the identity register."""
    child, source = event["subject"]["child"], event["source"]
    found = identifiers(child, source)
    ids = [Identity(identifier_kind(identifier), token_for(identifier, key)) for _, _, identifier in found]
    basis, confidence, identifier = found[0] if found else _fallback_basis(child, source)
    linkage = {"token": ids[0].token if ids else token_for(identifier, key), "key_version": key.version,
               "basis": basis, "confidence": confidence}
    return {**event, "subject": {**event["subject"], "linkage": linkage}}, ids


def link(event: dict[str, Any], key: LinkageKey) -> dict[str, Any]:
    return link_identified(event, key)[0]


def complete_identified(event: dict[str, Any], key: LinkageKey,
                        recorded_at: str) -> tuple[dict[str, Any], list[Identity]]:
    """Adapter output -> a full canonical event (linkage token and receipt time added), and its child's identities."""
    linked, ids = link_identified(event, key)
    return {**linked, "recorded_at": recorded_at}, ids


def complete(event: dict[str, Any], key: LinkageKey, recorded_at: str) -> dict[str, Any]:
    """Adapter output -> a full canonical event: linkage token and receipt time added."""
    return complete_identified(event, key, recorded_at)[0]
