"""Authentication with separate roles: agency intake, subscriber, IG auditor, admin.

Two kinds of bearer credential. The broker's own API keys: random 32-byte tokens of which only the SHA-256 is stored
(a fast hash is right for high-entropy keys), each with one role and, for intake and subscriber keys, one scope (the
agency or subscriber name it may act for). And, when an identity provider is configured, its signed access tokens,
whose roles claim grants the same roles (broker/api/oidc.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from broker.api.oidc import OidcVerifier, ProviderUnavailable, TokenRejected
from broker.api.principal import ROLES, SCOPED, Principal

__all__ = ["ROLES", "SCOPED", "ApiKeyStore", "Principal", "authenticated", "require"]

def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyStore:
    """Hashed keys in a JSON file (0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: dict[str, Principal] = {}
        self.reload()

    def reload(self) -> None:
        if not self.path.exists():
            self._keys = {}
            return
        rows = json.loads(self.path.read_text())["keys"]
        self._keys = {r["sha256"]: Principal(r["id"], r["role"], r.get("scope")) for r in rows}

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows = [{"id": p.key_id, "sha256": h, "role": p.role, "scope": p.scope} for h, p in self._keys.items()]
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"keys": rows}, f, indent=1)
        os.replace(tmp, self.path)

    def create(self, role: str, scope: str | None = None) -> tuple[str, Principal]:
        """A new key (returned once, never stored) and its principal."""
        if role not in ROLES:
            raise ValueError(f"unknown role (expected one of {', '.join(ROLES)})")
        if (role in SCOPED) != (scope is not None):
            raise ValueError(f"role {role} {'needs' if role in SCOPED else 'takes no'} scope")
        key = "mbk_" + secrets.token_urlsafe(32)
        principal = Principal("k_" + secrets.token_hex(6), role, scope)
        self._keys[_digest(key)] = principal
        self._save()
        return key, principal

    def revoke(self, key_id: str) -> bool:
        before = len(self._keys)
        self._keys = {h: p for h, p in self._keys.items() if p.key_id != key_id}
        self._save()
        return len(self._keys) < before

    def principals(self) -> list[Principal]:
        return list(self._keys.values())

    def authenticate(self, key: str) -> Principal | None:
        digest = _digest(key)
        for stored, principal in self._keys.items():  # constant-time compare over all keys
            if hmac.compare_digest(stored, digest):
                return principal
        return None


_bearer = HTTPBearer(auto_error=False, description="An API key (Authorization: Bearer mbk_...) or, with "
                     "MASH_OIDC_ISSUER set, an access token from that identity provider")
_UNAUTHORISED = {"WWW-Authenticate": "Bearer"}


# Async (no I/O for API keys): a sync dependency costs a thread-pool hop per request, 6% of intake's CPU under load.
async def authenticated(request: Request,
                        creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> tuple[Principal, ...]:
    """The roles the caller's credential grants (one for an API key; a token may carry several)."""
    if creds is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing API key or access token", headers=_UNAUTHORISED)
    token = creds.credentials
    verifier: OidcVerifier | None = getattr(request.app.state, "oidc", None)
    if verifier is not None and token.count(".") == 2:
        try:
            return await verifier.grants(token)
        except TokenRejected as exc:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"access token refused: {exc}",
                                headers=_UNAUTHORISED) from None
        except ProviderUnavailable as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), headers={"Retry-After": "30"}) from None
    store: ApiKeyStore = request.app.state.api_keys
    principal = store.authenticate(token)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or unknown API key", headers=_UNAUTHORISED)
    return (principal,)


def require(role: str, scope_param: str | None = None) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the caller has `role`, and for scoped roles acts for the path parameter `scope_param`."""

    async def check(request: Request, grants: tuple[Principal, ...] = Depends(authenticated)) -> Principal:
        held = [p for p in grants if p.role == role]
        if not held:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this endpoint needs the {role} role")
        if scope_param is None:
            return held[0]
        wanted = request.path_params.get(scope_param)
        for principal in held:
            if principal.scope == wanted:
                return principal
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this credential may not act for that {scope_param}")

    return check
