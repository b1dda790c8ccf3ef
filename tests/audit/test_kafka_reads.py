"""Kafka reads as audit facts (broker/audit/kafka_reads.py): which committed offsets become "read up to" records,
which deliveries an offset covers, and what the store's disclosures and timeline then say. Synthetic ids only."""

from __future__ import annotations

from broker.audit import audit_record
from broker.audit.disclosures import disclosures
from broker.audit.kafka_reads import Committed, first_reads, read_at, read_up_to_records, with_positions
from broker.audit.store import AuditStore
from tests.audit.conftest import CHILD_A, CHILD_B, _eid

TOPIC, OTHER_TOPIC = "sg.deliver.early_help", "sg.deliver.mash_hub"
TOPICS = {TOPIC: "early_help", OTHER_TOPIC: "mash_hub"}
T0, T1, T2 = "2026-03-02T10:00:00.000Z", "2026-03-02T10:05:00.000Z", "2026-03-02T10:10:00.000Z"


def _decision(n: int, child: str = CHILD_A, subscriber: str = "early_help") -> dict:
    return audit_record("decision", time=T0, actor="share", subject=child, event_id=_eid(n),
                        event_type="health.urgent_care_attendance", subscriber=subscriber, decision_id=f"dec-{n}",
                        outcome="deliver", rule_id="health-to-early-help", lawful_basis=["uk_gdpr_art6_1_e"])


def _delivered(n: int, offset: int | None, child: str = CHILD_A, subscriber: str = "early_help",
               partition: int = 0) -> dict:
    place = {} if offset is None else {"topic": f"sg.deliver.{subscriber}", "partition": partition,
                                       "offset": offset}
    return audit_record("delivered", time=T0, actor="share", subject=child, subscriber=subscriber,
                        event_id=_eid(n), decision_id=f"dec-{n}", **place)


def _up_to(offset: int, time: str, group: str = "eh-case-system", partition: int = 0) -> dict:
    [record], _ = read_up_to_records({}, [Committed(group, TOPIC, partition, offset)], TOPICS, time=time)
    return record


# --- which committed offsets are reads -----------------------------------------------------------------------------
def test_only_an_advance_on_a_delivery_topic_is_a_read() -> None:
    previous = {("eh-case-system", TOPIC, 0): 5}
    committed = [Committed("eh-case-system", TOPIC, 0, 5),  # unchanged
                 Committed("eh-case-system", TOPIC, 1, 3),  # a partition seen for the first time
                 Committed("reset-group", TOPIC, 0, 0),  # nothing read
                 Committed("eh-case-system", "sg.events", 0, 99),  # not a delivery topic
                 Committed("hub-app", OTHER_TOPIC, 0, 7)]
    records, known = read_up_to_records(previous, committed, TOPICS, time=T1)
    assert [(r["group"], r["subscriber"], r["partition"], r["offset"]) for r in records] == [
        ("eh-case-system", "early_help", 1, 3), ("hub-app", "mash_hub", 0, 7)]
    assert known[("eh-case-system", TOPIC, 0)] == 5 and known[("hub-app", OTHER_TOPIC, 0)] == 7
    assert all(r["kind"] == "delivery_read_up_to" and r["topic"] in TOPICS for r in records)


def test_a_group_that_goes_back_is_no_new_read() -> None:
    records, known = read_up_to_records({("g", TOPIC, 0): 9}, [Committed("g", TOPIC, 0, 4)], TOPICS, time=T1)
    assert records == [] and known[("g", TOPIC, 0)] == 9


def test_the_same_advance_seen_twice_has_one_record_id() -> None:
    """Two processes polling, or a restart that forgot what it saw: the store drops the repeated id."""
    assert _up_to(3, T1)["record_id"] == _up_to(3, T2)["record_id"] != _up_to(4, T1)["record_id"]


def test_the_store_keeps_one_record_of_one_advance(store: AuditStore) -> None:
    store.append([_up_to(3, T1)])
    store.append([_up_to(3, T2)])
    assert len(store.search(kind="delivery_read_up_to")) == 1


