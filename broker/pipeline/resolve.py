"""Identity resolution: one token per child although agencies key children by different identifiers.

Health keys a child by NHS number, a school by UPN, a local authority by its own child id, so the same child's
records would otherwise stream under three tokens that never meet. A record that carries several identifiers (a CIN
census child, an SSDA903 header row, a FHIR Patient with both) proves they belong to one child. The identity register
remembers that, per identifier token (an HMAC, never the identifier itself), so a later record that carries only one
of them gets the same token.

Rules, chosen to fail safe for children:
- only deterministic identifiers link (NHS number, UPN, LA child id); a probable name/DOB/postcode match or a
  source's local id never does;
- a child has at most one of each kind (one NHS number, one UPN, one child id per LA). A record that would give a
  child two of one kind is a conflict: nothing is linked, the event keeps its own token and carries a data-quality
  warning for a person to review, because wrongly joining two children shares one child's records as another's;
- when a record joins two children's streams that were separate (a UPN seen at school and an LA id seen in care
  episodes, before the header that carries both), the stream of the strongest identifier survives, the other is
  folded into it, and a `person.linked` event on the surviving token tells subscribers that the old token is the
  same child.

Pure: the intake shell takes each event's identities from linkage (`complete_identified`), reads what the register
knows of them (`Known`), resolves, publishes, and only once Kafka has the events writes the links back
(`IdentityRegister.apply`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.kit.events import event_id, warning
from broker.pipeline.identify import Identity
from broker.schema.envelope import linkage_token, view

CONFLICT = warning("identity.conflict", "subject.child",
                   "the identity register ties these identifiers to different children: not linked, to be reviewed")


@dataclass(slots=True)
class Known:
    """What the register holds: each identifier token's child token, and each child's identities by kind."""

    child_of: dict[str, str] = field(default_factory=dict)
    members: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Resolution:
    token: str  # the child's token for this event
    links: tuple[Identity, ...] = ()  # identities to record under `token`
    merged: tuple[str, ...] = ()  # children's tokens folded into `token`
    conflict: bool = False


def resolve(ids: Sequence[Identity], known: Known) -> Resolution | None:
    """The token for a child with identities `ids`; None when it has none that link."""
    if not ids:
        return None
    children = list(dict.fromkeys(known.child_of[i.token] for i in ids if i.token in known.child_of))
    held: dict[str, str] = {}
    for kind, token in [*((k, t) for c in children for k, t in known.members.get(c, {}).items()),
                        *((i.kind, i.token) for i in ids)]:
        if held.setdefault(kind, token) != token:
            return Resolution(known.child_of.get(ids[0].token, ids[0].token), conflict=True)
    survivor = children[0] if children else ids[0].token
    return Resolution(survivor, tuple(i for i in ids if i.token not in known.child_of), tuple(children[1:]))


def learn(known: Known, resolution: Resolution) -> None:
    """Fold a resolution into `known`, so the next record of the same request sees it (the shell's working copy)."""
    group = known.members.setdefault(resolution.token, {})
    for absorbed in resolution.merged:
        for kind, token in known.members.pop(absorbed, {}).items():
            group[kind] = token
            known.child_of[token] = resolution.token
    for identity in resolution.links:
        group[identity.kind] = identity.token
        known.child_of[identity.token] = resolution.token


def relinked(event: dict[str, Any], resolution: Resolution | None) -> dict[str, Any]:
    """The event under its resolved token (a new dict). `via_register` marks a token another record gave the child."""
    if resolution is None or (resolution.token == linkage_token(event) and not resolution.conflict):
        return event  # the common case: the child's own token, already set
    linkage = dict(event["subject"]["linkage"])
    if resolution.token != linkage["token"]:
        linkage["token"] = resolution.token
        linkage["via_register"] = True
    quality = [*event["data_quality"], CONFLICT] if resolution.conflict else event["data_quality"]
    return {**event, "subject": {**event["subject"], "linkage": linkage}, "data_quality": quality}


def linked_event(origin: Mapping[str, Any], absorbed: str) -> dict[str, Any]:
    """`person.linked`: the record `origin` showed that the child of token `absorbed` is the child of its token.

    Its id is fixed by the record and the absorbed token, so a resent record announces the same link once.
    """
    source = view(origin)["source"]
    return {
        "event_id": event_id(source["agency"], source["system"], source["record_id"], source["record_version"],
                             f"linked:{absorbed}"),
        "event_type": "person.linked", "schema_version": origin["schema_version"],
        "occurred_at": origin["recorded_at"], "recorded_at": origin["recorded_at"], "source": source,
        "subject": {**origin["subject"], "related_people": []}, "risk": origin["risk"],
        "lawful_basis": origin["lawful_basis"], "consent": origin["consent"], "data_quality": [],
        "payload": {"record_kind": "identity register link", "superseded_token": absorbed},
    }


def resolve_events(events: Sequence[dict[str, Any]], ids: Sequence[Sequence[Identity]],
                   known: Known) -> tuple[list[dict[str, Any]], list[tuple[str, Resolution]]]:
    """A request's events under their resolved tokens, each `person.linked` just before the event that caused it
    (same partition, so subscribers learn of the link first), and (event id, resolution) for the register, in order.
    """
    out: list[dict[str, Any]] = []
    resolved = []
    for event, event_ids in zip(events, ids, strict=True):
        resolution = resolve(event_ids, known)
        if resolution is not None:
            learn(known, resolution)
            resolved.append((view(event)["event_id"], resolution))
        event = relinked(event, resolution)
        out.extend(linked_event(event, absorbed) for absorbed in (resolution.merged if resolution else ()))
        out.append(event)
    return out, resolved


TIED = "identifiers tied to one child"
JOINED = "two children's streams joined: the superseded token is the same child"
REFUSED = "identifiers tied to different children in the identity register: not linked, to be reviewed"


def audit_fields(resolution: Resolution) -> list[dict[str, Any]]:
    """What the audit log says of a resolution (`identity_linked` records). Nothing when it only used what the
    register held, or gave a new child its one identifier: IG sees every join and every refusal, not every event."""
    if resolution.conflict:
        return [{"subject": resolution.token, "reason": REFUSED}]
    out: list[dict[str, Any]] = [{"subject": resolution.token, "superseded": absorbed, "reason": JOINED}
                                 for absorbed in resolution.merged]
    links = resolution.links
    if len(links) > 1 or (links and links[0].token != resolution.token):
        out.append({"subject": resolution.token, "count": len(links), "reason": TIED})
    return out
