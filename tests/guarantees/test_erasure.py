"""Guarantee: a child's data can be erased. After a shred the broker never serves, replays or re-encrypts what it
held about the child, and tells every subscriber that received it.

Each test attacks the promise as a subscriber with an old cursor, an agency resending its records, or code that
forgets to ask the erasure register would. Fictitious children only (test names, test-range NHS numbers, bench
records).
"""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest

from broker.bench.records import BY_NAME
from broker.crypto import ErasedData
from broker.pipeline.erasure import ERASED_RESEND
from broker.service.messages import decode
from broker.service.replay import replay_events
from broker.service.share import process_batch
from tests.integration.service import running_service
from tests.integration.test_erasure import (
    ALPHA,
    BETA,
    about,
    notices,
    post,
    protocol_file,
    pull_all,
    sse_events,
    start_two_children,
    wait_for,
)
from tests.integration.topics import read_topic

pytestmark = pytest.mark.integration
EPISODES = ("CHILD,DECOM,RNE,LS,CIN,PLACE,PLACE_PROVIDER,DEC,REC,REASON_PLACE_CHANGE,HOME_POST,PL_POST,URN\r\n"
            "BENCH{child:05d},{day}/03/2024,S,C2,N1,U1,PR1,,,,ZZ99 3AA,ZZ99 3AB,SC999999\r\n")


async def test_no_cursor_no_resume_and_no_stream_brings_back_an_erased_childs_delivery(kafka_bootstrap, tmp_path):
    """An erased child's deliveries are never served again over HTTP, whatever cursor the subscriber presents."""
    async with running_service(tmp_path, kafka_bootstrap, protocol=str(protocol_file(tmp_path))) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        hub = svc.headers("subscriber:test_hub")
        # a cursor issued before anything was delivered: the very start of the stream
        r = await http.get(f"{svc.base_url}/v1/subscribers/test_hub/events", params={"limit": 1}, headers=hub)
        start = r.json()["next_cursor"]
        tokens = await start_two_children(svc, http)
        alpha, beta = tokens["Alphaexample"], tokens["Betaexample"]
        # and one issued just before Alpha's delivery, kept by the attacker
        r = await http.get(f"{svc.base_url}/v1/subscribers/test_hub/events", params={"after": start}, headers=hub)
        before = [d["cursor"] for d in r.json()["deliveries"]]
        assert (await http.post(f"{svc.base_url}/v1/admin/keys/shred/{alpha}",
                                headers=svc.headers("admin"))).status_code == 200
        await wait_for(svc, http, "test_hub", lambda e: notices(e))

        served = [(await pull_all(svc, http, "test_hub", after=start))[0]]  # the start, explicitly
        served += [(await pull_all(svc, http, "test_hub", after=c))[0] for c in [start, *before]]
        served.append((await pull_all(svc, http, "test_hub"))[0])  # `after` omitted, nothing acknowledged
        ack = await http.post(f"{svc.base_url}/v1/subscribers/test_hub/ack", json={"cursor": start}, headers=hub)
        assert ack.status_code == 200
        served.append((await pull_all(svc, http, "test_hub"))[0])  # resuming from an acknowledged start
        served.append(await sse_events(svc, http, "test_hub"))  # server-sent events from the start
        # one delivery at a time: the cursor moves past every hidden copy and never stalls on one
        cursor, paged = start, []
        for _ in range(10):
            r = await http.get(f"{svc.base_url}/v1/subscribers/test_hub/events", params={"after": cursor, "limit": 1},
                               headers=hub)
            page = r.json()
            paged += [svc.client_for("test_hub").open(base64.b64decode(d["sealed"])) for d in page["deliveries"]]
            if page["next_cursor"] == cursor:
                break
            cursor = page["next_cursor"]
        served.append(paged)
        for reading in served:
            assert [e["event_type"] for e in about(reading, alpha)] in ([], ["person.erased"])
            assert not any(e["event_type"] == "person.identified" for e in about(reading, alpha))
        assert [e["event_type"] for e in about(paged, beta)] == ["person.identified", "health.urgent_care_attendance"]
        assert [e["event_type"] for e in about(served[-2], alpha)] == ["person.erased"]  # the stream tells, too


