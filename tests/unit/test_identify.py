"""Linkage tokens: keyed, versioned, chosen by the best identifier, equal across agencies."""

from __future__ import annotations

from adapters.kit.events import new_event
from broker.pipeline.identify import LinkageKey, link

KEY = LinkageKey(1, b"k" * 32)


def _event(agency: str, system: str, child: dict) -> dict:
    return new_event(event_type="person.identified", agency=agency, system=system, record_id="r1",
                     record_version="1", fmt="test", occurred_at="2026-01-01", child=child,
                     payload={"record_kind": "Test"})


def _linkage(event: dict, key: LinkageKey = KEY) -> dict:
    return link(event, key)["subject"]["linkage"]


def test_same_nhs_number_from_two_agencies_links() -> None:
    a = _linkage(_event("health", "RX1", {"nhs_number": "9434765919", "family_name": "Testchild"}))
    b = _linkage(_event("social_care", "LA999", {"nhs_number": "943 476 5919", "upn": "A123"}))
    assert a["token"] == b["token"] and a["basis"] == b["basis"] == "nhs_number"
    assert a["confidence"] == "high"


def test_verified_nhs_number_is_verified_confidence() -> None:
    linkage = _linkage(_event("health", "RX1", {"nhs_number": "9434765919", "nhs_number_verification": "verified"}))
    assert linkage["confidence"] == "verified"


def test_invalid_nhs_number_falls_back_to_the_next_identifier() -> None:
    linkage = _linkage(_event("health", "RX1", {"nhs_number": "9434765918", "upn": "A61234567890A"}))
    assert linkage["basis"] in {"upn", "source_local_id"}
    assert linkage["basis"] != "nhs_number"


def test_la_child_id_is_scoped_by_the_local_authority() -> None:
    a = _linkage(_event("social_care", "LA201", {"la_child_id": "C1"}))
    b = _linkage(_event("social_care", "LA202", {"la_child_id": "C1"}))
    assert a["basis"] == "la_child_id" and a["token"] != b["token"]


def test_probable_match_ignores_case_spacing_and_accents() -> None:
    base = {"given_names": ["Zoë"], "family_name": "Testchild", "date_of_birth": "2015-02-03"}
    a = _linkage(_event("education", "S1", {**base, "addresses": [{"postcode": "LS1 4HR"}]}))
    b = _linkage(_event("police", "P1", {**base, "given_names": ["ZOE"], "addresses": [{"postcode": "ls14hr"}]}))
    assert a["basis"] == "name_dob_postcode" and a["confidence"] == "probable"
    assert a["token"] == b["token"]


def test_key_rotation_changes_version_and_token() -> None:
    event = _event("health", "RX1", {"nhs_number": "9434765919"})
    v1, v2 = _linkage(event), _linkage(event, LinkageKey(2, b"z" * 32))
    assert v2["key_version"] == 2 and v2["token"].startswith("lt2_") and v1["token"] != v2["token"]


def test_no_identifier_at_all_still_links_to_the_source_record() -> None:
    linkage = _linkage(_event("police", "P1", {}))
    assert linkage["basis"] == "source_local_id" and linkage["confidence"] == "low"


def test_the_key_never_prints() -> None:
    assert "k" * 8 not in repr(KEY)
