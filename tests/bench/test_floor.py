"""`mash-broker bench floor`: the pipeline's own work per event in one process (broker/bench/floor.py). No figure
is asserted; what is checked is that every part did its real work, so the floor cannot be "fast" by skipping any:
each event decided for every subscriber, the deliveries sealed, the hub's history kept, every audit record chained."""

from __future__ import annotations

import json
from collections import Counter

from typer.testing import CliRunner

from broker.bench.floor import PARTS, floor_kit, measure_floor
from broker.cli.bench import app


def test_every_part_of_the_floor_does_the_pipelines_real_work(tmp_path):
    with floor_kit(tmp_path) as kit:
        report = measure_floor(kit, records=40, batch=5)
        entries = list(kit.audit.entries())
        history = kit.history.db.query("SELECT COUNT(*) FROM history")[0][0]
        subscribers = len(kit.protocol.subscribers)
    kinds = Counter(e["record"]["kind"] if "record" in e else e["kind"] for e in entries)
    decided = {(e.get("record", e).get("event_id"), e.get("record", e).get("subscriber")) for e in entries
               if e.get("record", e)["kind"] == "decision"}
    timed_and_warm_events = len({event for event, _ in decided})
    assert report["events"] >= report["records"]
    assert timed_and_warm_events >= report["events"]  # warm-up events are decided too
    assert len(decided) == timed_and_warm_events * subscribers  # every event decided for every subscriber
    assert kinds["delivered"] > 0 and kinds["record_received"] > 0  # sealed deliveries; intake's own records
    assert history > 0  # the hub watch's history register written
    assert report["chain_verifies"] is True
    assert all(report["cpu_us_per_event"][part] > 0 for part in PARTS)
    assert abs(sum(report["cpu_us_per_event"].values()) - report["cpu_us_per_event_total"]) < 1


def test_bench_floor_cli_reports_each_part_as_json(tmp_path):
    result = CliRunner().invoke(app, ["floor", "--records", "20", "--batch", "20", "--json", "--workdir",
                                      str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["cpu_us_per_event"]) == set(PARTS)
    assert report["events_per_s_per_core"] > 0 and report["audit_records_per_event"] > 1
