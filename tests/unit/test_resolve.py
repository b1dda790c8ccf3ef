"""Identity resolution across identifiers: what links, what merges, what is refused as a conflict."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.kit.events import new_event
from broker.pipeline.identify import LinkageKey, complete, link_identified
from broker.pipeline.resolve import JOINED, REFUSED, TIED, Known, audit_fields, resolve_events
from broker.schema.validate import validate_event

KEY = LinkageKey(1, b"k" * 32)
# Fictitious: NHS numbers from the 999 range, which is never issued; UPNs with a serial of zeros.
NHS_A, NHS_B = "9990000018", "9990000026"
UPN_A, UPN_B = "X201000000010", "K201000000020"


def _event(child: dict, agency: str = "social_care", system: str = "LA201", record: str = "r1") -> dict:
    draft = new_event(event_type="person.identified", agency=agency, system=system, record_id=record,
                      record_version="1", fmt="test", occurred_at="2026-01-01", child=child,
                      payload={"record_kind": "Test"})
    return complete(draft, KEY, "2026-11-23T10:00:00Z")


def _identities(event: dict) -> list:
    return link_identified(event, KEY)[1]


def _through(known: Known, *events: dict) -> tuple[list[dict], list]:
    out, resolved = resolve_events(list(events), [_identities(e) for e in events], known)
    assert [event_id for event_id, _ in resolved] == [e["event_id"] for e in events if _identities(e)]
    return out, [resolution for _, resolution in resolved]


def _token(event: dict) -> str:
    return event["subject"]["linkage"]["token"]


def test_a_record_with_several_identifiers_links_them_for_records_that_carry_one() -> None:
    known = Known()
    header = _event({"upn": UPN_A, "la_child_id": "C1"})
    [first], _ = _through(known, header)
    assert _token(first) == _token(header)  # nothing known yet: its own strongest identifier's token
    assert "via_register" not in first["subject"]["linkage"]

    episode = _event({"la_child_id": "C1"}, record="episode-1")
    assert _token(episode) != _token(header)  # without the register the two never meet
    [linked], _ = _through(known, episode)
    assert _token(linked) == _token(header)
    assert linked["subject"]["linkage"]["via_register"] is True
    assert linked["subject"]["linkage"]["basis"] == "la_child_id"  # still says what this record carried

    school = _event({"upn": UPN_A}, agency="education", system="S1", record="pupil-1")
    [pupil], _ = _through(known, school)
    assert _token(pupil) == _token(header)


def test_the_la_child_id_is_per_local_authority() -> None:
    known = Known()
    _through(known, _event({"upn": UPN_A, "la_child_id": "C1"}, system="LA201"))
    [other_la], [resolution] = _through(known, _event({"upn": UPN_A, "la_child_id": "C7"}, system="LA202"))
    assert not resolution.conflict  # a child who moves has an id in each LA
    [elsewhere], _ = _through(known, _event({"la_child_id": "C1"}, system="LA202", record="r9"))
    assert _token(elsewhere) != _token(other_la)  # C1 at LA202 is a different child


def test_two_streams_joined_later_are_merged_and_announced_before_the_record() -> None:
    known = Known()
    [school], _ = _through(known, _event({"upn": UPN_A}, agency="education", system="S1"))
    [care], _ = _through(known, _event({"la_child_id": "C1"}, record="episode-1"))
    assert _token(school) != _token(care)

    header = _event({"upn": UPN_A, "la_child_id": "C1"}, record="header-1")
    out, [resolution] = _through(known, header)
    notice, record = out
    assert resolution.merged == (_token(care),) and resolution.token == _token(school)
    assert notice["event_type"] == "person.linked"
    assert notice["payload"]["superseded_token"] == _token(care)
    assert _token(notice) == _token(record) == _token(school)
    assert validate_event(notice) == [] and validate_event(record) == []

    [later], _ = _through(known, _event({"la_child_id": "C1"}, record="episode-2"))
    assert _token(later) == _token(school)  # the folded stream's identifier now resolves to the survivor

    replay = Known()  # the same history replayed: the same notice id, so a resent record is deduplicated downstream
    _through(replay, _event({"upn": UPN_A}, agency="education", system="S1"))
    _through(replay, _event({"la_child_id": "C1"}, record="episode-1"))
    assert _through(replay, header)[0][0]["event_id"] == notice["event_id"]


def test_identifiers_that_would_give_a_child_two_nhs_numbers_are_not_linked() -> None:
    known = Known()
    [health], _ = _through(known, _event({"nhs_number": NHS_A, "upn": UPN_A}, agency="health", system="RX1"))
    [clash], [resolution] = _through(known, _event({"nhs_number": NHS_B, "upn": UPN_A}))
    assert resolution.conflict and not resolution.links and not resolution.merged
    assert _token(clash) != _token(health)  # keeps its own NHS number's token
    assert clash["data_quality"][-1]["code"] == "identity.conflict"
    assert validate_event(clash) == []
    [pupil], _ = _through(known, _event({"upn": UPN_A}, agency="education", system="S1", record="p"))
    assert _token(pupil) == _token(health)  # the register was not changed by the conflicting record


def test_a_conflict_between_two_known_children_merges_nothing() -> None:
    known = Known()
    [a], _ = _through(known, _event({"nhs_number": NHS_A, "upn": UPN_A}, record="a"))
    [b], _ = _through(known, _event({"nhs_number": NHS_B, "upn": UPN_B}, record="b"))
    out, [resolution] = _through(known, _event({"upn": UPN_A, "nhs_number": NHS_B}, record="c"))
    assert resolution.conflict and len(out) == 1  # no person.linked: two NHS numbers cannot be one child
    assert _token(out[0]) == _token(b) != _token(a)  # the strongest identifier it carries still places it


def test_probable_matches_and_local_ids_never_link() -> None:
    known = Known()
    probable = _event({"given_names": ["Testchild"], "family_name": "Example", "date_of_birth": "2015-01-01",
                       "addresses": [{"postcode": "ZZ99 9ZZ"}]})
    [out], resolutions = _through(known, probable)
    assert resolutions == [] and out is probable and known.child_of == {}


def test_records_in_one_request_see_each_others_links() -> None:
    out, resolutions = _through(Known(), _event({"upn": UPN_A, "la_child_id": "C1"}, record="header"),
                                _event({"la_child_id": "C1"}, record="episode"))
    assert _token(out[0]) == _token(out[1]) and len(resolutions) == 2


def test_the_audit_log_records_every_join_and_refusal_but_not_every_event() -> None:
    known = Known()
    _, [new_child] = _through(known, _event({"upn": UPN_A}, agency="education", system="S1"))
    assert audit_fields(new_child) == []  # one identifier, its own token: nothing joined
    _, [episode] = _through(known, _event({"la_child_id": "C1"}, record="e1"))
    _, [header] = _through(known, _event({"upn": UPN_A, "la_child_id": "C1", "nhs_number": NHS_A}, record="h"))
    assert [f["reason"] for f in audit_fields(header)] == [JOINED, TIED]
    assert audit_fields(header)[0]["superseded"] == episode.token
    assert audit_fields(header)[1]["count"] == 1  # the NHS number, newly tied
    _, [again] = _through(known, _event({"la_child_id": "C1"}, record="e2"))
    assert audit_fields(again) == []  # a link the register already held
    _, [clash] = _through(known, _event({"nhs_number": NHS_B, "upn": UPN_A}, record="x"))
    assert audit_fields(clash) == [{"subject": clash.token, "reason": REFUSED}]


def _truthful_children() -> list[dict]:
    from stdnum.gb import nhs, upn

    children = []
    for n in range(5):
        number = next(f"99900{n:02d}{k:02d}{d}" for k in range(100) for d in range(10)
                      if nhs.is_valid(f"99900{n:02d}{k:02d}{d}"))
        body = f"2010000{n:03d}1"
        children.append({"nhs_number": number, "upn": upn.calc_check_digit(body[:11] + "0") + body[:11] + "0",
                         "la_child_id": f"C{n}"})
    assert all(upn.is_valid(c["upn"]) for c in children)
    return children


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.sets(st.sampled_from(["nhs_number", "upn", "la_child_id"]),
                                                     min_size=1)), min_size=1, max_size=25))
def test_truthful_records_never_join_two_children_and_a_full_record_joins_one(records: list) -> None:
    """Whatever order agencies send them in, records that tell the truth never put two children under one token, and
    once a record has shown all of a child's identifiers, every later record of that child has one token."""
    children = _truthful_children()
    known = Known()
    owner: dict[str, int] = {}
    settled: dict[int, str] = {}
    for i, (child, fields) in enumerate(records):
        event = _event({f: children[child][f] for f in fields}, record=f"r{i}")
        out, resolutions = _through(known, event)
        token = _token(out[-1])
        assert owner.setdefault(token, child) == child  # never another child's token
        assert not any(r.conflict for r in resolutions)
        if child in settled:
            assert token == settled[child]
        elif len(fields) == 3:
            settled[child] = token
        for notice in out[:-1]:  # a person.linked: the superseded token belonged to this same child
            assert owner.get(notice["payload"]["superseded_token"], child) == child
