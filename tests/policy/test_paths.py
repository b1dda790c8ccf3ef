"""present_paths names leaves exactly as the schema module's iter_leaves does, on any shape."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.policy import present_paths
from broker.schema.classification import iter_leaves
from tests.policy.conftest import make_event

keys = st.sampled_from(["a", "b", "payload", "subject", "lines"])
values = st.recursive(st.none() | st.integers() | st.text(max_size=3),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
                      max_leaves=20)


def reference(event) -> list[str]:
    return list(dict.fromkeys(path for path, _ in iter_leaves(event)))


def test_present_paths_of_a_canonical_event() -> None:
    event = make_event("police.incident_child_present", "police",
                       {"incident_reference": "TEST/0001", "offences": [{"code": "A"}, {"code": "B"}]})
    assert present_paths(event) == reference(event)
    assert "payload.offences[].code" in present_paths(event)
    assert "subject.related_people[].person.given_names[]" in present_paths(event)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(keys, values, max_size=4))
def test_present_paths_matches_iter_leaves_on_any_shape(event) -> None:
    assert present_paths(event) == reference(event)