# --- which deliveries an offset covers -----------------------------------------------------------------------------
def test_an_offset_covers_the_deliveries_below_it_on_its_partition() -> None:
    ups = [_up_to(3, T1), _up_to(8, T2), _up_to(50, T0, partition=1)]
    assert read_at(_delivered(1, 2), ups) == T1
    assert read_at(_delivered(1, 3), ups) == T2  # the committed offset is the next to read: 3 is not read at T1
    assert read_at(_delivered(1, 8), ups) is None
    assert read_at(_delivered(1, 2, partition=2), ups) is None  # another partition
    assert read_at(_delivered(1, 2, subscriber="mash_hub"), ups) is None  # another subscriber's topic
    assert read_at(_delivered(1, None), ups) is None  # recorded before positions were kept


def test_the_earliest_of_two_groups_is_the_read() -> None:
    assert read_at(_delivered(1, 2), [_up_to(3, T2, group="late"), _up_to(5, T1, group="early")]) == T1


def test_positions_go_only_into_the_matching_delivered_records() -> None:
    records = [_decision(1), _delivered(1, None), _delivered(2, None, subscriber="mash_hub")]
    out = with_positions(records, {("early_help", "dec-1"): (TOPIC, 0, 41)})
    assert out[0] == records[0] and out[2] == records[2]
    assert (out[1]["topic"], out[1]["partition"], out[1]["offset"]) == (TOPIC, 0, 41)
    assert "offset" not in records[1]  # the planner's records are left as they were


def test_first_reads_are_the_records_that_first_covered_a_delivery() -> None:
    early, later, unrelated = _up_to(3, T1), _up_to(8, T2), _up_to(1, T0)
    assert first_reads([_delivered(1, 2), _delivered(2, 5)], [early, later, unrelated]) == [early, later]


# --- what IG reads -------------------------------------------------------------------------------------------------
def _entries(records: list[dict]) -> list[dict]:
    return [{"seq": i + 1, "record": r} for i, r in enumerate(records)]


def test_a_disclosure_is_read_by_kafka_or_by_http_whichever_came_first() -> None:
    http_read = audit_record("delivery_read", time=T2, actor="subscriber:early_help", subscriber="early_help",
                             event_id=_eid(2), decision_id="dec-2")
    found = disclosures(_entries([_decision(1), _delivered(1, 0), _decision(2), _delivered(2, 1), _decision(3),
                                  _delivered(3, 2), http_read, _up_to(2, T1)]))
    assert [(d.decision_id, d.read_at, d.read_via) for d in found] == [
        ("dec-1", T1, "kafka"), ("dec-2", T1, "kafka"), ("dec-3", None, None)]


def test_the_store_says_read_for_a_kafka_recipient(store: AuditStore) -> None:
    """Before, a Kafka subscriber's disclosures always said "not yet read"."""
    store.append([_decision(1), _delivered(1, 0), _decision(2, CHILD_B), _delivered(2, 1, CHILD_B),
                         _up_to(1, T1)])
    by_subscriber = {d.decision_id: d.read_at for d in store.disclosures(subscriber="early_help")}
    assert by_subscriber == {"dec-1": T1, "dec-2": None}
    [mine] = store.disclosures(subject=CHILD_A)
    assert mine.read_at == T1 and mine.read_via == "kafka"


def test_a_childs_timeline_shows_only_the_reads_of_its_own_deliveries(store: AuditStore) -> None:
    store.append([_decision(1), _delivered(1, 0), _decision(2, CHILD_B), _delivered(2, 4, CHILD_B),
                         _up_to(1, T1), _up_to(3, T1, group="other-app"), _up_to(5, T2)])
    a = [e["record"] for e in store.timeline(CHILD_A) if e["record"]["kind"] == "delivery_read_up_to"]
    b = [e["record"] for e in store.timeline(CHILD_B) if e["record"]["kind"] == "delivery_read_up_to"]
    assert [(r["group"], r["offset"]) for r in a] == [("eh-case-system", 1), ("other-app", 3)]
    assert [(r["group"], r["offset"]) for r in b] == [("eh-case-system", 5)]
