"""A real mash-broker service for tests: the FastAPI app under uvicorn on 127.0.0.1, real Kafka, real stores."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from broker.api.app import create_app
from broker.config import Settings
from broker.crypto.client import SubscriberClient
from broker.kafka.embedded import free_port
from broker.service.runtime import Runtime

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Service:
    base_url: str
    credentials: dict[str, str]
    runtime: Runtime
    settings: Settings

    def headers(self, actor: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials[actor]}", **extra}

    def client_for(self, subscriber: str) -> SubscriberClient:
        return SubscriberClient.from_file(self.settings.data_dir / "subscriber-keys" / f"{subscriber}.key", subscriber)

    async def pull_until(self, http: httpx.AsyncClient, subscriber: str, want: int,
                         attempts: int = 100) -> list[dict[str, Any]]:
        """Pull (without acknowledging) until `want` deliveries are there; returns them opened."""
        client = self.client_for(subscriber)
        for _ in range(attempts):
            r = await http.get(f"{self.base_url}/v1/subscribers/{subscriber}/events",
                               params={"limit": 1000}, headers=self.headers(f"subscriber:{subscriber}"))
            r.raise_for_status()
            deliveries = r.json()["deliveries"]
            if len(deliveries) >= want:
                import base64

                return [client.open(base64.b64decode(d["sealed"])) for d in deliveries]
            await asyncio.sleep(0.1)
        raise AssertionError(f"{subscriber} got fewer than {want} deliveries")


@asynccontextmanager
async def running_service(tmp: Path, bootstrap: str, protocol: str = "e2e-protocol.yaml",
                          **overrides: Any) -> AsyncIterator[Service]:
    """Start the service; each call gets its own topic prefix, data dir and protocol copy (keys are generated)."""
    share_workers = overrides.pop("share_workers", 1)  # 0: a test drives the share stage itself
    audit_indexer = overrides.pop("audit_indexer", True)
    proto_dir = tmp / "protocol"
    proto_dir.mkdir(parents=True, exist_ok=True)
    source = FIXTURES / protocol if (FIXTURES / protocol).exists() else Path(protocol)
    shutil.copy(source, proto_dir / source.name)
    port = free_port()
    settings = Settings(kafka_bootstrap_servers=bootstrap, data_dir=tmp / "data", port=port,
                        protocol_file=proto_dir / source.name, dev_mode=True,
                        topic_prefix=overrides.pop("topic_prefix", f"t{uuid.uuid4().hex[:8]}"), event_partitions=3,
                        **overrides)
    app = create_app(settings, share_workers=share_workers, audit_indexer=audit_indexer)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    credentials = json.loads((settings.data_dir / "dev-credentials.json").read_text())
    try:
        yield Service(f"http://127.0.0.1:{port}", credentials, app.state.runtime, settings)
    finally:
        server.should_exit = True
        await task
