"""The FastAPI application: intake, delivery, IG, operations. OpenAPI docs at /docs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, status

from broker import __version__
from broker.api import admin, health, ig_policy, intake, subscribers
from broker.api.auth import require
from broker.api.oidc import OidcVerifier
from broker.config import Settings
from broker.service.reprocess import DeadLetterNotFound, reprocess
from broker.service.runtime import Runtime
from broker.web.ig import make_ig_router

DESCRIPTION = """Interoperability broker for multi-agency child safeguarding.

Agencies submit native records (FHIR, HL7 v2, CTF, CIN census, SSDA903, police POLE JSON) to
`POST /v1/records/{agency}`; subscribers read what the information sharing protocol releases to them from
`/v1/subscribers/{name}/...`, sealed to their public key. Every call needs an API key (`Authorization: Bearer`)
whose role fits the endpoint: intake (per agency), subscriber (per subscriber), ig_auditor, admin.
"""


def create_app(settings: Settings | None = None, *, share_workers: int = 1, audit_indexer: bool = True,
               runtime: Runtime | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or Runtime(settings)
        if rt.producer is None:  # `mash-broker run` starts it first, to report an unreachable Kafka plainly
            await rt.start()
        app.state.runtime = rt
        app.state.api_keys = rt.api_keys
        s = rt.settings
        app.state.oidc = OidcVerifier(s.oidc_issuer, s.oidc_audience or "", jwks_url=s.oidc_jwks_url,
                                      roles_claim=s.oidc_roles_claim) if s.oidc_issuer else None
        rt.start_workers(share_workers, audit_indexer)
        try:
            yield
        finally:
            await rt.stop()

    app = FastAPI(title="mash-broker", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.include_router(intake.router)
    app.include_router(subscribers.router)
    app.include_router(admin.router)
    app.include_router(ig_policy.router)

    async def reprocess_for_ig(deadletter_id: str) -> dict[str, Any]:
        try:
            result = await reprocess(app.state.runtime, deadletter_id, "ig_auditor")
        except DeadLetterNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no reprocessable dead letter {exc}") from None
        return {"deadletter_id": deadletter_id, "event_ids": result.event_ids,
                "rejections": [r.to_dict() for r in result.rejections]}

    app.include_router(make_ig_router(lambda: app.state.runtime.audit_store, require("ig_auditor"),
                                      reprocess_for_ig, lambda token: app.state.runtime.identities.aliases(token)))
    app.include_router(health.router)

    @app.get("/", include_in_schema=False)
    async def root() -> dict[str, Any]:
        return {"service": "mash-broker", "version": __version__, "docs": "/docs", "openapi": "/openapi.json"}

    return app
