"""The six masks. Pure functions of a value; a mask that does not fit its value (year_only on a name) redacts it,
so a misapplied mask can only ever show less."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
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


def apply_mask(kind: str, value: Any, *, key: bytes, subscriber: str, event_date: str | None) -> Any:
    match kind:
        case "redact":
            return redact(value)
        case "partial":
            return partial(value)
        case "keyed_hash":
            return keyed_hash(value, key=key, subscriber=subscriber)
        case "year_only":
            return year_only(value)
        case "age_band":
            return age_band(value, on=event_date)
        case "postcode_district":
            return postcode_district(value)
    raise PolicyError(f"unknown mask kind {kind}")
