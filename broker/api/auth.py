"""Authentication with separate roles: agency intake, subscriber, IG auditor, admin.

Two kinds of bearer credential. The broker's own API keys: random 32-byte tokens of which only the SHA-256 is stored
(a fast hash is right for high-entropy keys), each with one role and, for intake and subscriber keys, one scope (the
agency or subscriber name it may act for). And, when an identity provider is configured, its signed access tokens,
whose roles claim grants the same roles (broker/api/oidc.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from broker.access.apikeys import RECHECK_S, ApiKeyStore, scope_problem
from broker.access.principal import ROLES, SCOPED, Principal
from broker.api.oidc import OidcVerifier, ProviderUnavailable, TokenRejected

# ApiKeyStore, Principal and the roles live below the service layer (broker/access/); re-exported for callers.
__all__ = ["RECHECK_S", "ROLES", "SCOPED", "ApiKeyStore", "Principal", "authenticated", "require", "scope_problem"]


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
