import httpx, pytest
from broker.service.messages import decode
from tests.integration.service import running_service
from tests.integration.topics import read_topic
from tests.integration.test_identity_linkage import EPISODES, CHILD, _post
from broker.bench.records import BY_NAME

pytestmark = pytest.mark.integration

async def test_dbg(kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
        care = await _post(svc, http, "social_care", EPISODES.format(child=CHILD, day="01").encode(), "text/csv",
                           system="999")
        school = await _post(svc, http, "education", BY_NAME["education.ctf"].make(CHILD), "application/xml")
        msgs = await read_topic(kafka_bootstrap, svc.settings.topics.events)
        print("CARE", [(e["event_id"], e["event_type"]) for e in care])
        print("SCHOOL", [(e["event_id"], e["event_type"]) for e in school])
        print("TOPIC", [(decode(m.value)["event_id"], decode(m.value)["event_type"], m.partition) for m in msgs])
