"""Consent, agreement and objection records, per data subject and of the right kind (engine.check_rule applies them).

"Consent" in safeguarding means four different things in law, each kept apart here (`ConsentRecord.kind`):

- `data_protection`: consent as a UK GDPR lawful basis (Art 6(1)(a), Art 9(2)(a); conditions in Art 7). It matters
  only where a rule relies on consent: there a refusal or withdrawal is honoured. Under public task (Art 6(1)(e)) or a
  legal obligation (6(1)(c)) a refusal of consent has no legal effect on the lawful basis, so it blocks nothing.
- `service_agreement`: agreement to a consensual service (early help). It gates only rules flagged
  `requires_service_agreement`: without it the service does not take the family on.
- `confidentiality`: consent under the common-law duty of confidence. It matters for health-sourced data shared
  under no statutory provision: without it (refused, or not sought where the recipient is not a health professional
  with implied consent for individual care) disclosure needs a public-interest judgement, a recorded human decision.
- `objection`: the UK GDPR Art 21 right to object to processing under Art 6(1)(e) or (f). Under public task it stops
  the sharing unless the controller shows compelling grounds: a recorded human decision, never the engine. A duty to
  disclose (Art 6(1)(c)) is not reached by it: the engine records the override.

Every record belongs to one data subject (`subject`): the child, or a related person by role (parent, victim,
suspect...; the event schema's `subject.related_people[].role`), optionally narrowed by `ref`, a local id the source
gives that person (`person.local_ids[].value`). A record without `ref` covers everyone in that role (the stricter
reading: a parent's objection recorded without saying which parent withholds both parents' details). A related
person's wishes cover that person's data in the event, never the child's.

`ConsentState` is every record held for one child's case (the register's, the event's own, or both combined by
`stricter`). Its constructor keeps the old per-child form, `ConsentState(status, objection, recorded_on)`: `status`
is the child's data protection consent and `objection` the child's Art 21 objection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.policy.codes import CONSENT_STATUSES, RESTRICTIVE_STATUSES

DATA_PROTECTION, SERVICE_AGREEMENT, CONFIDENTIALITY, OBJECTION = (
    "data_protection", "service_agreement", "confidentiality", "objection")
KINDS = (DATA_PROTECTION, SERVICE_AGREEMENT, CONFIDENTIALITY, OBJECTION)
OBJECTION_STATES = ("raised", "lifted")  # an objection stands, or the person has taken it back
CHILD = "child"
# The event schema's related_person roles (schemas/safeguarding-event.schema.json $defs.related_person.role).
RELATED_ROLES = ("parent", "carer", "guardian", "sibling", "household_member", "victim", "witness", "suspect",
                 "offender", "professional", "emergency_contact", "other")
SUBJECTS = (CHILD, *RELATED_ROLES)


def states_of(kind: str) -> tuple[str, ...]:
    return OBJECTION_STATES if kind == OBJECTION else CONSENT_STATUSES


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """One data subject's consent, agreement or objection of one kind: its state, when and by whom (a role code,
    never a name) it was recorded."""

    kind: str
    state: str
    subject: str = CHILD  # the child, or a related person's role
    ref: str | None = None  # which person of that role (a local id the source gives them); None: all of them
    recorded_on: str | None = None  # ISO date
    recorded_by: str | None = None  # a role code: source_agency, ig_officer, social_worker, register_v1...

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"consent kind must be one of {', '.join(KINDS)}")
        if self.state not in states_of(self.kind):
            raise ValueError(f"a {self.kind} record's state must be one of {', '.join(states_of(self.kind))}")
        if self.subject not in SUBJECTS:
            raise ValueError(f"a consent record's subject must be one of {', '.join(SUBJECTS)}")
        if self.subject == CHILD and self.ref is not None:
            raise ValueError("ref names a related person; the child is named by the case itself")

    @property
    def key(self) -> tuple[str, str, str]:
        return self.kind, self.subject, self.ref or ""

    @property
    def restrictive(self) -> bool:
        """The person said no: refused or withdrew consent or agreement, or an objection stands."""
        return self.state == "raised" if self.kind == OBJECTION else self.state in RESTRICTIVE_STATUSES

    @property
    def restriction(self) -> str | None:
        """'objection', 'refused' or 'withdrawn' when restrictive, for decisions and the audit; None otherwise."""
        if not self.restrictive:
            return None
        return OBJECTION if self.kind == OBJECTION else self.state

    def covers(self, person: Mapping[str, Any]) -> bool:
        """Does this record belong to the related person `person` (an item of subject.related_people)?"""
        if self.subject == CHILD or person.get("role") != self.subject:
            return False
        if self.ref is None:
            return True
        ids = [str(i.get("value", "")) for i in ((person.get("person") or {}).get("local_ids")) or ()
               if isinstance(i, Mapping)]
        # A person of the role whose record carries no local id cannot be told apart from the one meant: covered
        # (fail closed), so an objection is never lost because a source sends no ids.
        return not ids or self.ref in ids

    def to_summary(self) -> dict[str, Any]:
        """Value-free: codes and dates, and whether a `ref` narrows it (never the ref itself, a local id)."""
        return {"kind": self.kind, "state": self.state, "subject": self.subject, "ref_given": self.ref is not None,
                "recorded_on": self.recorded_on, "recorded_by": self.recorded_by}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ConsentRecord:
        return cls(str(data.get("kind", "")), str(data.get("state", "")), str(data.get("subject", CHILD)),
                   data.get("ref"), data.get("recorded_on"), data.get("recorded_by"))


def compat_records(status: str, objection: bool, recorded_on: str | None) -> list[ConsentRecord]:
    """The old per-child form as records: the status is the child's data protection consent, the flag the child's
    Art 21 objection (what the old register meant by them, and how its rows migrate)."""
    if status not in CONSENT_STATUSES:
        raise ValueError(f"consent status must be one of {', '.join(CONSENT_STATUSES)}")
    out = [ConsentRecord(DATA_PROTECTION, status, recorded_on=recorded_on)] if status != "unknown" else []
    if objection:
        out.append(ConsentRecord(OBJECTION, "raised", recorded_on=recorded_on))
    return out


class ConsentState:
    """Every consent, agreement and objection record held for one child's case, one per (kind, subject, ref).

    `ConsentState(status, objection, recorded_on)` is the old per-child form (see `compat_records`);
    `ConsentState(records=...)` the full one. Immutable; equal when the records are."""

    __slots__ = ("records",)
    records: tuple[ConsentRecord, ...]

    def __init__(self, status: str = "unknown", objection: bool = False, recorded_on: str | None = None, *,
                 records: Iterable[ConsentRecord] | None = None) -> None:
        items = compat_records(status, objection, recorded_on) if records is None else list(records)
        by_key: dict[tuple[str, str, str], ConsentRecord] = {}
        for record in items:  # two records for one key (one event block saying both): the stricter counts
            by_key[record.key] = _pick(by_key[record.key], record) if record.key in by_key else record
        object.__setattr__(self, "records", tuple(by_key[k] for k in sorted(by_key)))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("ConsentState is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConsentState) and self.records == other.records

    def __hash__(self) -> int:
        return hash(self.records)

    def __repr__(self) -> str:  # codes only: never a ref
        return f"ConsentState({[r.to_summary() for r in self.records]!r})"

    def record(self, kind: str, subject: str = CHILD) -> ConsentRecord | None:
        """The child's record of `kind` (or, for a role, the one without `ref`)."""
        return next((r for r in self.records if r.kind == kind and r.subject == subject and r.ref is None), None)

    def state(self, kind: str) -> str:
        """The child's state of `kind`: 'unknown' (consent kinds) or 'lifted' (objection) when nothing is recorded."""
        found = self.record(kind)
        return found.state if found else ("lifted" if kind == OBJECTION else "unknown")

    def for_people(self) -> tuple[ConsentRecord, ...]:
        """The related people's records."""
        return tuple(r for r in self.records if r.subject != CHILD)

    # --- the old per-child view: the child's data protection consent and Art 21 objection ------------------------
    @property
    def status(self) -> str:
        return self.state(DATA_PROTECTION)

    @property
    def objection(self) -> bool:
        return self.state(OBJECTION) == "raised"

    @property
    def recorded_on(self) -> str | None:
        """When the child's standing restriction (objection first) was recorded, else the consent record's date."""
        for kind in (OBJECTION, DATA_PROTECTION):
            found = self.record(kind)
            if found is not None and found.restrictive:
                return found.recorded_on
        found = self.record(DATA_PROTECTION)
        return found.recorded_on if found else None

    @property
    def restriction(self) -> str | None:
        """The child's objection, or refused/withdrawn data protection consent; None when neither stands."""
        if self.objection:
            return OBJECTION
        return self.status if self.status in RESTRICTIVE_STATUSES else None

    def summary(self) -> dict[str, Any]:
        """Value-free, for `explain` and HTTP answers."""
        return {"status": self.status, "objection": self.objection, "recorded_on": self.recorded_on,
                "records": [r.to_summary() for r in self.records]}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ConsentState:
        """The event's `consent` block, a protocol test's `consent:` or the admin body: the old per-child fields
        (`status`, `objection`, `recorded_on`) and/or `records`, the stricter winning for the same key. Raises
        ValueError (value-free) on an unknown kind, state or subject."""
        items = compat_records(str(data.get("status", "unknown")), bool(data.get("objection", False)),
                                data.get("recorded_on"))
        items += [ConsentRecord.from_mapping(r) for r in data.get("records") or () if isinstance(r, Mapping)]
        return cls(records=items)

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> ConsentState:
        """The event's own consent block. A status the broker does not know counts as unknown, and a record it cannot
        read is dropped, except that an unreadable objection counts as raised (fail closed)."""
        block = event.get("consent") or {}
        if not isinstance(block, Mapping):
            return cls()
        status = block.get("status", "unknown")
        items = compat_records(status if status in CONSENT_STATUSES else "unknown", bool(block.get("objection")),
                                block.get("recorded_on"))
        for raw in block.get("records") or ():
            if not isinstance(raw, Mapping):
                continue
            try:
                items.append(ConsentRecord.from_mapping(raw))
            except ValueError:
                if raw.get("kind") == OBJECTION and raw.get("subject", CHILD) in SUBJECTS:
                    items.append(ConsentRecord(OBJECTION, "raised", str(raw.get("subject", CHILD))))
        return cls(records=items)


def _pick(first: ConsentRecord, second: ConsentRecord) -> ConsentRecord:
    """The more restrictive of two records for one key; neither restrictive: `first`, unless it knows nothing."""
    if first.restrictive or (not second.restrictive and first.state != "unknown"):
        return first
    return second


def stricter(first: ConsentState, second: ConsentState) -> ConsentState:
    """Two sets of records for one child's case combined, per kind and data subject, the more restrictive winning:
    a refusal, withdrawal or objection in either counts; otherwise `first`'s record, unless its state is unknown."""
    theirs = {r.key: r for r in second.records}
    out = {r.key: (_pick(r, theirs[r.key]) if r.key in theirs else r) for r in first.records}
    out.update({k: r for k, r in theirs.items() if k not in out})
    return ConsentState(records=out.values())


def effective_consent(register: ConsentState | None, event: Mapping[str, Any]) -> ConsentState:
    """The broker's consent register and the event's own consent block, the more restrictive winning."""
    from_event = ConsentState.from_event(event)
    return from_event if register is None else stricter(register, from_event)
