"""The hub watch reveals only the fields its planner reads (issue 16; broker/pipeline/hub/reveal.py), on the bench's
synthetic mix protected with a real key store: the plan is the same as from the whole event, far fewer ciphertexts
are opened, no name, identifier or narrative is in the clear, and an erased child's event is still left out.

The cost measurements at the end skip unless `--benchmark-enable`: `nice -n 19 .venv/bin/python -m pytest
tests/hub/test_hub_reveal.py --benchmark-enable --benchmark-timer=time.process_time -p no:cacheprovider` (CPU time,
so that a loaded host does not count other processes' work; figures in the README's hub section).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from adapters.kit.interface import AdaptContext
from adapters.kit.registry import select
from broker.bench.records import mix, nhs_number, pupil_number, usable_formats
from broker.bench.stages import RECEIVED, StageKit, stage_kit
from broker.crypto import protect_event, reveal_event
from broker.crypto.envelope import PREFIX, SHREDDED
from broker.pipeline.hub.calendar import build_calendar
from broker.pipeline.hub.plan import HubFacts, plan_hub
from broker.pipeline.hub.reveal import hub_view
from broker.pipeline.identify import complete
from broker.schema.validate import validate_event
from tests.hub.test_hub_core import CHILD, OTHER, event, linked

ROOT = Path(__file__).resolve().parents[2]
RECORDS = 120  # bodies of the bench's mix (several events each; 200 fictitious children, so few repeat)


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StageKit]:
    with stage_kit(tmp_path_factory.mktemp("hub-reveal")) as k:
        yield k


@pytest.fixture(scope="module")
def calendar() -> Any:
    config = yaml.safe_load((ROOT / "deploy/calendars/exampleshire.yaml").read_text())
    banks = yaml.safe_load((ROOT / "deploy/calendars/england-bank-holidays.yaml").read_text())["dates"]
    return build_calendar(config, banks)


def bench_events(kit: StageKit, records: int) -> list[dict[str, Any]]:
    """The bench's mix as canonical events, valid, in the order intake would publish them."""
    formats, _, _ = usable_formats()
    out = []
    for fmt, numbers in mix(formats, records):
        data = fmt.make(*numbers)
        ctx = AdaptContext(source="bench", received_at=RECEIVED, system=fmt.system)
        for draft in select(fmt.agency, data, source="bench", content_type=fmt.content_type).adapt(data, ctx).events:
            canonical = complete(draft, kit.linkage, RECEIVED)
            if not validate_event(canonical):
                out.append(canonical)
    return out


def hub_records(token: str, decided: bool = True) -> list[dict[str, Any]]:
    """What the bench's mix has none of: a merge, and a hub decision naming the contributions it decides on (the
    child's contact, or with `decided` False another one, which leaves the child's enquiry open)."""
    contact = event(1, "police.incident_child_present", "police", "2026-11-30T08:10:00Z", token=token)
    about = contact["event_id"] if decided else event(9, "social_care.referral", "social_care", "2026-11-01",
                                                      token=token)["event_id"]
    return [contact, linked(2, token, "lt1_" + "F" * 32, "2026-11-30T09:00:00Z"),
            event(3, "mash.decision", "broker", "2026-11-30T12:00:00Z", token=token, concerns=[about])]


@pytest.fixture(scope="module")
def protected(kit: StageKit) -> list[dict[str, Any]]:
    """Each event as it sits on the events topic (protected, then JSON)."""
    return [orjson.loads(orjson.dumps(protect_event(e, kit.keys)))
            for e in [*bench_events(kit, RECORDS), *hub_records(CHILD), *hub_records(OTHER, decided=False)]]


def ciphertexts(value: Any) -> int:
    """How many leaves revealing `value` decrypts."""
    if isinstance(value, dict):
        return sum(ciphertexts(v) for v in value.values())
    if isinstance(value, list):
        return sum(ciphertexts(v) for v in value)
    return int(isinstance(value, str) and value.startswith(PREFIX))


