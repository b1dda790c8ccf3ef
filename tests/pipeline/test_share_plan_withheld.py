"""One audit record for an event's plain withholds (broker/audit/withheld.py), old against new on the bench's mix.

The reference is session 8's share plan: one `decision` record per subscriber (`plain_withhold` never true, so
every decision takes the old path). The audit store expands each group into those records, so a store fed the new
plan must be byte for byte the store fed the old records, in the order the new plan chains them (within one event,
its plain withholds after its other records: all of one time); and then every IG-facing view is the same.
"""

from __future__ import annotations

import io
import itertools
import json
import shutil
import sqlite3
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import broker.audit.record as audit_record_module
import broker.pipeline.share_plan as share_plan
from broker.audit.digest import read_digest
from broker.audit.export import write_csv, write_jsonl
from broker.audit.fhir import fhir_bundle
from broker.audit.keys import PUBLIC_KEY_FILE, SIGNING_KEY_FILE
from broker.audit.record import AuditRecordError, validate_record
from broker.audit.sar import recipient_words, subject_access_report
from broker.audit.store import AuditStore, open_audit_store
from broker.audit.withheld import KIND, expand
from broker.bench.share_mix import NOW, share_mix
from broker.pipeline.share_plan import IDENTITY, REDECIDED
from broker.service.as_decided import recorded_decision
from tests.audit.igapp import build_ig_app

CLOCK = "2026-12-01T12:30:00.000Z"


