"""Guarantee: API keys are managed live and every key action is accounted for.

A key revoked with `mash-broker apikeys revoke` (another process, as an operator would run it) stops working on
the running service within seconds, with no restart; a key created the same way starts working; both are in the
audit log naming who acted; and what a key does through the API is recorded under that key's id, not only its
role."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

from broker.api.auth import ApiKeyStore
from broker.api.principal import cli_actor
from tests.integration.service import Service, running_service

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "deploy" / "protocols" / "sample-partnership.yaml"
WITHIN_S = 5.0
PATIENT = (b'{"resourceType": "Patient", "id": "live-keys-1", "identifier": [{"system": '
           b'"https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}], "name": [{"family": "Example", '
           b'"given": ["Testchild"]}], "birthDate": "2015-01-02", "gender": "female"}')


def apikeys(svc: Service, *args: str) -> str:
    """`mash-broker apikeys ...` in its own process, on the service's data directory."""
    env = {**os.environ, "MASH_DATA_DIR": str(svc.settings.data_dir),
           "MASH_PROTOCOL_FILE": str(svc.settings.protocol_file)}
    env.pop("MASH_AUDIT_URL", None)
    done = subprocess.run([sys.executable, "-m", "broker.cli.main", "apikeys", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def status_within(http: httpx.AsyncClient, url: str, key: str, wanted: int) -> float:
    """Seconds until `url` answers `wanted` with this key (fails after WITHIN_S)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        r = await http.get(url, headers={"Authorization": f"Bearer {key}"})
        if r.status_code == wanted:
            return loop.time() - start
        assert loop.time() - start < WITHIN_S, f"still {r.status_code} after {WITHIN_S}s"
        await asyncio.sleep(0.1)


async def audit_records(http: httpx.AsyncClient, svc: Service, kind: str, want: int) -> list[dict]:
    for _ in range(100):
        r = await http.get(f"{svc.base_url}/v1/ig/search", params={"kind": kind, "limit": 1000},
                           headers=svc.headers("ig_auditor"))
        assert r.status_code == 200
        records = [e["record"] for e in r.json()["entries"]]
        if len(records) >= want:
            return records
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {want} {kind} records")


async def test_a_key_created_and_revoked_by_the_cli_takes_effect_on_the_running_service(kafka_bootstrap,
                                                                                        tmp_path) -> None:
    """Promise: revocation and creation take effect within seconds without a restart, and both are audited with
    who acted."""
    async with running_service(tmp_path, kafka_bootstrap, protocol=str(PROTOCOL)) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        url = f"{svc.base_url}/v1/ig/protocols"
        key_id, grant, key = apikeys(svc, "create", "--role", "ig_auditor").strip().split("\t")
        assert grant == "ig_auditor"
        await status_within(http, url, key, 200)
        apikeys(svc, "revoke", key_id)
        await status_within(http, url, key, 401)
        # a dev key that was never touched keeps working throughout
        assert (await http.get(url, headers=svc.headers("ig_auditor"))).status_code == 200

        actions = [r for r in await audit_records(http, svc, "admin_action", 2)
                   if r.get("action", "").startswith("apikey.")]
        assert sorted((r["action"], r["target"], r["actor"]) for r in actions) == [
            ("apikey.create", key_id, cli_actor()), ("apikey.revoke", key_id, cli_actor())]
        assert key not in str(actions)


async def test_what_a_key_does_is_recorded_under_its_id(kafka_bootstrap, tmp_path) -> None:
    """Promise: the audit actor answers "who did this": the key id, never only the role."""
    async with running_service(tmp_path, kafka_bootstrap, protocol=str(PROTOCOL)) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{svc.base_url}/v1/records/health", content=PATIENT,
                            headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+json"}))
        assert r.status_code == 202, r.text
        (intake,) = [p for p in ApiKeyStore(svc.settings.data_dir / "api-keys.json").principals()
                     if p.grant == "intake:health"]
        received = await audit_records(http, svc, "record_received", 1)
        assert received[0]["actor"] == f"intake:health:{intake.key_id}"
