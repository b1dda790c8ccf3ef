"""A field outcome that says `mask` but names no mask kind is withheld, never passed on as a mask of kind None.

Compile refuses such a rule (the protocol schema requires `mask` with `action: mask`), so this guards the engine
itself: found when mypy typed `partition` (masked paths carry a kind: tuple[str, str]).
"""

from __future__ import annotations

from broker.policy.engine import partition
from broker.policy.model import FieldOutcome


def test_mask_without_a_kind_is_withheld() -> None:
    table = {"subject.child.family_name": FieldOutcome("mask", None, "a rule with no mask kind"),
             "subject.child.birth_date": FieldOutcome("mask", "year_only", "rules[0].fields[0]"),
             "event_type": FieldOutcome("release", None, "default: operational")}
    released, masked, withheld = partition(table, list(table))
    assert released == ("event_type",)
    assert masked == (("subject.child.birth_date", "year_only"),)
    assert withheld == ("subject.child.family_name",)
