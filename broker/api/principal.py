"""Who is calling: a role, and for intake and subscriber roles the agency or subscriber it acts for."""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("intake", "subscriber", "ig_auditor", "admin")
SCOPED = {"intake", "subscriber"}


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str  # an API key's id, or oidc:<client> for a token from the identity provider
    role: str
    scope: str | None

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.scope}" if self.scope else self.role
