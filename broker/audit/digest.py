"""The owning agency is told: a partner's disclosure digest, what of its data went to whom, under which rule and
lawful basis, consent overrides first (as NHS CP-IS tells a local authority when its child-protection information is
viewed). Pure functions over disclosures (broker/audit/disclosures.py) and the sources of their events; the CLI
(`mash-broker audit digest`) and the IG API read the store and call them.

Whose data an event is: the partner of the event's agency that declares its `source.system`
(`partners[].source_systems`, the protocol's one map); failing that, the one partner of that agency that declares
no source systems (an agency's catch-all, such as an ICB beside trusts that declare theirs); otherwise nobody's, and
the event is in no partner's digest (the protocol should declare the system).
"""

from __future__ import annotations

import csv
import datetime as dt
import typing
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from broker.audit.disclosures import Disclosure
from broker.audit.export import _cell as csv_cell  # one spreadsheet-safe cell rule
from broker.errors import InputRejected
from broker.policy.codes import LAWFUL_BASIS
from broker.policy.digest import digest_contact
from broker.policy.model import Protocol

DIGEST_TYPE = "mash-broker-disclosure-digest"
DIGEST_VERSION = 1
DEFAULT_TIME_ZONE = "Europe/London"


class DigestError(InputRejected, ValueError):
    """A digest that cannot be made as asked: names what was asked (`asked`: agency, date, time_zone) and why, never
    a value. `missing`: no digest exists for that partner (the HTTP API's 404)."""

    def __init__(self, asked: str, reason: str, *, missing: bool = False) -> None:
        self.asked, self.reason, self.missing = asked, reason, missing
        super().__init__(f"--{asked.replace('_', '-')}: {reason}")


@dataclass(frozen=True, slots=True)
class Source:
    """Where an event came from (its `event_published` audit record)."""

    agency: str
    system: str | None


def owner(protocol: Protocol, source: Source) -> str | None:
    """The partner whose data the event is (module docstring), or None."""
    if source.system:
        found = protocol.partner_by_system.get((source.agency, source.system.strip().upper()))
        if found is not None:
            return found
    catch_all = [p.id for p in protocol.partners.values() if p.agency == source.agency and not p.source_systems]
    return catch_all[0] if len(catch_all) == 1 else None


def day_range(date: str, time_zone: str = DEFAULT_TIME_ZONE) -> tuple[str, str]:
    """[start, end) of a calendar day in a time zone, as audit times (UTC, milliseconds): the day IG staff mean."""
    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        raise DigestError("date", "not a date (YYYY-MM-DD)") from None
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise DigestError("time_zone", "not an IANA time zone name") from None

    def utc(d: dt.date) -> str:
        start = dt.datetime.combine(d, dt.time(), zone).astimezone(dt.UTC)
        return start.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    return utc(day), utc(day + dt.timedelta(days=1))


def partner_for_digest(protocol: Protocol, partner: str) -> Mapping[str, Any]:
    """The digest's recipient (the governance.roles entry), or DigestError: an unknown partner, or one whose
    protocol entry does not switch the digest on."""
    found = protocol.partners.get(partner)
    if found is None:
        raise DigestError("agency", "not the id of a partner in the protocol", missing=True)
    if not found.disclosure_digest:
        raise DigestError("agency", "the protocol does not switch the disclosure digest on for this partner "
                          "(partners[].disclosure_digest)", missing=True)
    roles = protocol.governance.roles if protocol.governance is not None else ()
    contact = digest_contact(roles, partner)
    if contact is None:  # the compile check refuses this; a protocol built by hand could still get here
        raise DigestError("agency", "the partner names no ig_lead or dpo in governance.roles", missing=True)
    return contact


