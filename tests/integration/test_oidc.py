"""Access tokens from an OpenID Connect provider, through the real service.

The provider here is the test itself: it publishes a discovery document and its signing keys over HTTP on a local
port and signs tokens with them, which is all a broker ever sees of Entra ID or Keycloak (neither runs on this
machine). The broker discovers the keys, verifies signature, issuer, audience and expiry, and maps the roles claim.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from broker.api import oidc
from broker.kafka.embedded import free_port
from tests.integration.service import running_service

pytestmark = pytest.mark.integration
AUDIENCE = "api://mash-broker-test"
PATIENT = (b'{"resourceType": "Patient", "id": "oidc-1", "identifier": [{"system": '
           b'"https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}], "name": [{"family": "Example", '
           b'"given": ["Testchild"]}], "birthDate": "2015-01-02", "gender": "female"}')


class Provider:
    """A local OpenID Connect provider: discovery, JWKS, and tokens signed with its keys."""

    def __init__(self, port: int) -> None:
        self.issuer = f"http://127.0.0.1:{port}/realm"
        self.keys: dict[str, Any] = {"k1": rsa.generate_private_key(public_exponent=65537, key_size=2048)}
        self.up = True

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid, key in self.keys.items():
            rsa_key = isinstance(key, rsa.RSAPrivateKey)
            algorithm = jwt.algorithms.RSAAlgorithm if rsa_key else jwt.algorithms.ECAlgorithm
            out.append({**algorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig"})
        return {"keys": out}

    def token(self, roles: list[str], *, kid: str = "k1", key: Any = None, algorithm: str = "RS256",
              **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": self.issuer, "aud": AUDIENCE, "sub": "client-123", "azp": "hub-app", "iat": now,
                "exp": now + 300, "roles": roles, **claims}
        return jwt.encode(body, key or self.keys[kid], algorithm=algorithm, headers={"kid": kid})


@asynccontextmanager
async def provider() -> AsyncIterator[Provider]:
    port = free_port()
    idp = Provider(port)

    async def discovery(_: web.Request) -> web.Response:
        if not idp.up:
            return web.Response(status=503)
        return web.json_response({"issuer": idp.issuer, "jwks_uri": f"http://127.0.0.1:{port}/realm/keys"})

    async def keys(_: web.Request) -> web.Response:
        return web.json_response(idp.jwks()) if idp.up else web.Response(status=503)

    app = web.Application()
    app.add_routes([web.get("/realm/.well-known/openid-configuration", discovery), web.get("/realm/keys", keys)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield idp
    finally:
        await runner.cleanup()


def hmac_forged(secret: bytes, claims: dict[str, Any]) -> str:
    """The classic forgery: HS256 keyed with the provider's public key (PyJWT itself refuses to make one)."""
    def part(data: dict[str, Any]) -> str:
        return jwt.utils.base64url_encode(json.dumps(data).encode()).decode()

    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT', 'kid': 'k1'})}.{part(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{jwt.utils.base64url_encode(signature).decode()}"


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


async def test_provider_tokens_grant_the_roles_they_name_and_nothing_else(kafka_bootstrap, tmp_path):
    async with provider() as idp, running_service(tmp_path, kafka_bootstrap, oidc_issuer=idp.issuer,
                                                  oidc_audience=AUDIENCE) as svc, httpx.AsyncClient(timeout=30) as http:
        intake = idp.token(["mash.intake.health", "offline_access"])
        r = await http.post(f"{svc.base_url}/v1/records/health", content=PATIENT,
                            headers=bearer(intake, **{"Content-Type": "application/fhir+json"}))
        assert r.status_code == 202, r.text
        r = await http.post(f"{svc.base_url}/v1/records/police", content=b"{}",
                            headers=bearer(intake, **{"Content-Type": "application/json"}))
        assert r.status_code == 403  # intake for health only

        hub = idp.token(["mash.subscriber.test_hub", "mash.ig_auditor"])
        r = await http.get(f"{svc.base_url}/v1/subscribers/test_hub/events", headers=bearer(hub))
        assert r.status_code == 200
        assert (await http.get(f"{svc.base_url}/v1/subscribers/test_other/events", headers=bearer(hub))).status_code \
            == 403
        for _ in range(100):  # the audit indexer records the intake within moments
            r = await http.get(f"{svc.base_url}/v1/ig/search", params={"kind": "record_received"},
                               headers=bearer(hub))
            if r.status_code != 200 or r.json()["entries"]:
                break
            await asyncio.sleep(0.1)
        assert r.status_code == 200 and r.json()["entries"][0]["record"]["actor"] == "intake:health:oidc:client-123"

        nothing = idp.token(["offline_access", "mash.superuser", "mash.intake"])  # no usable mash role
        r = await http.post(f"{svc.base_url}/v1/records/health", content=PATIENT,
                            headers=bearer(nothing, **{"Content-Type": "application/fhir+json"}))
        assert r.status_code == 403

        # the broker's own API keys keep working beside the provider's tokens
        r = await http.get(f"{svc.base_url}/v1/subscribers/test_hub/events", headers=svc.headers("subscriber:test_hub"))
        assert r.status_code == 200


