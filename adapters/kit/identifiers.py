"""Identifier checks. An invalid identifier is kept and flagged as a warning; the record still flows."""

from __future__ import annotations

import re
from functools import lru_cache
from types import ModuleType

from stdnum.exceptions import ValidationError
from stdnum.gb import nhs, upn

from adapters.kit.events import warning

Warning = dict[str, str]

_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})$")


@lru_cache(maxsize=4096)
def _compact_and_valid(scheme: ModuleType, value: str) -> tuple[str, bool]:
    """python-stdnum's compact form and check, memoised: the same identifiers recur across a file's records."""
    compact = scheme.compact(value)
    try:
        scheme.validate(compact)
    except ValidationError:
        return compact, False
    return compact, True


def _checked(scheme: ModuleType, value: str, field: str, code: str, message: str) -> tuple[str, list[Warning]]:
    """The compact form (python-stdnum) and, if the scheme's check fails, one warning; never a rejection."""
    compact, valid = _compact_and_valid(scheme, value)
    return compact, [] if valid else [warning(code, field, message)]


def check_nhs_number(value: str, field: str) -> tuple[str, list[Warning]]:
    """Compact form (10 digits) and a warning if the Modulus 11 check fails."""
    return _checked(nhs, value, field, "identifier.nhs_number_invalid", "NHS number fails the Modulus 11 check")


def check_upn(value: str, field: str) -> tuple[str, list[Warning]]:
    """Upper-case UPN and a warning if its check letter or format is wrong."""
    return _checked(upn, value, field, "identifier.upn_invalid", "UPN fails its check letter or format rule")


def normalise_postcode(value: str, field: str) -> tuple[str, list[Warning]]:
    """'ls177df' -> 'LS17 7DF'; an unrecognised shape is kept as given (upper-cased) with a warning."""
    compact = re.sub(r"\s+", "", value).upper()
    m = _POSTCODE.match(compact)
    if not m:
        return value.strip().upper(), [warning("identifier.postcode_invalid", field, "not a UK postcode shape")]
    return f"{m.group(1)} {m.group(2)}", []


def postcode_district(postcode: str) -> str:
    """Outward code: 'LS17 7DF' -> 'LS17'."""
    return postcode.split(" ")[0] if " " in postcode else postcode[:-3]
