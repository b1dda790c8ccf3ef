"""Guarantee: a share the law routes to a person is decided only by a person entitled to decide it, once, for
recorded value-free reasons; the referral queue neither loses nor duplicates what it holds.

Through the real service, embedded Kafka and SQLite registers (the protocol and helpers of
tests/integration/test_human_decisions.py: a health rule under s17, an objection recorded by IG).
"""

from __future__ import annotations

import json

import httpx
import pytest

from broker.service.share import process_batch
from tests.integration.service import running_service
from tests.integration.test_human_decisions import (
    HUB,
    attendance,
    audit_of,
    child_with_objection,
    delivered_ids,
    pending,
    post,
    protocol_file,
    referrals_url,
)
from tests.integration.topics import read_topic

pytestmark = pytest.mark.integration
NHS, FAMILY = "9434765838", "Gammaexample"


async def test_only_an_entitled_decider_can_decide_and_values_never_enter_the_record(kafka_bootstrap, tmp_path):
    """A referral is decided only by a decision_maker for a partner named for it, with a reason that carries no
    identifier, and never twice."""
    async with running_service(tmp_path, kafka_bootstrap, protocol=protocol_file(tmp_path)) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        await child_with_objection(svc, http, NHS, FAMILY)
        [visit] = await post(svc, http, attendance("HG0001", NHS, FAMILY, "20240304101500"))
        [referral] = await pending(svc, http, "decision_maker:test-csc", 1)
        url = referrals_url(svc, referral["referral_id"])
        share = {"decision": "share", "reason": "compelling grounds recorded at the strategy meeting"}

        # the subscriber that would receive it, IG and the administrator are not deciders: 403, list and decide
        for who in (f"subscriber:{HUB}", "ig_auditor", "admin", "intake:health"):
            assert (await http.post(url, json=share, headers=svc.headers(who))).status_code == 403, who
            assert (await http.get(referrals_url(svc), headers=svc.headers(who))).status_code == 403, who
        # a decider for a partner not named for this referral (police, for a health event) cannot decide it
        r = await http.post(url, json=share, headers=svc.headers("decision_maker:test-police"))
        assert r.status_code == 403, r.text
        r = await http.get(url, headers=svc.headers("decision_maker:test-police"))
        assert r.status_code == 404  # nor see it

        # reasons that carry values are refused, and never echoed: an NHS number (plain, spaced, hyphenated), an
        # e-mail address, a second line; so is a share in part that names nothing, or a field the event lacks
        planted = ["child's NHS number 9434765838 checked", "per 943 476 5838 record", "ref 943-476-5838",
                   "told by gamma.parent@example.org", "first line\nBetaexample Testchild", "   "]
        for reason in planted:
            r = await http.post(url, json={"decision": "share", "reason": reason},
                                headers=svc.headers("decision_maker:test-csc"))
            assert r.status_code == 422, (reason, r.text)
            assert "9434765838" not in r.text and "476" not in r.text and "example.org" not in r.text
            assert "Testchild" not in r.text
        for body in ({"decision": "share_in_part", "reason": "part only"},
                     {"decision": "share_in_part", "reason": "part only", "withhold_paths": ["subject.child.shoe"]},
                     {"decision": "share_in_part", "reason": "part only", "withhold_classifications": ["secret"]},
                     {"decision": "withhold", "reason": "no", "withhold_paths": ["subject.child.nhs_number"]}):
            r = await http.post(url, json=body, headers=svc.headers("decision_maker:test-csc"))
            assert r.status_code == 422, (body, r.text)
            assert "shoe" not in r.text and "secret" not in r.text
        assert svc.runtime.referrals.get(referral["referral_id"]).status == "pending"
        assert visit not in await delivered_ids(svc)

        # the entitled decider decides once; a retry, by anyone, is a conflict and changes nothing
        r = await http.post(url, json=share, headers=svc.headers("decision_maker:test-icb"))
        assert r.status_code == 200 and r.json()["delivered"] is True, r.text
        for who in ("decision_maker:test-icb", "decision_maker:test-csc"):
            r = await http.post(url, json={"decision": "withhold", "reason": "changed my mind"},
                                headers=svc.headers(who))
            assert r.status_code == 409, r.text
        humans = await audit_of(svc, "human_decision", 1)
        assert len(humans) == 1 and humans[0]["actor"].startswith("decision_maker:test-icb:")
        records = json.dumps([e["record"] for e in svc.runtime.audit_store.search(limit=10000)])
        assert "9434765838" not in records and "example.org" not in records and "changed my mind" not in records
        assert (await delivered_ids(svc)).count(visit) == 1


async def test_a_redelivered_batch_neither_duplicates_nor_reopens_referrals(kafka_bootstrap, tmp_path):
    """A batch the share worker processes again (Kafka redelivery after a crash) adds no referral and does not put a
    decided referral back in the queue."""
    async with running_service(tmp_path, kafka_bootstrap, protocol=protocol_file(tmp_path)) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        await child_with_objection(svc, http, NHS, FAMILY)
        visits = [(await post(svc, http, attendance(f"HG010{i}", NHS, FAMILY, f"2024030{i}101500")))[0]
                  for i in (1, 2)]
        found = await pending(svc, http, "decision_maker:test-csc", 2)
        assert sorted(r["event_id"] for r in found) == sorted(visits)
        decided = found[0]
        r = await http.post(referrals_url(svc, decided["referral_id"]), headers=svc.headers("decision_maker:test-csc"),
                            json={"decision": "withhold", "reason": "no compelling grounds"})
        assert r.status_code == 200, r.text
        before = svc.runtime.referrals.count(status=None)

        events = await read_topic(svc.runtime.bootstrap, svc.settings.topics.events)
        await process_batch(svc.runtime, events)  # the whole stream again, twice, as a crashed worker would
        await process_batch(svc.runtime, events + events)

        assert svc.runtime.referrals.count(status=None) == before == 2
        assert svc.runtime.referrals.get(decided["referral_id"]).status == "withhold"
        r = await http.get(referrals_url(svc), headers=svc.headers("decision_maker:test-csc"))
        assert [x["event_id"] for x in r.json()["referrals"]] == [e for e in visits if e != decided["event_id"]]
        assert not set(visits) & set(await delivered_ids(svc))
