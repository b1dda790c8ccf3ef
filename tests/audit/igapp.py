"""The IG router mounted on a small FastAPI app, as the broker mounts it: the real API-key dependency
(role ig_auditor)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from broker.api.auth import ApiKeyStore, require
from broker.api.errors import install
from broker.audit.store import AuditStore
from broker.pipeline.identify import LinkageKey
from broker.web.ig import make_ig_router


@dataclass
class IgApp:
    app: FastAPI
    ig_key: str
    subscriber_key: str


def build_ig_app(store: AuditStore, key_dir: Path,
                 aliases: Callable[[str], list[str]] = lambda token: [token],
                 linkage: LinkageKey | None = None, **router: Any) -> IgApp:
    """`router`: make_ig_router's other readers (recipients, consent, child_name)."""
    keys = ApiKeyStore(key_dir / "api-keys.json")
    ig_key, _ = keys.create("ig_auditor")
    subscriber_key, _ = keys.create("subscriber", "csc-front-door")
    app = FastAPI()
    install(app)  # the broker's exception handlers: value-free answers, as the service gives them
    app.state.api_keys = keys
    app.include_router(make_ig_router(lambda: store, require("ig_auditor"), aliases, lambda: linkage, **router))
    return IgApp(app, ig_key, subscriber_key)
