"""The FastAPI application: intake, delivery, IG, operations. OpenAPI docs at /docs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from broker import __version__
from broker.api import admin, consent_review, decisions, errors, health, hub, ig_policy, intake, subscribers
from broker.api.auth import require
from broker.api.limits import Limits, LimitsMiddleware
from broker.api.oidc import OidcVerifier
from broker.audit.keys import actor_hash_key
from broker.audit.sar import recipient_words
from broker.config import Settings
from broker.service.child_identity import reveal_child_name
from broker.service.root import load_local, open_broker
from broker.service.runtime import Runtime
from broker.web.docs import make_docs_router
from broker.web.ig import make_ig_router
from broker.web.ig_digest import make_digest_router
from broker.web.insight import make_insight_router

DESCRIPTION = """Interoperability broker for multi-agency child safeguarding.

Agencies submit native records (FHIR, HL7 v2, CTF, CIN census, SSDA903, police POLE JSON) to
`POST /v1/records/{agency}`; subscribers read what the information sharing protocol releases to them from
`/v1/subscribers/{name}/...`, sealed to their public key. Every call needs an API key (`Authorization: Bearer`)
whose role fits the endpoint: intake (per agency), subscriber (per subscriber), ig_auditor, admin, decision_maker
(per partner: decides the shares the law routes to a person, `/v1/decisions/referrals`).

Limits, checked before a body is parsed or a key checked: intake bodies up to `MASH_MAX_BODY_BYTES`, every other
body up to `MASH_MAX_CONTROL_BODY_BYTES` (64 KiB) (413); repeated failed authentication from one address, and intake
beyond `MASH_INTAKE_RATE_PER_SECOND` for one key, get 429 with Retry-After.
"""


def page_rises(rt: Runtime, records: list[dict[str, Any]]) -> list[Any]:
    """The hotspot detector as the insight watch runs it (its settings, measures and period), for /insight."""
    from broker.clock import now_iso
    from broker.insight.hotspots import rises
    from broker.service.insight_watch import detector_config, watched_measures

    s = rt.settings
    return rises(records, watched_measures(s), detector_config(s), today=now_iso()[:10], across=s.insight_period)


def create_app(settings: Settings | None = None, *, share_workers: int = 1, audit_indexer: bool = True,
               runtime: Runtime | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # `mash-broker run` opens it first, to report a misconfiguration or an unreachable Kafka plainly
        rt = runtime or await open_broker(load_local(settings))
        app.state.runtime = rt
        app.state.api_keys = rt.api_keys
        s = rt.settings
        app.state.oidc = OidcVerifier(s.oidc_issuer, s.oidc_audience or "", jwks_url=s.oidc_jwks_url,
                                      roles_claim=s.oidc_roles_claim,
                                      actor_key=actor_hash_key(rt.audit_store.signing_key)) if s.oidc_issuer else None
        rt.start_workers(share_workers, audit_indexer)
        try:
            yield
        finally:
            await rt.stop()

    # redirect_slashes off: Starlette builds a trailing-slash redirect's Location from the Host header, which the
    # caller controls; a wrong path is a plain 404 instead.
    app = FastAPI(title="mash-broker", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  redirect_slashes=False, docs_url=None, redoc_url=None)  # /docs: served offline, below
    # Body and rate limits before any parsing or authentication, for every route (broker/api/limits.py).
    app.add_middleware(LimitsMiddleware, limits=Limits.from_settings(runtime.settings if runtime else settings))
    errors.install(app)  # every error's HTTP status, one place (broker/api/errors.py)
    app.include_router(intake.router)
    app.include_router(subscribers.router)
    app.include_router(admin.router)
    app.include_router(decisions.router)
    app.include_router(hub.router)  # the MASH hub's decisions (issue 16)
    app.include_router(ig_policy.router)
    app.include_router(consent_review.router)  # the first consent register's records, for IG review

    # IG sees dead letters but may not reprocess them (that republishes data): admins only, /v1/admin/deadletters
    app.include_router(make_ig_router(lambda: app.state.runtime.audit_store, require("ig_auditor"),
                                      lambda token: app.state.runtime.identities.aliases(token),
                                      lambda: app.state.runtime.linkage,
                                      lambda: recipient_words(app.state.runtime.protocol),
                                      lambda token: app.state.runtime.consent_for(token),
                                      lambda tokens, ids: reveal_child_name(app.state.runtime, tokens, ids)))
    app.include_router(make_digest_router(lambda: app.state.runtime.audit_store, require("ig_auditor"),
                                          lambda: app.state.runtime.protocol))  # the owning agency is told
    # the partnership board's page (issue 17): disclosure-controlled measures, the process map; role insight
    app.include_router(make_insight_router(lambda: app.state.runtime.audit_store, require("insight"),
                                           lambda: app.state.runtime.protocol,
                                           lambda totals: app.state.runtime.metrics.set_insight(totals),
                                           (runtime.settings if runtime else settings).insight_min_population,
                                           rises=lambda records: page_rises(app.state.runtime, records)))
    app.include_router(health.router)
    app.include_router(make_docs_router("mash-broker"))  # Swagger UI from the broker's own files, not a CDN

    @app.get("/", include_in_schema=False)
    async def root() -> dict[str, Any]:
        return {"service": "mash-broker", "version": __version__, "docs": "/docs", "openapi": "/openapi.json"}

    return app
