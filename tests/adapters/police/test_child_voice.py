"""The child's voice (Operation Encompass, Domestic Abuse Act 2021 s49A): carried from the officer's record to the
canonical event under its own narrative, special category and criminal markers; never on a public protection
notice, which has no attending officer's account of the child."""

from __future__ import annotations

from adapters.kit.interface import AdaptContext
from adapters.police.pole import ADAPTER
from broker.schema.classification import CRIMINAL, SPECIAL, field_classes, leaf_markers
from tests.adapters.police.builders import as_json, record, submission
from tests.conftest import assert_canonical

CTX = AdaptContext(source="pole.json", received_at="2024-03-02T08:00:00Z")
VOICE = "Fictitious: the child was crying and said she wanted to stay at school."


def test_the_childs_voice_reaches_the_notification_and_the_summary_stays_separate() -> None:
    out = ADAPTER.adapt(as_json(submission(record("domestic_abuse", child_voice=VOICE))), CTX)
    [event] = assert_canonical(out.events)
    assert event["event_type"] == "police.domestic_abuse_notification"
    assert event["payload"]["child_voice"] == VOICE
    assert event["payload"]["summary"] == "Fictitious test summary."
    plain = ADAPTER.adapt(as_json(submission(record("domestic_abuse"))), CTX)
    assert "child_voice" not in plain.events[0]["payload"]  # optional: absent when the force sends none


def test_the_childs_voice_is_narrative_and_marked_special_category_and_criminal() -> None:
    event_type = "police.domestic_abuse_notification"
    assert field_classes(event_type)["payload.child_voice"] == "narrative"
    markers = leaf_markers(event_type)["payload.child_voice"]
    assert SPECIAL in markers and CRIMINAL in markers


def test_a_public_protection_notice_with_a_childs_voice_is_refused_by_name() -> None:
    out = ADAPTER.adapt(as_json(submission(record("public_protection_notice", "PPN-1", child_voice=VOICE))), CTX)
    assert out.events == []
    [rejection] = out.rejections
    assert rejection.to_dict()["field"] == "child_voice"
    assert "crying" not in str(rejection.to_dict())
