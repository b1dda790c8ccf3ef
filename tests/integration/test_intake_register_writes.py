"""Intake writes its registers only when it has something to write (issue 24: the thread hop after publishing).

A request about a child the identity register already links, whose date of birth it already holds, has nothing to
write once Kafka holds its events: it must be answered without touching the register's write lock. Each test holds
that lock from a second connection, as another broker process would (tests/integration/test_blocking_off_loop.py
does the same for other registers). Before issue 24's change every request opened a write transaction on the
identity register after publishing, and so waited on that lock for nothing. A request that does learn a link still
waits for the lock, off the event loop, and writes it once the lock goes.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from broker.stores.identities import IdentityRegister
from tests.integration.service import running_service
from tests.integration.test_blocking_off_loop import _row, _until_pending, write_locked

pytestmark = pytest.mark.integration

FHIR = {"Content-Type": "application/fhir+json"}


def _patient(record_id: str, nhs_number: str) -> bytes:
    """A fictitious child: an NHS number from the 999 range, which is never issued."""
    return json.dumps({"resourceType": "Patient", "id": record_id, "gender": "female", "birthDate": "2016-05-06",
                       "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs_number}],
                       "name": [{"family": "Example", "given": ["Testchild"]}]}).encode()


async def test_a_record_about_a_known_child_is_accepted_while_the_identity_register_is_locked(
        kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap, share_workers=0) as svc, \
            httpx.AsyncClient(timeout=60) as http:
        url, headers = f"{svc.base_url}/v1/records/health", svc.headers("intake:health", **FHIR)
        first = await http.post(url, content=_patient("reg1", "9990001235"), headers=headers)
        assert first.status_code == 202, first.text  # the link and the date of birth are learned here
        path = svc.settings.data_dir / IdentityRegister.FILE
        with write_locked(path):
            again = await http.post(url, content=_patient("reg2", "9990001235"), headers=headers)
            # answered while the lock is still held: the request made no write (it would wait on the lock)
            assert again.status_code == 202, again.text
            assert again.json()["events"][0]["event_id"] != first.json()["events"][0]["event_id"]


async def test_a_record_that_links_a_new_child_waits_off_the_loop_and_writes_its_link(kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap, share_workers=0) as svc, \
            httpx.AsyncClient(timeout=60) as http:
        url, headers = f"{svc.base_url}/v1/records/health", svc.headers("intake:health", **FHIR)
        identities, path = svc.runtime.identities, svc.settings.data_dir / IdentityRegister.FILE
        linked = "SELECT child FROM identity WHERE kind = 'nhs'"
        with write_locked(path):
            sent = asyncio.create_task(http.post(url, content=_patient("reg3", "9990002053"), headers=headers))
            assert await _until_pending(identities.db, sent), "the link's write did not wait off the loop"
            health = await http.get(f"{svc.base_url}/healthz")
            assert health.status_code == 200 and not sent.done()
            assert _row(path, linked, ()) is None  # not written while the lock is held
        answered = await sent
        assert answered.status_code == 202, answered.text
        assert _row(path, linked, ()) is not None
