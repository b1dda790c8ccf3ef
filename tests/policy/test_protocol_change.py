"""A protocol change recorded in the audit carries its static permission diff (broker/policy/change.py)."""

from __future__ import annotations

from pathlib import Path

from broker.audit import audit_record
from broker.policy import load_protocol
from broker.policy.change import protocol_change_diff
from tests.policy.test_prove import BROKEN_RULE, SAMPLE, SCHOOL_RULE


def test_the_change_record_carries_each_permission_that_moves(tmp_path: Path) -> None:
    data_dir, live = tmp_path / "data", tmp_path / "live"
    live.mkdir()
    protocol_file = live / "protocol.yaml"
    protocol_file.write_bytes(SAMPLE.read_bytes())
    first = protocol_change_diff(data_dir, protocol_file, load_protocol(protocol_file, prove=False), None)
    assert first["known"] is False  # the first protocol: nothing earlier to compare with
    import hashlib

    before = hashlib.sha256(protocol_file.read_bytes()).hexdigest()
    protocol_file.write_text(SAMPLE.read_text().replace(SCHOOL_RULE, BROKEN_RULE))
    second = protocol_change_diff(data_dir, protocol_file, load_protocol(protocol_file, prove=False), before)
    assert second["known"] and second["changes"] > 0
    assert {(r["subscriber"], r["from"], r["to"]) for r in second["rows"]} == {("oakfield_dsl", "withheld", "released")}
    assert all(r["path"].endswith(("pnc_id", "cro_number")) or "criminal" in r["path"] or r["path"]
               for r in second["rows"])
    # the record validates against the audit schema as it is stored
    record = audit_record("protocol_change", time="2026-05-01T09:00:00Z", actor="runtime",
                          protocol_id="exampleshire-mash-isp", protocol_version="1.4.0", content_sha256="0" * 64,
                          permission_changes=second)
    assert record["permission_changes"]["changes"] == second["changes"]
    assert (data_dir / "protocols" / f"{before}.yaml").is_file()