def whole(kit: StageKit, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [reveal_event(e, kit.keys).event for e in batch]


def cut(kit: StageKit, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [reveal_event(hub_view(e), kit.keys).event for e in batch]


def plan(events: list[dict[str, Any]], kit: StageKit, calendar: Any) -> Any:
    return plan_hub(events, HubFacts(), kit.protocol.hub, calendar, kit.protocol.risk_scales)


def test_the_plan_from_the_cut_is_the_plan_from_the_whole_event(kit: StageKit, calendar: Any,
                                                                 protected: list[dict[str, Any]]) -> None:
    from_whole, from_cut = plan(whole(kit, protected), kit, calendar), plan(cut(kit, protected), kit, calendar)
    assert from_cut == from_whole
    # the comparison is about something: the mix raises enquiries, starts clocks, and the decision closes one
    kinds = {e["event_type"] for e in from_whole.events}
    assert "mash.enquiry" in kinds and from_whole.started and from_whole.stopped and from_whole.folds
    assert [q.open for q in from_whole.enquiries.values() if q.token in (CHILD, OTHER)] == [False, True]
    assert {entry.level for _, entry in from_whole.entries} - {"unknown"}  # gradings mapped: levels were read


def test_the_cut_opens_a_few_sensitive_fields_and_no_personal_data(kit: StageKit,
                                                                   protected: list[dict[str, Any]]) -> None:
    before = sum(ciphertexts(e) for e in protected) / len(protected)
    after = [ciphertexts(hub_view(e)) for e in protected]
    assert max(after) <= 4 < before  # the risk level, its gradings, a decision's concerns
    assert sum(after) / len(after) * 10 < before
    opened = cut(kit, protected)
    revealed = orjson.dumps(opened).decode()
    assert "Example" not in revealed and "Test" not in revealed  # no fictitious name, school or narrative
    for n in range(RECORDS):
        assert nhs_number(n) not in revealed and pupil_number(n) not in revealed
    for one in opened:
        assert set(one) <= {"event_id", "event_type", "schema_version", "occurred_at", "recorded_at", "source",
                            "subject", "risk", "payload"}
        assert set(one["subject"]) == {"linkage"} and set(one["source"]) == {"agency"}
    # and the whole event did hold them: the check above looks where they would be
    assert "Example" in orjson.dumps(whole(kit, protected[:20])).decode()


def test_the_cut_keeps_only_what_it_names_whatever_the_shape() -> None:
    odd = {"event_id": "e1", "event_type": "police.incident_child_present", "schema_version": "1.5.0",
           "subject": {"linkage": {"token": CHILD}, "child": {"family_name": "enc:v1:k:x"}},
           "risk": {"level": "enc:v1:k:y", "categories": ["enc:v1:k:z"]}, "payload": ["enc:v1:k:w"],
           "source": "not a mapping", "narrative": "enc:v1:k:v"}
    assert hub_view(odd) == {"event_id": "e1", "event_type": "police.incident_child_present",
                             "schema_version": "1.5.0", "subject": {"linkage": {"token": CHILD}},
                             "risk": {"level": "enc:v1:k:y"}}


def test_an_erased_childs_event_still_shows_as_shredded(kit: StageKit) -> None:
    erased = "lt1_" + "G" * 32  # a fictitious child of its own, so the other tests keep their keys
    events = [protect_event(e, kit.keys) for e in hub_records(erased)]
    kit.keys.shred(erased)
    for e in events:
        revealed = reveal_event(hub_view(e), kit.keys)
        assert revealed.shredded and revealed.event["risk"]["level"] == SHREDDED


# --- cost: CPU per event of reveal + plan over a batch (skipped unless --benchmark-enable) ---------------------

def _measuring(benchmark: Any) -> None:
    if benchmark.disabled:
        pytest.skip("a cost measurement: run with --benchmark-enable")


@pytest.mark.parametrize("reveal", [whole, cut], ids=["whole-event", "hub-fields"])
def test_bench_reveal_and_plan_a_batch(benchmark: Any, kit: StageKit, calendar: Any,
                                       protected: list[dict[str, Any]], reveal: Any) -> None:
    _measuring(benchmark)
    benchmark.extra_info["events"] = len(protected)
    benchmark.extra_info["fields_decrypted_per_event"] = round(
        sum(ciphertexts(e if reveal is whole else hub_view(e)) for e in protected) / len(protected), 2)
    result = benchmark.pedantic(lambda: plan(reveal(kit, protected), kit, calendar), rounds=5, iterations=1)
    assert result.events
