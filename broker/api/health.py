"""Liveness, readiness (the truth about Kafka and the stores) and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from adapters.kit.registry import broken_entry_points
from broker.aio import blocking
from broker.kafka.admin import list_topics
from broker.service.ports import HealthPorts

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process is serving")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


# Checks whose failure stops the service (503: take it out of the load balancer) and checks that only degrade it.
HARD_CHECKS = ("kafka", "stores", "workers")


def subscriber_health(rt: HealthPorts) -> str:
    """"ok", or each subscriber that cannot be served now, by name (no paths or key details: /readyz is public)."""
    faults = dict(rt.subscriber_faults)
    held = rt.held.counts()
    names = sorted(set(faults) | set(held))
    if not names:
        return "ok"
    parts = []
    for name in names:
        why = "public key unusable" if name in faults and "key" in faults[name] else faults.get(name, "recovering")
        parts.append(f"{name} ({why}; {held.get(name, 0)} deliveries held)")
    return "degraded: " + ", ".join(parts)


def adapter_health() -> str:
    """"ok", or the adapter plug-ins installed but not loaded (degraded: their formats are refused until fixed)."""
    broken = broken_entry_points()
    if not broken:
        return "ok"
    return f"degraded: adapter entry points not loaded: {', '.join(broken)} (see mash-broker doctor)"


@router.get("/readyz", summary="Readiness: Kafka answers, topics exist, stores open, workers running",
            responses={503: {"description": "Kafka, a store or a worker is down: take this instance out of service"}})
async def readyz(request: Request) -> JSONResponse:
    """200 "ready"; 200 "degraded" when the service works for all but some subscribers (their deliveries are held,
    nothing is lost) or when this start found Kafka had lost its topics and reconciled; 503 "not ready" when Kafka,
    the stores or a worker is down. Degraded is not 503 on purpose: a load balancer that drops the instance would stop
    intake, and every healthy subscriber's deliveries with it, for one subscriber's missing key."""
    rt: HealthPorts = request.app.state.runtime
    checks: dict[str, Any] = {}
    try:
        topics = await asyncio.wait_for(list_topics(rt.bootstrap, **rt.kafka_security), timeout=3)
        missing = [t for t in rt.required_topics() if t not in topics]
        checks["kafka"] = "ok" if not missing else f"missing topics: {', '.join(missing)}"
    except Exception as exc:
        checks["kafka"] = f"unreachable ({type(exc).__name__})"
    if rt.embedded is not None and not rt.embedded.alive():
        checks["kafka"] = "embedded broker has exited: restart mash-broker (its topics were in memory)"
    local = getattr(rt, "local_kafka", None)
    if local is not None and not local.alive():
        checks["kafka"] = "the local Apache Kafka has exited: restart mash-broker (its data is kept on disk)"
    checks["stores"] = await blocking(rt.stores_status)
    checks["workers"] = "ok" if rt.workers_alive() else "a worker has stopped"
    try:
        checks["subscribers"] = await blocking(subscriber_health, rt)
    except Exception as exc:  # the held register unreadable: the stores check says so too
        checks["subscribers"] = f"unknown ({type(exc).__name__})"
    checks["adapters"] = adapter_health()
    checks["kafka_epoch"] = rt.epoch_state.readiness()
    kafka_in_use = getattr(rt, "kafka_in_use", None)  # which Kafka, in words: Apache, the embedded Tansu, external
    if any(checks[c] != "ok" for c in HARD_CHECKS):
        return JSONResponse({"status": "not ready", "checks": checks, "kafka_in_use": kafka_in_use}, 503)
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ok else "degraded", "checks": checks, "kafka_in_use": kafka_in_use},
                        200)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
