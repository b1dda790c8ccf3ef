"""`mash-broker doctor` on the delivery edge: unusable subscriber keys, held deliveries, and a Kafka that no longer
holds what the registers remember (checked against real embedded brokers and real SQLite registers)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from broker.config import Settings
from broker.kafka.embedded import EmbeddedKafka
from broker.ops import checks
from broker.ops.delivery_checks import check_held_deliveries, check_kafka_epoch, check_subscriber_keys
from broker.policy import load_protocol
from broker.stores.held import Held, HeldDeliveries
from tests.deploy.conftest import SAMPLE_PROTOCOL
from tests.integration.protocols import child, health_protocol
from tests.integration.service import running_service

pytestmark = pytest.mark.integration


def test_each_unusable_subscriber_key_is_named(tmp_path: Path) -> None:
    path = health_protocol(tmp_path / "p", both_subscribers=True)
    keys = path.parent / "keys"
    keys.mkdir()
    (keys / "test_other.pub").write_text("not a public key\n")  # test_hub's file is missing altogether
    settings = Settings(data_dir=tmp_path / "data", protocol_file=path, dev_mode=False)
    result = check_subscriber_keys(settings, load_protocol(path))
    assert result.status == "warning" and result.healthy
    assert "subscriber test_hub:" in result.detail and "not found" in result.detail
    assert "subscriber test_other:" in result.detail and "is not a x25519 public key" in result.detail
    assert "held" in result.detail
    assert check_subscriber_keys(settings, load_protocol(SAMPLE_PROTOCOL)).status in ("ok", "warning")


def test_held_deliveries_are_counted_per_subscriber(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert check_held_deliveries(settings).status == "ok"
    held = HeldDeliveries(settings.data_dir / HeldDeliveries.FILE)
    held.hold([Held("test_other", "00000000-0000-4000-8000-00000000000a", 0, 3),
               Held("test_other", "00000000-0000-4000-8000-00000000000b", 1, 4)], "2026-01-01T00:00:00Z")
    held.close()
    result = check_held_deliveries(settings)
    assert result.status == "warning" and "test_other: 2" in result.detail


async def test_a_kafka_that_lost_its_topics_is_a_problem(tmp_path: Path) -> None:
    with EmbeddedKafka() as first:
        async with running_service(tmp_path, first.bootstrap_servers, str(health_protocol(tmp_path / "p"))) as svc, \
                httpx.AsyncClient(timeout=30) as http:
            r = await http.post(f"{svc.base_url}/v1/records/health", content=child(1),
                                headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+json"}))
            assert r.status_code == 202
            await svc.pull_until(http, "test_hub", 1)
            settings = svc.settings
        intact = await check_kafka_epoch(settings, True)
        assert intact.status == "ok", intact.detail
        found = {r.check: r for r in await checks.run_checks(settings)}
        assert found["kafka epoch"].status == "ok" and found["held deliveries"].status == "ok"
    with EmbeddedKafka() as second:  # the same address book entry, an empty broker: what a restart leaves
        emptied = settings.model_copy(update={"kafka_bootstrap_servers": second.bootstrap_servers})
        lost = await check_kafka_epoch(emptied, True)
        assert lost.status == "problem" and "lost its topics" in lost.detail and "resent" in lost.detail
    embedded = settings.model_copy(update={"kafka_bootstrap_servers": None})
    assert (await check_kafka_epoch(embedded, False)).status == "info"
