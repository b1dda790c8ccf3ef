"""One child, three agencies' identifiers, one stream: the identity register through the real service and Kafka.

Care episodes arrive keyed by the LA child id, a school's file by UPN; then the CIN census return carries both. From
then on every record of the child, whichever identifier it carries, has one token, and subscribers are told which
old token it replaces. Fictitious records from the benchmark's generators (999-range NHS numbers, LA 380 UPNs).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from broker.bench.records import BY_NAME
from broker.service.messages import decode
from tests.integration.service import running_service
from tests.integration.topics import read_topic

pytestmark = pytest.mark.integration
CHILD = 7  # BENCH00007 at LA 999, UPN pupil_number(7)
EPISODES = ("CHILD,DECOM,RNE,LS,CIN,PLACE,PLACE_PROVIDER,DEC,REC,REASON_PLACE_CHANGE,HOME_POST,PL_POST,URN\r\n"
            "BENCH{child:05d},{day}/03/2024,S,C2,N1,U1,PR1,,,,ZZ99 3AA,ZZ99 3AB,SC999999\r\n")


async def _post(svc, http: httpx.AsyncClient, agency: str, body: bytes, content_type: str,
                system: str | None = None) -> list[dict]:
    headers = svc.headers(f"intake:{agency}", **{"Content-Type": content_type})
    if system:
        headers["X-Source-System"] = system
    r = await http.post(f"{svc.base_url}/v1/records/{agency}", content=body, headers=headers)
    assert r.status_code == 202, r.text
    return r.json()["events"]


async def test_records_keyed_by_different_identifiers_join_one_stream(kafka_bootstrap, tmp_path, store_url):
    """Run with the registers on SQLite and on PostgreSQL (MASH_STORE_URL, as pods sharing them would)."""
    async with running_service(tmp_path, kafka_bootstrap, store_url=store_url) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        care = await _post(svc, http, "social_care", EPISODES.format(child=CHILD, day="01").encode(), "text/csv",
                           system="999")
        school = await _post(svc, http, "education", BY_NAME["education.ctf"].make(CHILD), "application/xml")
        topic = svc.settings.topics.events
        by_id = {decode(m.value)["event_id"]: m.key.decode()
                 for m in await read_topic(kafka_bootstrap, topic, len(care) + len(school))}
        care_token, school_token = by_id[care[0]["event_id"]], by_id[school[0]["event_id"]]
        assert care_token != school_token  # two identifiers, two streams, until a record carries both

        # the admin records the family's withdrawal of consent against the care stream's token
        r = await http.put(f"{svc.base_url}/v1/admin/consent/{care_token}", headers=svc.headers("admin"),
                           json={"status": "withdrawn", "recorded_on": "2026-11-01"})
        assert r.status_code == 200 and r.json()["subject"] == care_token

        census = await _post(svc, http, "social_care", BY_NAME["social_care.cin"].make(CHILD), "application/xml")
        assert census[0]["event_type"] == "person.linked"  # announced before the record's own events
        later = await _post(svc, http, "social_care", EPISODES.format(child=CHILD, day="09").encode(), "text/csv",
                            system="999")

        messages = await read_topic(kafka_bootstrap, topic, len(care) + len(school) + len(census) + len(later))
        events = {decode(m.value)["event_id"]: (m.key.decode(), decode(m.value)) for m in messages}
        for accepted in census + later:
            assert events[accepted["event_id"]][0] == school_token  # the UPN's stream survives: the stronger id
        notice = events[census[0]["event_id"]][1]
        assert notice["payload"]["superseded_token"] == care_token
        assert notice["subject"]["linkage"]["token"] == school_token
        later_event = events[later[0]["event_id"]][1]
        assert later_event["subject"]["linkage"]["basis"] == "la_child_id"
        assert later_event["subject"]["linkage"]["via_register"] is True

        # the hub, which takes person.* events, is told: the family's withdrawal of data-protection consent has no
        # effect on a public-task share (an Art 21 objection, recorded next, would have referred it to a person)
        for _ in range(100):
            decided = svc.runtime.audit_store.search(kind="decision", subscriber="test_hub",
                                                     event_id=census[0]["event_id"])
            if decided:
                break
            await asyncio.sleep(0.1)
        assert decided and decided[0]["record"]["outcome"] == "deliver", decided[0]["record"].get("reason")
        delivered = await svc.pull_until(http, "test_hub", 1)
        assert any(d["event_type"] == "person.linked" and d["payload"]["superseded_token"] == care_token
                   for d in delivered)
        # what was recorded under the folded token binds the surviving one; the old token still finds the child
        assert svc.runtime.consent_for(school_token).status == "withdrawn"
        r = await http.put(f"{svc.base_url}/v1/admin/consent/{care_token}", headers=svc.headers("admin"),
                           json={"status": "withdrawn", "objection": True, "recorded_on": "2026-11-02"})
        assert r.json()["subject"] == school_token and svc.runtime.consent_for(school_token).objection

        # IG's audit log says which record joined the two streams, by tokens only
        for _ in range(100):
            logged = svc.runtime.audit_store.search(kind="identity_linked", subject=school_token)
            if logged:
                break
            await asyncio.sleep(0.1)
        joined = [e["record"] for e in logged if e["record"].get("superseded") == care_token]
        assert joined and joined[0]["event_id"] == census[1]["event_id"] and joined[0]["agency"] == "social_care"

        # the child's IG timeline (what a subject access request reads) covers the records under the old token
        r = await http.get(f"{svc.base_url}/v1/ig/children/{school_token}/timeline",
                           headers=svc.headers("ig_auditor"))
        assert r.status_code == 200 and set(r.json()["tokens"]) == {school_token, care_token}
        published = {e["record"]["event_id"] for e in r.json()["entries"] if e["record"]["kind"] == "event_published"}
        assert care[0]["event_id"] in published and school[0]["event_id"] in published

        # erasure reaches both tokens' data keys
        r = await http.post(f"{svc.base_url}/v1/admin/keys/shred/{care_token}", headers=svc.headers("admin"))
        assert r.status_code == 200
        assert r.json()["tokens"][0] == school_token and care_token in r.json()["tokens"]
        assert r.json()["data_keys_shredded"] >= 2
