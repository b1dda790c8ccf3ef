"""The protocol's `partners[].disclosure_digest` setting: who receives a partner's disclosure digest, and the compile
check that someone does (the digest itself: broker/audit/digest.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# The partner's IG lead receives the digest; a partner without one, its data protection officer.
DIGEST_ROLES = ("ig_lead", "dpo")


def digest_contact(roles: Iterable[Mapping[str, Any]], partner: str) -> Mapping[str, Any] | None:
    """The governance.roles entry that receives `partner`'s digest, or None."""
    mine = [r for r in roles if r.get("partner") == partner]
    for role in DIGEST_ROLES:
        for r in mine:
            if r.get("role") == role:
                return r
    return None


def digest_problems(data: Mapping[str, Any]) -> list[tuple[list[str | int], str]]:
    """A partner asking for a digest that nobody would receive."""
    roles = (data.get("governance") or {}).get("roles") or ()
    return [(["partners", i, "disclosure_digest"],
             f"the partner names no {' or '.join(DIGEST_ROLES)} in governance.roles: nobody would receive the "
             "disclosure digest")
            for i, p in enumerate(data["partners"])
            if p.get("disclosure_digest") and not digest_contact(roles, p["id"])]
