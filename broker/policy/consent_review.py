"""The first register's consent rows, read as the law would have them until an IG officer reviews them (pure).

The first consent register kept one row per child: a status and an objection flag. Its rows migrate as the child's
data protection consent and Art 21 objection (`recorded_by: register_v1`, broker/stores/consent.py), but that is
only what the columns were called. A family's "no" written then as a refused or withdrawn status may in law have
been an objection (UK GDPR Art 21: an objection needs no particular form or words), a refusal of consent under the
common-law duty of confidence, or a refusal of a consensual service such as early help; and a flag set as an
objection may have been a refusal of consent where consent was the basis.

**The stricter reading, until reviewed.** An unreviewed migrated record that says no is read as a no of every kind
the child has no newer record of: an objection raised, and data protection consent, confidentiality consent and
the service agreement refused (or withdrawn, as recorded). In law that is the reading under which no share goes
ahead that the person may have stopped:

- under public task (Art 6(1)(e)) an objection routes the share to a recorded human decision, who may still share
  on compelling grounds (Art 21(1)); read as a mere refusal of data protection consent, the same "no" would have no
  legal effect and the share would go automatically;
- where consent is the basis (Art 6(1)(a)), or a rule needs the family's agreement, the refusal is honoured;
- health data under no statute without confidentiality consent goes to a public-interest judgement;
- a duty to disclose (Art 6(1)(c)) is reached by none of them, so no share the law requires is stopped.

The wrong error the other way is a disclosure, which cannot be undone; this one costs a person's decision. A
review (below) replaces the presumption with the kind the officer finds, or confirms the migrated reading.
"""

from __future__ import annotations

from collections.abc import Iterable

from broker.policy.consent import (
    CHILD,
    CONFIDENTIALITY,
    DATA_PROTECTION,
    KINDS,
    OBJECTION,
    SERVICE_AGREEMENT,
    ConsentRecord,
)

MIGRATED_BY = "register_v1"  # recorded_by of a record moved from the first, per-child register
REVIEWED_BY = "ig_review"  # recorded_by of the record an IG review writes in its place

# What a review may find the migrated "no" to have been (one of the four kinds), or that the migration read it right.
CONFIRMED = "confirmed"
OUTCOMES: dict[str, str | None] = {
    "objection": OBJECTION,
    "data_protection_refusal": DATA_PROTECTION,
    "confidentiality_refusal": CONFIDENTIALITY,
    "service_agreement_refusal": SERVICE_AGREEMENT,
    CONFIRMED: None,
}


def migrated(records: Iterable[ConsentRecord]) -> list[ConsentRecord]:
    return [r for r in records if r.recorded_by == MIGRATED_BY and r.subject == CHILD]


def awaits_review(records: Iterable[ConsentRecord]) -> bool:
    """A migrated record says no: until reviewed it is read the stricter way."""
    return any(r.restrictive for r in migrated(records))


def _no(kind: str, refusal: ConsentRecord) -> ConsentRecord:
    """The refusal as a record of `kind`: an objection raised, or the consent kind refused (withdrawn if it was)."""
    state = "raised" if kind == OBJECTION else (refusal.state if refusal.kind != OBJECTION else "refused")
    return ConsentRecord(kind, state, CHILD, None, refusal.recorded_on, MIGRATED_BY)


def stricter_reading(records: Iterable[ConsentRecord]) -> tuple[ConsentRecord, ...]:
    """One child's records with an unreviewed migrated "no" read as a no of every kind the child has no newer
    (non-migrated) record of (module docstring). Records of related people and newer records stay as they are."""
    held = tuple(records)
    refusals = [r for r in migrated(held) if r.restrictive]
    if not refusals:
        return held
    newer = {r.kind for r in held if r.subject == CHILD and r.recorded_by != MIGRATED_BY}
    refusal = max(refusals, key=lambda r: (r.kind != OBJECTION, r.recorded_on or ""))  # a consent refusal's state
    kept = [r for r in held if not (r.recorded_by == MIGRATED_BY and r.subject == CHILD and r.kind not in newer)]
    return (*kept, *(_no(kind, refusal) for kind in KINDS if kind not in newer))


def reviewed(records: Iterable[ConsentRecord], outcome: str) -> tuple[list[ConsentRecord], list[ConsentRecord]]:
    """What a review writes and removes: (records to put, migrated records to delete). A reclassification replaces
    the child's migrated records with one record of the kind found (recorded_by ig_review, dated as the original),
    unless a newer record of that kind is held (it stands); `confirmed` changes no record. Raises ValueError for an
    unknown outcome, and for a reclassification of migrated records that say no "no" (nothing to reclassify)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
    held = tuple(records)
    kind, moved = OUTCOMES[outcome], migrated(held)
    if kind is None:
        return [], []
    refusals = [r for r in moved if r.restrictive]
    if not refusals:
        raise ValueError("the migrated records hold no refusal or objection to reclassify: confirm them instead")
    refusal = max(refusals, key=lambda r: (r.kind != OBJECTION, r.recorded_on or ""))
    newer = {r.kind for r in held if r.subject == CHILD and r.recorded_by != MIGRATED_BY}
    found = _no(kind, refusal)
    put = [] if kind in newer else [ConsentRecord(found.kind, found.state, CHILD, None, found.recorded_on,
                                                  REVIEWED_BY)]
    return put, moved
