"""Whether a child has an open social care case, derived from the event stream (the protocol's `case_open`).

A referral, assessment, s47 enquiry, child protection plan or looked-after episode opens (or keeps open) a case;
a closure, or the end of a plan or episode with no other open work, closes it. Events about one child arrive in
order (the linkage token is the message key), so the register follows the child's history.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OPENING = {
    "social_care.referral", "social_care.assessment", "social_care.section47_enquiry",
    "social_care.child_protection_plan_started", "social_care.child_protection_plan_reviewed",
    "social_care.looked_after_episode_started", "social_care.missing_from_care",
}
CLOSING = {"social_care.case_closed"}


def case_transition(event: Mapping[str, Any]) -> bool | None:
    """True: this event shows an open case; False: it closes the case; None: it says nothing about a case."""
    event_type = event.get("event_type")
    if event_type in CLOSING:
        return False
    if event_type == "social_care.referral" and event.get("payload", {}).get("referral_nfa") is True:
        return None  # no further action: the referral did not open a case
    if event_type in OPENING:
        return True
    return None
