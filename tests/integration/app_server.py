"""The app under uvicorn with exactly these Settings: for restarts on the same data directory and topic prefix, and
for starts outside --dev (running_service always runs in --dev, which replaces unusable development keys)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
import yaml

from broker.api.app import create_app
from broker.config import Settings
from broker.kafka.embedded import free_port


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[str]:
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        server.should_exit = True
        await task


def settings_outside_dev(dev: Settings, protocol: Path) -> Settings:
    """The settings of a --dev service started again without --dev: same data dir, topics and secrets, and a copy of
    `protocol` whose key files are the development keys --dev made (<data_dir>/subscriber-keys/<name>.pub)."""
    keys = dev.data_dir / "subscriber-keys"
    spec = yaml.safe_load(protocol.read_text())
    for sub in spec["subscribers"]:
        sub["key_file"] = f"{sub['name']}.pub"
    (keys / "protocol.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return dev.model_copy(update={"protocol_file": keys / "protocol.yaml", "dev_mode": False, "port": free_port()})
