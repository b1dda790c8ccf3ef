"""Erasure (crypto-shredding) as pure rules: what intake refuses, what HTTP never serves again, and the notice.

Erasing a child destroys its data keys (broker/crypto/keystore.py) and records it in the erasure register (every
token the child carried, when, by whom, and the ids of its events received until then). From then on:

- Intake refuses a record about the child that was received before the erasure (its deterministic event id is among
  the erased events): a resend must not bring old data back under fresh keys. The rejection names the position and
  the reason, never a value; the input is not kept. A record with a new event id (a new referral, a new version of a
  record) received after the erasure is new processing and is accepted: refusing a new safeguarding referral about
  a child would put the child at risk, and a second erasure erases it in turn.
- HTTP pull and server-sent events skip every delivery about the child made before the erasure (by the delivery's
  key, the child's token, and its event id or time); the cursor moves past them. Deliveries made after it (new data)
  and the erasure notice itself are served.
- Every subscriber that was ever sent a delivery about any of the child's tokens gets a `person.erased` notice
  (tokens and time only), whatever the protocol's rules: the broker must tell recipients of an erasure (UK GDPR Art
  19), and the notice carries no personal data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

from adapters.kit.events import event_id as source_event_id
from adapters.kit.interface import Rejection
from broker.schema.envelope import view
from broker.schema.loader import SCHEMA_VERSION

NOTICE_TYPE = "person.erased"
# The key scope of a notice's protected leaves (only its fixed source record id): the broker's own, never the
# child's, so that shredding the child (again) cannot make the notice about it unreadable.
NOTICE_SCOPE = "erasure-notice"
NOTICE_SOURCE = {"agency": "broker", "system": "mash-broker", "record_id": "erasure-register",
                 "format": "erasure-register"}
NOTICE_REASON = "erasure notice (UK GDPR Art 19): sent to every subscriber that received the child's data"
ERASED_RESEND = ("record about an erased child, received before its erasure: refused and not kept (a resend cannot "
                 "undo an erasure; records received after it are accepted as new)")


def iso_ms(when: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 time with a zone ("...Z"), as Kafka timestamps are."""
    return int(dt.datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp() * 1000)


def notice_event(tokens: Sequence[str], erased_at: str) -> dict[str, Any]:
    """The `person.erased` event for one erasure of a child (`tokens`: every token it carried, current first).

    Its id is fixed by the child's token and the erasure's time, so a notice published twice (a retry, two service
    processes) reaches each subscriber once.
    """
    current = tokens[0]
    version = int(current[2:current.index("_")])
    return {
        "event_id": source_event_id("broker", "mash-broker", "erasure-register", erased_at, f"erased:{current}"),
        "event_type": NOTICE_TYPE, "schema_version": SCHEMA_VERSION,
        "occurred_at": erased_at, "recorded_at": erased_at,
        "source": {**NOTICE_SOURCE, "record_version": erased_at},
        "subject": {"linkage": {"token": current, "key_version": version, "basis": "erasure_register",
                                "confidence": "verified"}, "child": {}, "related_people": []},
        "risk": {"level": "unknown", "categories": []},
        # the broker's legal obligation to tell each recipient of an erasure (UK GDPR Art 6(1)(c), Art 19)
        "lawful_basis": {"article_6": "6(1)(c)"},
        "consent": {"status": "not_applicable"},
        "data_quality": [],
        "payload": {"record_kind": "erasure notice", "erased_tokens": list(dict.fromkeys(tokens)),
                    "erased_at": erased_at},
    }


def refuse_erased(events: Sequence[dict[str, Any]], erased: Mapping[str, str], received_before: Set[str],
                  source: str = "request") -> tuple[list[dict[str, Any]], list[Rejection]]:
    """(events kept, rejections): an event is refused when its child's token is erased (`erased`: token -> when)
    and its id is among `received_before` (the child's events received before the erasure). Positions count the
    events in order; the reason is fixed text."""
    kept: list[dict[str, Any]] = []
    refused: list[Rejection] = []
    for i, event in enumerate(events):
        envelope = view(event)
        if envelope["subject"]["linkage"]["token"] in erased and envelope["event_id"] in received_before:
            refused.append(Rejection(source, f"event {i} ({envelope['event_type']})", "", ERASED_RESEND))
        else:
            kept.append(event)
    return kept, refused


@dataclass(frozen=True, slots=True)
class DeliveryFacts:
    """What the broker can see of a sealed delivery without opening it (its Kafka key, headers and time)."""

    token: str
    event_id: str | None
    timestamp_ms: int
    notice: bool  # the delivery is a person.erased notice


def hidden(deliveries: Sequence[DeliveryFacts], erased_ms: Mapping[str, int], erased_events: Set[str]) -> list[bool]:
    """For each delivery, whether HTTP must never serve it again: it is about an erased child (its token is erased,
    `erased_ms`: token -> when, in ms) and was made before the erasure, or carries an event received before it (a
    share worker that read the event before the shred and delivered it after). Notices are always served."""
    out = []
    for d in deliveries:
        at = erased_ms.get(d.token)
        out.append(at is not None and not d.notice and (d.timestamp_ms <= at or d.event_id in erased_events))
    return out
