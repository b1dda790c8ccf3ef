"""The release projection skips subtrees by a precomputed prefix set and memoises it per decision: the view is
exactly the plain leaf-by-leaf projection's, on any shape and any decision; decision ids are plain UUIDv5."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.policy import PolicyError, release
from broker.policy.decision import DECISION_NAMESPACE, Decision, decision_id, uuid5_text
from broker.policy.masks import MASKS as MASK_REGISTRY
from broker.policy.masks import apply_mask
from broker.policy.release import wanted_prefixes
from tests.policy.conftest import MASK_KEY

_DROP = object()
MASKS = list(MASK_REGISTRY)  # every registered mask kind: a new one is exercised without editing this file


def reference_view(event: Mapping[str, Any], decision: Decision) -> dict[str, Any]:
    """Every leaf visited, kept if released, transformed if masked; empty containers dropped."""
    released, masks = set(decision.released), dict(decision.masked)
    on = str(event.get("occurred_at", ""))[:10] or None

    def project(value: Any, path: str) -> Any:
        if isinstance(value, Mapping):
            out = {k: project(v, f"{path}.{k}" if path else k) for k, v in value.items()}
            return {k: v for k, v in out.items() if v is not _DROP} or _DROP
        if isinstance(value, list):
            return [x for x in (project(v, path + "[]") for v in value) if x is not _DROP] or _DROP
        if path in released:
            return value
        if path in masks:
            return apply_mask(masks[path], value, key=MASK_KEY, subscriber=decision.subscriber, event_date=on)
        return _DROP

    view = project(event, "")
    return {} if view is _DROP else view


def test_wanted_prefixes_name_every_container_on_the_way() -> None:
    assert wanted_prefixes(["subject.child.addresses[].lines[]", "event_id"]) == {
        "subject", "subject.child", "subject.child.addresses", "subject.child.addresses[]",
        "subject.child.addresses[].lines", "subject.child.addresses[].lines[]", "event_id"}
    assert wanted_prefixes([]) == frozenset()


keys = st.sampled_from(["a", "b", "x.y", "", "lines"])
leaves = st.none() | st.booleans() | st.integers() | st.sampled_from(["", "Testchild", "2016-05-14", "ZZ1 1ZZ"])
shapes = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3)
                      | st.dictionaries(keys, inner, max_size=2).map(MappingProxyType), max_leaves=20)


def _paths(value: Any, path: str = "") -> set[str]:
    if isinstance(value, Mapping):
        return set().union(*(_paths(v, f"{path}.{k}" if path else k) for k, v in value.items()))
    if isinstance(value, list):
        return set().union(*(_paths(v, path + "[]") for v in value))
    return {path}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, shapes, max_size=4), st.data())
def test_release_matches_the_plain_projection(body: dict[str, Any], data: st.DataObject) -> None:
    event = {"event_id": "E-1", "occurred_at": "2026-05-04", **body}
    paths = sorted(_paths(event) | {"a.q", "b[]", "zz"})
    released = tuple(data.draw(st.lists(st.sampled_from(paths), max_size=len(paths), unique=True)))
    masked = tuple((p, data.draw(st.sampled_from(MASKS))) for p in data.draw(st.lists(st.sampled_from(paths),
                                                                                      max_size=4, unique=True)))
    decision = Decision("D-1", "E-1", "test.type", "hub", "deliver", "r1", ("6(1)(e)",), "triage", released, masked,
                        (), "test-isp", "1", "test")
    expected = reference_view(event, decision)
    for _ in range(2):  # the second time from the memoised plan
        view = release(event, decision, mask_key=MASK_KEY)
        assert view.pop("delivery")["decision_id"] == "D-1"
        assert repr(view) == repr(expected)


def test_a_decision_with_lists_is_not_memoised_stale() -> None:
    event = {"event_id": "E-1", "a": "Testchild", "b": "other"}
    released = ["a"]
    decision = Decision("D-1", "E-1", "t", "hub", "deliver", "r1", (), "triage", released, (), (), "p", "1", "why")
    assert "a" in release(event, decision, mask_key=MASK_KEY)
    released[0] = "b"  # a caller's mutable list changed in place
    view = release(event, decision, mask_key=MASK_KEY)
    assert "b" in view and "a" not in view


def test_withhold_and_other_event_still_refused() -> None:
    decision = Decision("D-1", "E-1", "t", "hub", "withhold", None, (), None, (), (), (), "p", "1", "why")
    with pytest.raises(PolicyError):
        release({"event_id": "E-1"}, decision, mask_key=MASK_KEY)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30), st.text(max_size=10))
def test_decision_id_is_uuid5(event_id: str, subscriber: str) -> None:
    name = f"{event_id}\x1f{subscriber}\x1ftest-isp\x1f1"
    assert decision_id(event_id, subscriber, "test-isp", "1") == str(uuid.uuid5(DECISION_NAMESPACE, name))
    assert uuid5_text(DECISION_NAMESPACE.bytes, name) == str(uuid.uuid5(DECISION_NAMESPACE, name))
    # a withhold's id names its outcome, so a later release of the same event is another record in the audit
    withhold = decision_id(event_id, subscriber, "test-isp", "1", "withhold")
    assert withhold == str(uuid.uuid5(DECISION_NAMESPACE, f"{name}\x1fwithhold")) != decision_id(
        event_id, subscriber, "test-isp", "1")


def test_a_delivery_keeps_the_id_it_always_had() -> None:
    """Deliveries, held deliveries and human decisions name decisions by id: a delivery's id is the one stores
    written before session 13 hold (pinned here), and the engine gives withholds and deliveries their own."""
    assert decision_id("E-1", "hub", "sample-partnership", "3") == str(uuid.uuid5(
        DECISION_NAMESPACE, "E-1\x1fhub\x1fsample-partnership\x1f3"))