def session8_plans(mix: Any, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The plans as session 8 made them: every decision its own record."""
    with monkeypatch.context() as m:
        m.setattr(share_plan, "plain_withhold", lambda _decision: False)
        return list(mix.plan_all())


def _plain(r: dict[str, Any]) -> bool:
    return (r["kind"] == "decision" and r["outcome"] == "withhold" and "rule_id" not in r
            and "human_decision" not in r)


def in_new_order(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Session 8's records of a batch, each event's plain withholds moved after its other records (stable). An
    event's records are a run of its id: an identity event released once the child's case opens later in the batch
    has a second run, after the opening event's (share_plan.py), which stays where it is."""
    runs = [list(rs) for _, rs in itertools.groupby(records, key=lambda r: r.get("event_id", r["record_id"]))]
    return [r for rs in runs for r in [*(r for r in rs if not _plain(r)), *filter(_plain, rs)]]


@pytest.fixture
def fixed_ids(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The random record ids (delivered records) drawn from one sequence per run, so two runs can match."""
    def restart() -> None:
        counter = itertools.count()
        monkeypatch.setattr(audit_record_module.uuid, "uuid4", lambda: uuid.UUID(int=next(counter) + 1, version=4))
    return restart


def _store(where: Path, key_from: Path | None = None) -> AuditStore:
    where.mkdir()
    if key_from is not None:  # the same signing key: the checkpoints' signatures must match too
        for name in (SIGNING_KEY_FILE, PUBLIC_KEY_FILE):
            shutil.copy2(key_from / name, where / name)
    return open_audit_store(where, create_key=True, checkpoint_every=500, clock=lambda: CLOCK)


def views(store: AuditStore, mix: Any, subjects: list[str], decision_ids: list[str], key_dir: Path) -> dict[str, Any]:
    """Everything IG, a subject or a partner is shown from the store."""
    key_dir.mkdir()
    ig = build_ig_app(store, key_dir)
    client, auth = TestClient(ig.app), {"Authorization": f"Bearer {ig.ig_key}"}

    def get(path: str, **params: Any) -> Any:
        answer = client.get(path, params=params, headers=auth)
        assert answer.status_code == 200, path
        return answer.json()

    out: dict[str, Any] = {"entries": list(store.entries(with_index=True)), "verify": store.verify()}
    for sub in mix.protocol.subscribers:
        out[f"search {sub}"] = get("/v1/ig/search", subscriber=sub, limit=1000)
        out[f"disclosures {sub}"] = get(f"/v1/ig/subscribers/{sub}/disclosures")
    digests = [p for p, found in mix.protocol.partners.items() if found.disclosure_digest]
    assert digests  # the sample protocol tells some partners
    for partner in digests:
        out[f"digest {partner}"] = read_digest(store, mix.protocol, partner, date=NOW[:10],
                                               time_zone="Europe/London", generated_at=CLOCK)
    out["search withhold decisions"] = get("/v1/ig/search", kind="decision", limit=1000)
    recipients = recipient_words(mix.protocol)
    for subject in subjects:
        out[f"timeline {subject}"] = get(f"/v1/ig/children/{subject}/timeline")
        out[f"sar {subject}"] = subject_access_report(subject, store.every_disclosure(subject=subject),
                                                      store.timeline(subject), CLOCK, store.verify(),
                                                      recipients=recipients)
    out["as decided"] = [recorded_decision(store, d) for d in decision_ids]
    out["verification"] = {k: v for k, v in get("/v1/ig/verification").items() if k != "checked_at"}  # (the clock)
    out["fhir"] = fhir_bundle(store.entries(), CLOCK)
    jsonl, csv = io.StringIO(), io.StringIO()
    head = store.head()
    write_jsonl(jsonl, store.entries(), store.checkpoints(), store.public_key, CLOCK,  # type: ignore[arg-type]
                checkpoint_every=store.checkpoint_every, head=head)
    write_csv(csv, store.entries())
    out["export jsonl"], out["export csv"] = jsonl.getvalue(), csv.getvalue()
    return out


def test_the_store_and_every_ig_view_are_the_same_from_the_groups_as_from_session8s_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixed_ids: Any) -> None:
    with share_mix(tmp_path / "mix", records=120) as mix:
        fixed_ids()
        old_plans = session8_plans(mix, monkeypatch)
        fixed_ids()
        new_plans = list(mix.plan_all())
    old_store = _store(tmp_path / "old")
    new_store = _store(tmp_path / "new", key_from=tmp_path / "old")
    for old, new in zip(old_plans, new_plans, strict=True):
        # the same records, only each event's plain withholds chained after its others
        assert Counter(json.dumps(r, sort_keys=True) for r in old.audits) == Counter(
            json.dumps(r, sort_keys=True) for r in in_new_order(list(old.audits))), "reordering lost a record"
        old_store.append(in_new_order(list(old.audits)))
        new_store.append(list(new.audits))
        assert old.decided == new.decided and len(old.deliveries) == len(new.deliveries)
    old_audits = [r for p in old_plans for r in p.audits]
    new_audits = [r for p in new_plans for r in p.audits]
    assert sum(r["kind"] == KIND for r in new_audits) > 100 and not any(r["kind"] == KIND for r in old_audits)
    assert len(new_audits) < len(old_audits) / 2  # what the change is for: fewer records on the audit topic
    assert len(json.dumps(new_audits)) < len(json.dumps(old_audits)) / 2  # and fewer bytes

    decisions = [r for r in old_audits if r["kind"] == "decision"]
    subjects = sorted({r["subject"] for r in decisions})[:12]
    ids = [r["decision_id"] for r in decisions[::7]]
    old_views = views(old_store, mix, subjects, ids, tmp_path / "old-api")
    new_views = views(new_store, mix, subjects, ids, tmp_path / "new-api")
    assert old_views["verify"].ok and old_views["entries"] and old_views["as decided"]
    assert any(r.get("outcome") == "withhold" for r in old_views["as decided"])
    assert any(d["outcome"] == "withhold" for d in old_views["search withhold decisions"]["entries"]
               for d in [d.get("record", {})] if d)
    for name in old_views:
        assert new_views[name] == old_views[name], name


def test_every_subscriber_of_every_event_has_its_decision_in_the_store(tmp_path: Path) -> None:
    # a withhold cannot go missing in the grouping: each event has one decision per subscriber, as many withheld
    # as the plan decided, and each withheld one's reason is there in full
    with share_mix(tmp_path / "mix", records=120) as mix:
        plans = list(mix.plan_all())
    store = _store(tmp_path / "s")
    for p in plans:
        store.append(list(p.audits))
    stored = [e["record"] for e in store.entries() if e["record"]["kind"] == "decision"]
    # and one more for each subscriber an identity event was withheld from and released to once the child's case
    # opened later in its batch (share_plan.py): the release, its reason saying so, after the withhold
    again = [r for r in stored if r["reason"].endswith(REDECIDED)]
    assert again and all(r["outcome"] == "deliver" and r["event_type"] in IDENTITY for r in again)
    first = {(r["event_id"], r["subscriber"]): r for r in reversed(stored)}
    assert all(first[r["event_id"], r["subscriber"]]["outcome"] == "withhold" for r in again)
    per_event: dict[str, list[str]] = {}
    for r in stored:
        if not r["reason"].endswith(REDECIDED):
            per_event.setdefault(r["event_id"], []).append(r["subscriber"])
    subscribers = sorted(mix.protocol.subscribers)
    assert per_event and all(sorted(s) == subscribers for s in per_event.values())
    decided = Counter(o for p in plans for _, o in p.decided)
    assert Counter(r["outcome"] for r in stored) == decided
    assert all(r["reason"].startswith("withheld: ") for r in stored if r["outcome"] == "withhold")
    assert store.verify().ok


def _group(**over: Any) -> dict[str, Any]:
    record = {"record_id": "6b2d0c1e-0000-5000-8000-000000000001", "kind": KIND, "time": "2026-12-01T12:00:00.000Z",
              "actor": "share", "subject": "lt1_" + "A" * 32, "event_id": "0b6c2d7e-0000-4000-8000-000000000001",
              "event_type": "person.identified", "protocol_id": "exampleshire-mash-isp", "protocol_version": "1.5.0",
              "withheld": [{"subscriber": "early_help"},
                           {"subscriber": "police_ppu", "reason": "withheld: no rule applied (r1: the case status is "
                                                                 "unknown)"}]}
    record.update(over)
    return record


def _raw(store_dir: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    conn = sqlite3.connect(store_dir / "audit.sqlite")
    conn.execute(sql, params)
    conn.commit()
    conn.close()


@pytest.mark.parametrize("edit", [
    "UPDATE audit_entry SET body = replace(body, 'the case status is unknown', 'a rule applied')"
    " WHERE kind = 'decision'",
    "UPDATE audit_entry SET body = replace(body, '\"early_help\"', '\"police_ppu\"') WHERE kind = 'decision'",
    "UPDATE audit_entry SET subscriber = 'mash_hub' WHERE kind = 'decision'",
    "DELETE FROM audit_entry WHERE seq = 1",
])
def test_an_edit_to_a_stored_withhold_from_a_group_is_caught_by_the_verifier(tmp_path: Path, edit: str) -> None:
    store = _store(tmp_path / "s")
    store.append([_group()])
    assert store.verify().ok and store.head()[0] == 2
    _raw(tmp_path / "s", edit)
    assert not store.verify().ok


def test_a_group_is_chained_as_one_ordinary_decision_record_per_subscriber(tmp_path: Path) -> None:
    store = _store(tmp_path / "s")
    store.append([_group()])
    stored = [e["record"] for e in store.entries()]
    assert stored == expand(_group()) and [validate_record(r) for r in stored] == [[], []]
    assert [r["reason"] for r in stored] == [
        "withheld: no rule shares person.identified with early_help (default deny)",
        "withheld: no rule applied (r1: the case status is unknown)"]
    # searchable as before: by subscriber and by the decision id the engine derives
    [found] = store.search(subscriber="police_ppu", kind="decision")
    assert recorded_decision(store, found["record"]["decision_id"])["outcome"] == "withhold"
    # a redelivered group (Kafka at least once) adds nothing
    assert store.append([_group(), *expand(_group())]) == [] and store.head()[0] == 2


def test_a_group_cannot_hide_or_overwrite_a_decision_already_recorded(tmp_path: Path) -> None:
    # a group naming a subscriber the event was delivered to makes that decision's own id again: the store keeps
    # the delivery's record, it cannot be turned into a withhold
    store = _store(tmp_path / "s")
    [withheld, _] = expand(_group())
    delivered = {**withheld, "outcome": "deliver", "rule_id": "r1", "reason": "delivered under rule r1"}
    store.append([delivered])
    store.append([_group()])
    by_sub = {e["record"]["subscriber"]: e["record"] for e in store.entries()}
    assert by_sub["early_help"]["outcome"] == "deliver" and by_sub["police_ppu"]["outcome"] == "withhold"
    assert store.verify().ok


@pytest.mark.parametrize("bad", [
    {"withheld": []},  # a group of nobody
    {"withheld": [{"subscriber": "early_help"}, {"subscriber": "Police PPU"}]},  # one bad name: nothing chained
    {"withheld": [{"subscriber": "early_help", "given_names": "Testchild"}]},
    {"event_type": None},
    {"withheld": [{"subscriber": "early_help", "reason": "withheld: NHS 9990000018 was seen"}]},
])
def test_a_bad_group_is_refused_whole_naming_fields_not_values(tmp_path: Path, bad: dict[str, Any]) -> None:
    record = {k: v for k, v in _group(**bad).items() if v is not None}
    store = _store(tmp_path / "s")
    with pytest.raises(AuditRecordError) as refused:
        store.append([record])
    assert "Testchild" not in str(refused.value) and "9990000018" not in str(refused.value)
    skipped: list[int] = []
    assert store.append([record], on_invalid=lambda i, _: skipped.append(i)) == [] and skipped == [0]
    assert store.head()[0] == 0
