"""Issue 24's targets, judged on one `mash-broker bench` report (a pure function over the report's numbers).

Each target holds for a shape of run, so a run judges the targets its shape can and says "not judged" of the rest:

- throughput: at least 2,000 events/s in files of 20 records, offered all at once (no `--rate`);
- latency: p99 under 50 ms from POST to a readable delivery, one record per request, at 500 events/s offered (or
  more), the pipeline keeping up (deciding at least 95% of the rate offered: a run that falls behind has no p99 of
  the offered load, only of its queue);
- traffic: the pipeline at least 0.5 of its own Kafka traffic pushed bare (`ratio_to_traffic_baseline`), in any run
  with the baseline;
- memory: every process (the Kafka JVM too) under 250 MB at its peak, in any run; and flat (the soak's rule) in a
  soak.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

EVENTS_PER_S = 2000.0
P99_MS, LATENCY_RATE = 50.0, 500.0
TRAFFIC_RATIO = 0.5
RSS_MB = 250.0
KEEPING_UP = 0.95  # decided / offered, below which a paced run is saturated


def _verdict(target: str, measured: Any, met: bool | None, why: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"target": target, "measured": measured, "met": met}
    if why:
        out["not_judged"] = why
    return out


def verdicts(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What this run says of each target: met True/False, or None with why it cannot tell."""
    p = report["pipeline"]
    offered = report["offered_rate"]  # events/s, or "max": all at once
    batch, rate, soak = report["batch"], 0.0 if offered == "max" else float(offered), "soak" in report
    out: dict[str, dict[str, Any]] = {}
    rate_s = round(p["events_per_s"], 1)
    if batch == 20 and not rate:
        out["throughput"] = _verdict(f">= {EVENTS_PER_S:.0f} events/s", rate_s, rate_s >= EVENTS_PER_S)
    else:
        out["throughput"] = _verdict(f">= {EVENTS_PER_S:.0f} events/s", rate_s, None,
                                     "needs files of 20 records offered at once (--batch 20, no --rate)")
    p99 = round(p["latency_ms"]["p99"], 1)
    if batch == 1 and rate >= LATENCY_RATE:
        kept_up = p["events_per_s"] >= KEEPING_UP * rate
        out["latency"] = _verdict(f"p99 < {P99_MS:.0f} ms at {LATENCY_RATE:.0f} events/s", p99,
                                  kept_up and p99 < P99_MS)
        if not kept_up:
            out["latency"]["saturated_at_events_per_s"] = rate_s
    else:
        out["latency"] = _verdict(f"p99 < {P99_MS:.0f} ms at {LATENCY_RATE:.0f} events/s", p99, None,
                                  f"needs one record per request at {LATENCY_RATE:.0f} events/s or more offered")
    ratio = report.get("ratio_to_traffic_baseline")
    out["traffic"] = (_verdict(f">= {TRAFFIC_RATIO} of its own traffic pushed bare", ratio, ratio >= TRAFFIC_RATIO)
                      if ratio is not None else
                      _verdict(f">= {TRAFFIC_RATIO} of its own traffic pushed bare", None, None,
                               "needs the bare Kafka baseline (run without --no-baseline)"))
    peaks = {name: m["peak"] for name, m in p["memory_mb"].items()}
    under = all(v < RSS_MB for v in peaks.values())
    out["memory"] = _verdict(f"every process < {RSS_MB:.0f} MB" + (", flat over the soak" if soak else ""), peaks,
                             under and (all(m["flat"] for m in p["memory_mb"].values()) if soak else True))
    return out
