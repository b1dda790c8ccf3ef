"""The IG router mounted on a small FastAPI app, as the broker mounts it: the real API-key dependency
(role ig_auditor) and a reprocess action that records itself in the audit store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from broker.api.auth import ApiKeyStore, require
from broker.audit.store import AuditStore
from broker.web.ig import make_ig_router


@dataclass
class IgApp:
    app: FastAPI
    ig_key: str
    subscriber_key: str
    reprocessed: list[str]


def build_ig_app(store: AuditStore, key_dir: Path,
                 aliases: Callable[[str], list[str]] = lambda token: [token]) -> IgApp:
    keys = ApiKeyStore(key_dir / "api-keys.json")
    ig_key, _ = keys.create("ig_auditor")
    subscriber_key, _ = keys.create("subscriber", "csc-front-door")
    reprocessed: list[str] = []

    async def reprocess(deadletter_id: str) -> dict[str, Any]:
        entry = store.log("admin_action", actor="ig_auditor", action="deadletter.reprocess", target=deadletter_id)
        reprocessed.append(deadletter_id)
        return {"status": "resubmitted", "audit_seq": entry["seq"]}

    app = FastAPI()
    app.state.api_keys = keys
    app.include_router(make_ig_router(lambda: store, require("ig_auditor"), reprocess, aliases))
    return IgApp(app, ig_key, subscriber_key, reprocessed)