def _row(d: Disclosure, protocol: Protocol) -> dict[str, Any]:
    sub = protocol.subscribers.get(d.subscriber)
    partner = protocol.partners.get(sub.partner) if sub is not None else None
    return {
        "decided_at": d.decided_at, "delivered_at": d.delivered_at, "read_at": d.read_at, "read_via": d.read_via,
        "recipient": d.subscriber, "recipient_partner": partner.name if partner else None,
        "event_type": d.event_type, "rule_id": d.rule_id, "purpose": d.purpose,
        "lawful_basis": list(d.lawful_basis), "lawful_basis_words": [LAWFUL_BASIS.get(c, c) for c in d.lawful_basis],
        "fields_released": list(d.fields_released), "fields_masked": dict(d.fields_masked),
        "fields_withheld": list(d.fields_withheld), "consent_override": d.consent_override,
        "child": d.subject, "event_id": d.event_id, "decision_id": d.decision_id,
        "protocol_version": d.protocol_version,
    }


def digest(protocol: Protocol, partner: str, found: Iterable[Disclosure], sources: Mapping[str, Source], *,
           date: str, time_zone: str, generated_at: str) -> dict[str, Any]:
    """The partner's digest for one day: its own data's disclosures among `found`, overrides first, then in order
    of decision."""
    contact = partner_for_digest(protocol, partner)
    since, until = day_range(date, time_zone)
    ours = [d for d in found if since <= d.decided_at < until
            and d.event_id in sources and owner(protocol, sources[d.event_id]) == partner]
    ours.sort(key=lambda d: (d.consent_override is None, d.decided_at, d.seq))
    p = protocol.partners[partner]
    return {
        "type": DIGEST_TYPE, "version": DIGEST_VERSION, "generated_at": generated_at,
        "partner": {"id": p.id, "name": p.name, "agency": p.agency},
        "to": {"role": contact["role"], "contact": contact["contact"]},
        "date": date, "time_zone": time_zone, "from": since, "until": until, "protocol": protocol.revision,
        "summary": {"disclosures": len(ours),
                    "consent_overrides": sum(1 for d in ours if d.consent_override),
                    "by_recipient": dict(sorted(Counter(d.subscriber for d in ours).items())),
                    "by_rule": dict(sorted(Counter(d.rule_id or "" for d in ours).items()))},
        "disclosures": [_row(d, protocol) for d in ours],
        # every lawful basis and gateway the rows cite, in words (the page's consent-override mark names the gateway)
        "bases": {c: LAWFUL_BASIS.get(c, c) for d in ours
                  for c in (*d.lawful_basis, *([d.consent_override["gateway"]] if d.consent_override else []))},
    }


CSV_COLUMNS = ("consent_override", "decided_at", "delivered_at", "read_at", "read_via", "recipient",
               "recipient_partner", "event_type", "rule_id", "purpose", "lawful_basis", "lawful_basis_words",
               "fields_released", "fields_masked", "fields_withheld", "child", "event_id", "decision_id",
               "protocol_version")


def write_digest_csv(out: TextIO, made: Mapping[str, Any]) -> int:
    """One row per disclosure, overrides first (as in the JSON)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in made["disclosures"]:
        override = row.get("consent_override")
        said = {**row, "consent_override": f"{override['restriction']} set aside under {override['gateway']}"
                if override else None}
        writer.writerow([csv_cell(said.get(c)) for c in CSV_COLUMNS])
    return len(made["disclosures"])


class DigestStore(typing.Protocol):
    """What the digest reads of the audit store (broker/audit/store.py AuditStore)."""

    def disclosures(self, *, since: str | None = ..., until: str | None = ..., limit: int = ...,
                    after_seq: int = ...) -> list[Disclosure]: ...

    def event_sources(self, found: Sequence[Disclosure]) -> Mapping[str, tuple[str, str | None]]: ...


PAGE = 5000


def read_digest(store: DigestStore, protocol: Protocol, partner: str, *, date: str, time_zone: str,
                generated_at: str) -> dict[str, Any]:
    """The digest from the store: the day's disclosures, a page at a time, and the sources of their events."""
    partner_for_digest(protocol, partner)  # refuse before reading anything
    since, until = day_range(date, time_zone)
    found: list[Disclosure] = []
    after = 0
    while page := store.disclosures(since=since, until=until, limit=PAGE, after_seq=after):
        found += page
        after = page[-1].seq
        if len(page) < PAGE:
            break
    sources = {e: Source(agency, system) for e, (agency, system) in store.event_sources(found).items()}
    return digest(protocol, partner, found, sources, date=date, time_zone=time_zone, generated_at=generated_at)
