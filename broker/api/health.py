"""Liveness, readiness (the truth about Kafka and the stores) and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from broker.kafka.admin import list_topics

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process is serving")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: Kafka answers, topics exist, stores open, workers running")
async def readyz(request: Request) -> JSONResponse:
    rt = request.app.state.runtime
    checks: dict[str, Any] = {}
    try:
        topics = await asyncio.wait_for(list_topics(rt.bootstrap, **rt.kafka_security), timeout=3)
        missing = [t for t in rt.required_topics() if t not in topics]
        checks["kafka"] = "ok" if not missing else f"missing topics: {', '.join(missing)}"
    except Exception as exc:
        checks["kafka"] = f"unreachable ({type(exc).__name__})"
    if rt.embedded is not None and not rt.embedded.alive():
        checks["kafka"] = "embedded broker has exited: restart mash-broker (its topics were in memory)"
    checks["stores"] = rt.stores_status()
    checks["workers"] = "ok" if rt.workers_alive() else "a worker has stopped"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, 200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
