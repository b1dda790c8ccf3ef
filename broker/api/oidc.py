"""OAuth 2.0 / OpenID Connect bearer tokens (JWT access tokens) from the partnership's identity provider.

Agency systems and hub applications usually hold a client registration with the local authority's or the NHS
organisation's identity provider (Microsoft Entra ID, Keycloak, NHS CIS2...) rather than a key minted by the broker.
With `MASH_OIDC_ISSUER` and `MASH_OIDC_AUDIENCE` set, the broker accepts their access tokens beside its own API keys:

- the signature is checked against the issuer's published keys (JWKS, found through OpenID Connect discovery or given
  by `MASH_OIDC_JWKS_URL`), with asymmetric algorithms only, so a token can never be signed with a public key as an
  HMAC secret or with `alg: none`;
- `iss`, `aud`, `exp` and `sub` are required and checked (60 s of clock skew allowed);
- the roles come from one claim (`MASH_OIDC_ROLES_CLAIM`, default `roles`, as Entra app roles; a space-separated
  string such as `scope` works too), each `mash.<role>[.<scope>]`: `mash.intake.health`,
  `mash.subscriber.mash_hub`, `mash.ig_auditor`, `mash.admin`. Anything else in the claim is ignored.

Keys are cached and fetched again when a token names a key id the cache does not hold (key rotation), at most once
per `REFRESH_MIN_S`, so a stream of forged key ids cannot make the broker hammer the identity provider.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import httpx
import jwt

from broker.access.principal import ROLES, SCOPED, Principal, actor_safe_subject
from broker.errors import Refused, Unavailable
from broker.logging import get_logger

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
ROLE_PREFIX = "mash."
LEEWAY_S = 60
KEYS_TTL_S = 600.0
REFRESH_MIN_S = 30.0
FETCH_TIMEOUT_S = 5.0
log = get_logger("mash.oidc")


class TokenRejected(Refused):
    """The bearer token is not one this broker accepts. The message is fixed text: never a claim's value."""


class ProviderUnavailable(Unavailable):
    """The identity provider's keys could not be fetched and none are cached: 503, the token may well be good."""


def grants_from_claims(claims: Mapping[str, Any], roles_claim: str = "roles",
                       actor_key: bytes = b"") -> tuple[Principal, ...]:
    """The broker roles a verified token's claims grant, each a Principal named after the token's `sub` (who
    acted, for the audit log: the subject itself when it is an opaque id, else a hash keyed with `actor_key`)."""
    raw = claims.get(roles_claim)
    values = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else []
    credential = actor_safe_subject(str(claims.get("sub")), actor_key)
    grants = []
    for value in values:
        if not isinstance(value, str) or not value.startswith(ROLE_PREFIX):
            continue
        role, _, scope = value[len(ROLE_PREFIX):].partition(".")
        if role in ROLES and bool(scope) == (role in SCOPED):
            grants.append(Principal(credential, role, scope or None))
    return tuple(dict.fromkeys(grants))


# The key type each accepted algorithm needs: a header naming ES256 over an RSA key made PyJWT raise TypeError (500).
KEY_TYPE = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


def key_fits(key: jwt.PyJWK, algorithm: str) -> bool:
    """The token's algorithm is one this key can verify: same family and, when the key names one, that algorithm."""
    named = getattr(key, "_jwk_data", {}).get("alg")
    return KEY_TYPE.get(algorithm[:2]) == key.key_type and named in (None, algorithm)


class OidcVerifier:
    """Verifies access tokens from one issuer for one audience; holds the issuer's keys."""

    def __init__(self, issuer: str, audience: str, *, jwks_url: str | None = None, roles_claim: str = "roles",
                 actor_key: bytes = b"") -> None:
        self.issuer = issuer
        self.actor_key = actor_key  # keys the hash of a subject that cannot go into the audit actor as it is
        self.audience = audience
        self.roles_claim = roles_claim
        self._jwks_url = jwks_url
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def grants(self, token: str) -> tuple[Principal, ...]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("not a JWT") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in ALGORITHMS:
            raise TokenRejected("token algorithm not accepted")
        key = await self._key(kid if isinstance(kid, str) else "")
        if not key_fits(key, algorithm):
            raise TokenRejected("token algorithm does not match the issuer's key")
        try:
            claims = jwt.decode(token, key.key, algorithms=[algorithm], audience=self.audience, issuer=self.issuer,
                                leeway=LEEWAY_S, options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError:
            raise TokenRejected("token expired") from None
        except (jwt.PyJWTError, TypeError, ValueError):  # PyJWT raises TypeError for a key of another family
            raise TokenRejected("token signature, issuer, audience or claims not valid") from None
        return grants_from_claims(claims, self.roles_claim, self.actor_key)

    async def _key(self, kid: str) -> jwt.PyJWK:
        age = time.monotonic() - self._fetched_at
        if age > KEYS_TTL_S or (kid not in self._keys and age > REFRESH_MIN_S):
            async with self._lock:
                if time.monotonic() - self._fetched_at > REFRESH_MIN_S:  # not refreshed while this one waited
                    try:
                        await self._refresh()
                    except ProviderUnavailable:
                        if not self._keys:
                            raise
                        log.warning("oidc_keys_refresh_failed", issuer=self.issuer)  # the cached keys still serve
        if kid in self._keys:
            return self._keys[kid]
        if not kid and len(self._keys) == 1:  # an issuer with one key may leave kid out
            return next(iter(self._keys.values()))
        raise TokenRejected("token signed by a key the issuer does not publish")

    async def _refresh(self) -> None:
        try:
            async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S) as http:
                if self._jwks_url is None:
                    discovery = await http.get(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
                    discovery.raise_for_status()
                    self._jwks_url = str(discovery.json()["jwks_uri"])
                response = await http.get(self._jwks_url)
                response.raise_for_status()
                keys = jwt.PyJWKSet.from_dict(response.json()).keys
        except (httpx.HTTPError, ValueError, KeyError, jwt.PyJWTError):
            self._fetched_at = time.monotonic()  # back off for REFRESH_MIN_S before asking again
            raise ProviderUnavailable("the identity provider's signing keys could not be fetched") from None
        self._keys = {k.key_id or "": k for k in keys if k.public_key_use in (None, "sig")}
        self._fetched_at = time.monotonic()