async def test_a_resend_or_a_forgetful_code_path_cannot_re_encrypt_an_erased_childs_record(kafka_bootstrap, tmp_path):
    """No new data key is ever made for an erased child's old records, and nothing of them is shared or replayed
    again: not by a resend, a direct protect, a share worker that lost its bookkeeping, or a policy replay."""
    protocol = protocol_file(tmp_path, other_takes_persons=True)
    async with running_service(tmp_path, kafka_bootstrap, protocol=str(protocol)) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        tokens = await start_two_children(svc, http)
        alpha = tokens["Alphaexample"]
        events_topic = svc.settings.topics.events
        [old] = [decode(m.value) for m in await read_topic(kafka_bootstrap, events_topic)
                 if m.key.decode() == alpha]
        assert (await http.post(f"{svc.base_url}/v1/admin/keys/shred/{alpha}",
                                headers=svc.headers("admin"))).status_code == 200
        await wait_for(svc, http, "test_hub", lambda e: notices(e))
        keys_before = svc.runtime.keys.status()["data_keys"]
        published = len(await read_topic(kafka_bootstrap, events_topic))

        # the same record three times at once, then beside a record about another child
        answers = await asyncio.gather(*(post(svc, http, ALPHA) for _ in range(3)))
        assert [a.status_code for a in answers] == [422, 422, 422]
        assert all(x["reason"] == ERASED_RESEND for a in answers for x in a.json()["rejections"])
        assert (await post(svc, http, BETA)).status_code == 202  # Beta's own resend: a duplicate, as ever
        assert len(await read_topic(kafka_bootstrap, events_topic)) == published + 1
        assert svc.runtime.keys.status()["data_keys"]["active"] == keys_before["active"]

        # code that skips intake's check: the keystore itself refuses the old event
        revealed = svc.runtime.reveal(old).event
        with pytest.raises(ErasedData):
            svc.runtime.protect(revealed)
        assert svc.runtime.keys.status()["data_keys"]["active"] == keys_before["active"]
        # nothing of Alpha came back for the hub
        hub, _ = await pull_all(svc, http, "test_hub")
        assert [e["event_type"] for e in about(hub, alpha)] == ["person.erased"]

        # a share worker that lost its bookkeeping re-reads the old event: it shares nothing of an erased child,
        # even with a subscriber whose rule no shredded field could stop
        deliver = svc.settings.topics.deliver("test_other")
        held = len(await read_topic(kafka_bootstrap, deliver))
        svc.runtime.delivered.db.execute("DELETE FROM delivered")
        again = [m for m in await read_topic(kafka_bootstrap, events_topic)
                 if m.key.decode() == alpha and decode(m.value)["event_id"] == old["event_id"]]
        assert len(again) == 1
        await process_batch(svc.runtime, again)
        assert len(await read_topic(kafka_bootstrap, deliver)) == held
        # `policy diff --replay` reads the events topic: the erased child's events are not among what it reads
        replayed = await replay_events(svc.settings)
        assert [e["event_type"] for e in replayed if e["subject"]["linkage"]["token"] == alpha] == ["person.erased"]
        assert any(e["subject"]["linkage"]["token"] == tokens["Betaexample"] for e in replayed)


async def test_a_merged_child_shredded_by_its_old_token_is_erased_under_every_token(kafka_bootstrap, tmp_path):
    """Erasure reaches every token a child carried: shredding by a token folded in by a merge hides, refuses and
    announces the child under all of them."""
    async with running_service(tmp_path, kafka_bootstrap, protocol=str(protocol_file(tmp_path))) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        async def send(agency: str, body: bytes, content_type: str, system: str | None = None) -> httpx.Response:
            headers = svc.headers(f"intake:{agency}", **{"Content-Type": content_type})
            if system:
                headers["X-Source-System"] = system
            return await http.post(f"{svc.base_url}/v1/records/{agency}", content=body, headers=headers)

        episodes = EPISODES.format(child=7, day="01").encode()
        care = (await send("social_care", episodes, "text/csv", "999")).json()["events"]
        school = (await send("education", BY_NAME["education.ctf"].make(7), "application/xml")).json()["events"]
        census = await send("social_care", BY_NAME["social_care.cin"].make(7), "application/xml")
        assert census.status_code == 202 and census.json()["events"][0]["event_type"] == "person.linked"
        raw = {decode(m.value)["event_id"]: m.key.decode()
               for m in await read_topic(kafka_bootstrap, svc.settings.topics.events)}
        care_token, school_token = raw[care[0]["event_id"]], raw[school[0]["event_id"]]
        hub = await wait_for(svc, http, "test_hub", lambda e: about(e, school_token))

        r = await http.post(f"{svc.base_url}/v1/admin/keys/shred/{care_token}", headers=svc.headers("admin"))
        assert r.status_code == 200 and set(r.json()["tokens"]) == {care_token, school_token}
        hub = await wait_for(svc, http, "test_hub", lambda e: notices(e))
        [notice] = notices(hub)
        assert set(notice["payload"]["erased_tokens"]) == {care_token, school_token}
        for token in (care_token, school_token):
            assert about(hub, token) in ([], [notice])
        # the care episodes resent: the register now files them under the surviving token; still refused
        again = await send("social_care", episodes, "text/csv", "999")
        assert again.status_code == 422 and [x["reason"] for x in again.json()["rejections"]] == [ERASED_RESEND]


async def test_an_erasure_of_nobody_is_refused_and_recorded_nowhere(kafka_bootstrap, tmp_path):
    """A mistyped or invented token is not 'erased': the answer would say a child was erased while nothing was, and
    the register would owe a notice about nobody."""
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
        invented = "lt1_" + "Q" * 43
        r = await http.post(f"{svc.base_url}/v1/admin/keys/shred/{invented}", headers=svc.headers("admin"))
        assert r.status_code == 404 and invented not in r.text
        assert not svc.runtime.erasures.is_erased(invented)
