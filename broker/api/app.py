"""The FastAPI application: intake, delivery, IG, operations. OpenAPI docs at /docs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from broker import __version__
from broker.api import health, intake, subscribers
from broker.config import Settings
from broker.service.runtime import Runtime

DESCRIPTION = """Interoperability broker for multi-agency child safeguarding.

Agencies submit native records (FHIR, HL7 v2, CTF, CIN census, SSDA903, police POLE JSON) to
`POST /v1/records/{agency}`; subscribers read what the information sharing protocol releases to them from
`/v1/subscribers/{name}/...`, sealed to their public key. Every call needs an API key (`Authorization: Bearer`)
whose role fits the endpoint: intake (per agency), subscriber (per subscriber), ig_auditor, admin.
"""


def create_app(settings: Settings | None = None, *, share_workers: int = 1) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = await Runtime(settings).start()
        app.state.runtime = rt
        app.state.api_keys = rt.api_keys
        rt.start_workers(share_workers)
        try:
            yield
        finally:
            await rt.stop()

    app = FastAPI(title="mash-broker", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.include_router(intake.router)
    app.include_router(subscribers.router)
    app.include_router(health.router)

    @app.get("/", include_in_schema=False)
    async def root() -> dict[str, Any]:
        return {"service": "mash-broker", "version": __version__, "docs": "/docs", "openapi": "/openapi.json"}

    return app
