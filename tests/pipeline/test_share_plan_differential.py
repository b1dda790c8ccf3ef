"""Old against new on the bench's mix: the share plan with session 7's audit builder (every record schema-checked,
every field through `_plain`) and with `built_record` must plan exactly the same deliveries (opened with each
subscriber's key), audit records, holds, referrals, case writes and outcomes (broker/bench/RESULTS.md, Session 8)."""

from __future__ import annotations

import uuid
from typing import Any

import broker.pipeline.share_plan as share_plan
from broker.audit import record as audit
from broker.bench.share_mix import comparable, share_mix


def session7_audit_record(kind: str, *, time: str, actor: str, record_id: str | None = None,
                          **fields: Any) -> dict[str, Any]:
    """The builder as it was before this change (commit 06e7fc1), kept here as the reference."""
    record: dict[str, Any] = {"record_id": record_id or str(uuid.uuid4()), "kind": kind,
                              "time": audit.normalise_time(time), "actor": actor}
    record.update({k: audit._plain(v) for k, v in fields.items() if v is not None})
    problems = audit.validate_record(record)
    if problems:
        raise audit.AuditRecordError(problems)
    return record


def test_the_share_plan_is_unchanged_by_building_its_records_unchecked(tmp_path, monkeypatch) -> None:
    with share_mix(tmp_path, records=120) as mix:
        new = comparable(list(mix.plan_all()), mix.private_keys)
        monkeypatch.setattr(share_plan, "built_record", session7_audit_record)
        old = comparable(list(mix.plan_all()), mix.private_keys)
    assert new["deliveries"] and new["audits"] and new["case_writes"]  # the mix delivers, audits, opens cases
    assert {k: len(v) for k, v in new.items()} == {k: len(v) for k, v in old.items()}
    for part in old:
        assert new[part] == old[part], part