async def test_forged_expired_and_misdirected_tokens_are_refused(kafka_bootstrap, tmp_path):
    async with provider() as idp, running_service(tmp_path, kafka_bootstrap, oidc_issuer=idp.issuer,
                                                  oidc_audience=AUDIENCE) as svc, httpx.AsyncClient(timeout=30) as http:
        roles = ["mash.subscriber.test_hub"]
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_pem = idp.keys["k1"].public_key().public_bytes(serialization.Encoding.PEM,
                                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        header, _, signature = idp.token(roles).split(".")
        cases = {
            "expired": idp.token(roles, exp=int(time.time()) - 3600),
            "other audience": idp.token(roles, aud="api://another-app"),
            "other issuer": idp.token(roles, iss="http://127.0.0.1:1/evil"),
            "unknown key": idp.token(roles, kid="k9", key=stranger),
            "right kid, wrong key": idp.token(roles, key=stranger),
            "HMAC with the public key": hmac_forged(public_pem, {"iss": idp.issuer, "aud": AUDIENCE, "sub": "x",
                                                                "roles": roles, "exp": int(time.time()) + 300}),
            "alg none": jwt.encode({"iss": idp.issuer, "aud": AUDIENCE, "sub": "x", "roles": roles,
                                    "exp": int(time.time()) + 300}, None, algorithm="none", headers={"kid": "k1"}),
            "payload swapped": f"{header}.{jwt.utils.base64url_encode(b'{}').decode()}.{signature}",
            "no subject": idp.token(roles, sub=None),
        }
        for name, token in cases.items():
            r = await http.get(f"{svc.base_url}/v1/subscribers/test_hub/events", headers=bearer(token))
            assert r.status_code == 401, (name, r.text)
            assert r.headers["WWW-Authenticate"] == "Bearer"
            assert token not in r.text and "client-123" not in r.text


async def test_rotated_keys_are_fetched_and_an_unreachable_provider_is_a_503(kafka_bootstrap, tmp_path, monkeypatch):
    monkeypatch.setattr(oidc, "REFRESH_MIN_S", 0.0)  # no back-off between fetches, so the test need not wait 30 s
    async with provider() as idp, running_service(tmp_path, kafka_bootstrap, oidc_issuer=idp.issuer,
                                                  oidc_audience=AUDIENCE) as svc, httpx.AsyncClient(timeout=30) as http:
        url = f"{svc.base_url}/v1/subscribers/test_hub/events"
        idp.up = False
        r = await http.get(url, headers=bearer(idp.token(["mash.subscriber.test_hub"])))
        assert r.status_code == 503 and r.headers["Retry-After"]  # the token may be good: say so, not 401
        idp.up = True
        assert (await http.get(url, headers=bearer(idp.token(["mash.subscriber.test_hub"])))).status_code == 200

        idp.keys["k2"] = ec.generate_private_key(ec.SECP256R1())  # the provider rotates to a new key
        rotated = idp.token(["mash.subscriber.test_hub"], kid="k2", algorithm="ES256")
        assert (await http.get(url, headers=bearer(rotated))).status_code == 200
        idp.up = False  # keys already held keep serving while the provider is away
        assert (await http.get(url, headers=bearer(rotated))).status_code == 200
