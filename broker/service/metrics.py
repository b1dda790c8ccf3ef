"""Prometheus metrics. Labels are bounded sets (agency, event type, subscriber, outcome): never record data."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from adapters.kit.interface import Rejection


def rejection_kind(rejection: Rejection) -> str:
    if not rejection.record:
        return "input"
    return "schema" if rejection.reason.startswith("canonical schema") else "record"


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.records_in = Counter("mash_records_received_total", "Native records received at intake", ["agency"],
                                  registry=r)
        self.events_out = Counter("mash_events_published_total", "Canonical events published", ["agency"],
                                  registry=r)
        self.rejections = Counter("mash_rejections_total", "Rejected records (dead-lettered)", ["agency", "kind"],
                                  registry=r)
        self.decisions = Counter("mash_decisions_total", "Share decisions", ["subscriber", "outcome"], registry=r)
        self.duplicates = Counter("mash_duplicates_dropped_total", "Deliveries skipped as already sent",
                                  ["subscriber"], registry=r)
        self.kafka_unavailable = Counter("mash_kafka_unavailable_total", "Intake refused because Kafka did not ack",
                                         registry=r)
        self.poison = Counter("mash_poison_messages_total", "Undecodable messages dead-lettered by a worker",
                              registry=r)
        self.worker_restarts = Counter("mash_worker_restarts_total", "Worker loops restarted after a crash",
                                       registry=r)
        self.key_unwraps = Counter("mash_key_unwraps_total", "Data-key unwraps by the KMS (cache misses)",
                                   registry=r)
        self.key_failures = Counter("mash_key_failures_total", "Encryptions refused for a missing or unreachable key",
                                    registry=r)
        self.identity = Counter("mash_identity_resolutions_total", "Identity register outcomes per event "
                                "(linked: new identifiers joined a child; merged: two children's streams joined; "
                                "conflict: not linked, for review)", ["outcome"], registry=r)
        self.consumer_lag = Gauge("mash_consumer_lag", "Records behind the partition high-water mark",
                                  ["group", "topic", "partition"], registry=r)
        # The hub watch (issue 16), for the partnership's performance framework: counts only, labels from the protocol
        self.hub_enquiries = Counter("mash_hub_enquiries_total", "MASH enquiry contributions (opened: a new enquiry; "
                                     "joined: an open enquiry; folded: two enquiries merged)", ["action"], registry=r)
        self.hub_cumulative = Counter("mash_hub_cumulative_concerns_total", "Cumulative concerns raised, per protocol "
                                      "rule", ["rule"], registry=r)
        self.hub_repeat_referrals = Counter("mash_hub_repeat_referrals_total", "Referrals within the protocol's months "
                                            "of a previous referral's closure", registry=r)
        self.hub_clocks = Counter("mash_hub_clocks_total", "Timeliness clocks settled (clock: decision or encompass; "
                                  "outcome: met or breached)", ["clock", "outcome"], registry=r)
        # /insight (issue 17): operational measures as published (disclosure-controlled), never an exact small count
        self.insight_latest = Gauge("mash_insight_latest_month_total", "An operational measure's total in its latest "
                                    "month, after disclosure control (absent while suppressed); set when /insight "
                                    "computes the measures", ["measure"], registry=r)
        # the label is the kind of unit only (area, school_urn, gp_ods): a district's or school's code in a label
        # would put where harm is rising on every scrape, outside the hub's rule for mash.hotspot_rise
        self.insight_rises = Counter("mash_insight_rises_total", "Hotspot rises raised to the hub by the insight "
                                     "watch (breakdown: area, school_urn or gp_ods)", ["breakdown"], registry=r)
        self.stage_seconds = Histogram("mash_stage_seconds", "Time per pipeline stage", ["stage"], registry=r,
                                       buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0))

    def set_insight(self, totals: dict[str, int | None]) -> None:
        """The published totals of the operational measures; a suppressed one withdraws its gauge."""
        for measure, value in totals.items():
            if value is None:
                with contextlib.suppress(KeyError):  # never set: nothing to withdraw
                    self.insight_latest.remove(measure)
            else:
                self.insight_latest.labels(measure).set(value)

    def time(self, stage: str) -> Any:
        """Context manager timing one pipeline stage into mash_stage_seconds."""
        return self.stage_seconds.labels(stage).time()

    def observe_intake(self, agency: str, events: int, rejections: Iterable[Rejection]) -> None:
        self.records_in.labels(agency).inc()
        self.events_out.labels(agency).inc(events)
        for rejection in rejections:
            self.rejections.labels(agency, rejection_kind(rejection)).inc()
