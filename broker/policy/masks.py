"""The masks: pure functions of a value, and MASKS, the one registry of mask kinds. A mask that does not fit its
value (year_only on a name) redacts it, so a misapplied mask can only ever show less.

A new mask kind is one entry in MASKS and one function here; the protocol schema's `mask_kind` enum, the table in
broker/policy/README.md and the tests are checked against MASKS (tests/policy/test_mask_registry.py), so a copy that
drifts fails the tests. The README's "Adding a mask kind" names every file to touch.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from broker.policy.errors import PolicyError

REDACTED = "[redacted]"
_DATE = re.compile(r"^([0-9]{4})-[0-9]{2}(-[0-9]{2})?")
_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)(\s*[0-9][A-Z]{2})?$")
AGE_BANDS = ((1, "under 1"), (5, "1-4"), (10, "5-9"), (16, "10-15"), (18, "16-17"))


def redact(value: Any) -> str:
    return REDACTED


def partial(value: Any) -> str:
    """Identifiers keep their last 4 characters; words keep their first letter. Never more than half the value."""
    if not isinstance(value, str) or not value.strip():
        return REDACTED
    text = value.strip()
    if any(c.isdigit() for c in text):
        keep = min(4, len(text) // 2)
        return "*" * (len(text) - keep) + text[len(text) - keep:]
    return text[0] + "***"


def keyed_hash(value: Any, *, key: bytes, subscriber: str) -> str:
    """HMAC-SHA256 under the mask key, scoped to the subscriber so two subscribers' masked ids never join."""
    if not key:
        raise PolicyError("keyed_hash mask needs the mask key; refusing to release without it")
    message = b"mask-v1\x1f" + subscriber.encode() + b"\x1f" + str(value).strip().encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return "kh1_" + base64.urlsafe_b64encode(digest[:24]).decode()


def year_only(value: Any) -> str:
    match = _DATE.match(value) if isinstance(value, str) else None
    return match.group(1) if match else REDACTED


def age_band(value: Any, *, on: str | None) -> str:
    """Age band of a date of birth on the event date."""
    try:
        born = date.fromisoformat(str(value)[:10])
        day = date.fromisoformat(str(on)[:10])
    except ValueError:
        return REDACTED
    if born > day:
        return "unborn"
    age = day.year - born.year - ((day.month, day.day) < (born.month, born.day))
    return next((band for limit, band in AGE_BANDS if age < limit), "18+")


def postcode_district(value: Any) -> str:
    match = _POSTCODE.match(value.strip().upper()) if isinstance(value, str) else None
    return match.group(1) if match else REDACTED


@dataclass(frozen=True, slots=True)
class MaskInputs:
    """What a mask may use besides the value: the mask key, the subscriber it releases to, the event's date."""

    key: bytes
    subscriber: str
    event_date: str | None


@dataclass(frozen=True, slots=True)
class Mask:
    apply: Callable[[Any, MaskInputs], Any]
    effect: str  # one line, for `mash-broker policy` output and MASK_KINDS


# The one list of mask kinds, in the order the README's table and the protocol schema's enum give them.
MASKS: dict[str, Mask] = {
    "redact": Mask(lambda v, _: redact(v),
                   "replaced by the marker '[redacted]': the subscriber learns only that the field is present"),
    "partial": Mask(lambda v, _: partial(v),
                    "values with digits keep their last 4 characters, others their first letter; the rest is starred"),
    "keyed_hash": Mask(lambda v, m: keyed_hash(v, key=m.key, subscriber=m.subscriber),
                       "HMAC-SHA256 under the broker's mask key, per subscriber:"
                       " stable for one subscriber, unlinkable across subscribers"),
    "year_only": Mask(lambda v, _: year_only(v), "a date keeps its year only"),
    "age_band": Mask(lambda v, m: age_band(v, on=m.event_date),
                     "a date of birth becomes the age band on the event date"
                     " (unborn, under 1, 1-4, 5-9, 10-15, 16-17, 18+)"),
    "postcode_district": Mask(lambda v, _: postcode_district(v),
                              "a UK postcode keeps its outward code (district), e.g. 'LS17'"),
}
MASK_KINDS: dict[str, str] = {kind: mask.effect for kind, mask in MASKS.items()}


def apply_mask(kind: str, value: Any, *, key: bytes, subscriber: str, event_date: str | None) -> Any:
    mask = MASKS.get(kind)
    if mask is None:
        raise PolicyError(f"unknown mask kind {kind}")
    return mask.apply(value, MaskInputs(key, subscriber, event_date))
