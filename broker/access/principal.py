"""Who is calling: a role, for intake and subscriber roles the agency or subscriber it acts for, and the credential.

`actor` is what the audit log records as who acted: the grant (role and scope) and the credential that used it, the
API key id (`admin:k_ab12cd34ef56`, `intake:health:k_...`) or the identity provider's subject
(`ig_auditor:oidc:<sub>`). A role alone cannot answer "who did this"; a key id or a subject can, through the key
list or the identity provider. The CLI acts as the operating-system account that ran it (`cli:uid1000`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass

# decision_maker: decides referrals (shares the law routes to a person) for one partner of the protocol, its scope:
# the hub partner, or an agency's DPO for its own data (broker/policy/referral.py says who may decide which).
# hub_decision: records the MASH hub's decisions (POST /v1/hub/decisions) for one hub subscriber, its scope.
# insight: the partnership board's /insight page (issue 17): disclosure-controlled measures only, never an exact
# count, a token or an event.
ROLES = ("intake", "subscriber", "ig_auditor", "admin", "decision_maker", "hub_decision", "insight")
SCOPED = {"intake", "subscriber", "decision_maker", "hub_decision"}

# A subject goes into the audit actor verbatim only when it is plainly an opaque id: the actor pattern's characters,
# short, and no run of 10 digits (the audit schema's guard against an NHS number). Anything else (an e-mail address,
# a UPN, a long or odd string) is replaced by a short keyed hash, stable for one key, so it still answers "the same
# caller?" without putting what may be personal data in the log.
_SAFE_SUBJECT = re.compile(r"^(?![\s\S]*[0-9]{10})[A-Za-z0-9_.-]{1,48}$")


def actor_safe_subject(subject: str, key: bytes) -> str:
    """`oidc:<sub>` for an opaque subject, `oidc-h:<16 hex of HMAC-SHA256(key, sub)>` otherwise."""
    if _SAFE_SUBJECT.match(subject):
        return f"oidc:{subject}"
    return "oidc-h:" + hmac.new(key, subject.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str  # an API key's id (k_...), or oidc:<sub> / oidc-h:<keyed hash of sub> for a provider's token
    role: str
    scope: str | None

    @property
    def grant(self) -> str:
        """The role and its scope: `intake:health`, `admin` (what a dev credentials file is keyed by)."""
        return f"{self.role}:{self.scope}" if self.scope else self.role

    @property
    def actor(self) -> str:
        """Who acted, for the audit log: the grant and the credential (see the module docstring)."""
        return f"{self.grant}:{self.key_id}"


def cli_actor() -> str:
    """The audit actor of a `mash-broker` command: the operating-system account that ran it, by uid (under sudo the
    invoking account's), never a login name, which may be a person's name."""
    uid = os.environ.get("SUDO_UID", "")
    return f"cli:uid{uid if uid.isdigit() else os.getuid()}"
