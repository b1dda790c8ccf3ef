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
from typing import Any

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


def identifiers(child: Mapping[str, Any], source: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Every deterministic identifier the child carries, strongest first: (basis, confidence, normalised identifier).

    Only these link records in the identity register; a probable match or a source's local id never does.
    """
    found = []
    number = child.get("nhs_number")
    if number and nhs.is_valid(number):
        confidence = "verified" if child.get("nhs_number_verification") == "verified" else "high"
        found.append(("nhs_number", confidence, f"nhs:{nhs.compact(number)}"))
    pupil = child.get("upn")
    if pupil and upn.is_valid(pupil):
        found.append(("upn", "high", f"upn:{upn.compact(pupil)}"))
    if child.get("la_child_id"):
        found.append(("la_child_id", "high", f"la:{_fold(source['system'])}:{_fold(child['la_child_id'])}"))
    return found


def identifier_kind(identifier: str) -> str:
    """What a child has at most one of: 'nhs', 'upn', or 'la:<local authority>' (an LA child id is per LA)."""
    return identifier.rpartition(":")[0]


def linkage_basis(event: Mapping[str, Any]) -> tuple[str, str, str]:
    """(basis, confidence, normalised identifier) for the event's child."""
    child = event["subject"]["child"]
    source = event["source"]
    found = identifiers(child, source)
    if found:
        return found[0]
    postcode = next((a.get("postcode") for a in child.get("addresses", []) if a.get("postcode")), None)
    given = (child.get("given_names") or [None])[0]
    if child.get("family_name") and given and child.get("date_of_birth") and postcode:
        key = "|".join((_fold(child["family_name"]), _fold(given), child["date_of_birth"], _fold(postcode)))
        return "name_dob_postcode", "probable", f"pm:{key}"
    local = (child.get("local_ids") or [None])[0]
    if local:
        return "source_local_id", "low", f"local:{source['agency']}:{_fold(local['system'])}:{local['value']}"
    return "source_local_id", "low", f"record:{source['agency']}:{source['system']}:{source['record_id']}"


def token_for(identifier: str, key: LinkageKey) -> str:
    digest = hmac.new(key.secret, identifier.encode(), hashlib.sha256).digest()
    return f"lt{key.version}_" + base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def link(event: dict[str, Any], key: LinkageKey) -> dict[str, Any]:
    """The event with `subject.linkage` set (a new dict; the input is not changed)."""
    basis, confidence, identifier = linkage_basis(event)
    linkage = {"token": token_for(identifier, key), "key_version": key.version, "basis": basis,
               "confidence": confidence}
    return {**event, "subject": {**event["subject"], "linkage": linkage}}


def complete(event: dict[str, Any], key: LinkageKey, recorded_at: str) -> dict[str, Any]:
    """Adapter output -> a full canonical event: linkage token and receipt time added."""
    return {**link(event, key), "recorded_at": recorded_at}
