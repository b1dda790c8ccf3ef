"""The compiled protocol: plain frozen data, built once by `compile`, read by the engine for every event."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.policy.hub import HubRules


@dataclass(frozen=True, slots=True)
class FieldOutcome:
    """What one leaf path gets under one rule, and which part of the rule said so (for `explain`)."""

    action: str  # release | withhold | mask
    mask: str | None
    because: str


Partition = tuple[tuple[str, ...], tuple[tuple[str, str], ...], tuple[str, ...]]  # released, masked, withheld


@dataclass(frozen=True, slots=True)
class FieldRule:
    where: str  # YAML path, e.g. rules[2].fields[1]
    classifications: frozenset[str]
    paths: tuple[str, ...]
    action: str
    mask: str | None


@dataclass(frozen=True, slots=True)
class Conditions:
    risk_at_least: str | None = None
    risk_at_most: str | None = None
    risk_categories_any: frozenset[str] | None = None
    subject_under_18: bool = False
    consent_status: frozenset[str] | None = None
    case_open: bool | None = None
    registered_with: str | None = None  # gp_practice | school
    referral_sources: frozenset[str] | None = None  # a referral's CIN ReferralSource (PPN feedback: 6, police)
    plan_kinds: frozenset[str] | None = None  # a CP-IS notice's payload.plan_kind (the unborn-child route)
    s47_request: bool = False  # the LA has called upon the subscriber's partner under CA 1989 s47(9) (facts.py)
    adult_at_risk: bool = False  # a recorded determination that the adult subject is at risk (DPA Sch 1 para 18(3))
    restricted: bool | None = None  # someone in the event is (True) or no one is (False) marked restricted
    # A MASH hub record names the subscriber's partner in one of these payload fields (contributing_partners,
    # referring_partners of a mash.decision; assigned_partner of a mash.action): feedback and coordination.
    partner_in: frozenset[str] | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    id: str
    where: str  # YAML path, e.g. rules[3]
    description: str
    subscribers: tuple[str, ...]  # names or roles, as written
    event_type_patterns: tuple[str, ...]  # as written, wildcards included
    event_types: frozenset[str]  # expanded
    source_agencies: frozenset[str] | None
    purpose: str
    lawful_basis: tuple[str, ...]  # the discloser's (the source agency's) bases, aliases expanded
    conditions: Conditions
    field_rules: tuple[FieldRule, ...]
    consent_based: bool  # cites Art 6(1)(a) consent: honour a refusal, withdrawal or objection
    # The duty to disclose (with Art 6(1)(c)) that lets the sharing go ahead despite an objection or refusal; None
    # for every other rule, whose sharing then waits for a recorded human decision (lawful.overriding_duty).
    overriding_duty: str | None
    recipient_basis: tuple[str, ...] | None = None  # the recipient's own bases; None: the discloser's (UK GDPR)
    para18_reason: str | None = None  # DPA 2018 Sch 1 para 18(2): why consent is not the basis
    para18_alone: bool = False  # para 18 is the only Schedule 1 condition: the rule cannot apply with consent given
    # A consensual service (early help): the rule applies only with the family's agreement to it recorded
    # (consent.SERVICE_AGREEMENT given), whatever its lawful basis.
    requires_service_agreement: bool = False
    # {statement, reviewed_by, reviewed_on}: a recorded review that the narrative this rule releases holds no special
    # category or criminal offence data; without one, released narrative needs both kinds of condition.
    narrative_review: Mapping[str, str] | None = None
    # Why every event this rule matches goes to a recorded human decision instead of being shared (e.g. health to
    # police about a capacitous adult: a public-interest judgement, MARAC); None: the rule shares by itself.
    requires_human_decision: str | None = None
    # `restricted_records`: the classifications (location, contact) of a restricted record this rule still releases
    # as its fields say, and the sentence saying why the local authority needs them (restricted.py; compile checks
    # every subscriber is the LA under s17/s47). Empty: a restricted record's location and contact are withheld.
    restricted_release: frozenset[str] = frozenset()
    restricted_reason: str | None = None
    # event type -> leaf path -> outcome
    tables: Mapping[str, Mapping[str, FieldOutcome]] = field(default_factory=dict, repr=False)
    # Memo of (event type, present paths) -> (released, masked, withheld): events of one shape repeat, so most
    # decisions skip the per-leaf lookups. Bounded; a pure cache of the tables above.
    partitions: dict[tuple[str, tuple[str, ...]], Partition] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class Partner:
    id: str
    name: str
    agency: str
    role: str
    # The `source.system` codes (ODS, LA or force codes) the partner's events carry, upper-cased: how a decision
    # knows which partner disclosed an event (the `s47_request` condition: was this body called upon?).
    source_systems: frozenset[str] = frozenset()
    # Told what of its data went to whom: a daily disclosure digest for its IG lead (broker/audit/digest.py)
    disclosure_digest: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class Subscriber:
    name: str
    partner: str
    role: str
    purposes: tuple[str, ...]
    key_suite: str
    delivery: str  # kafka | http-pull | sse
    public_key_b64: str | None = None  # inline key, checked at load
    key_file: Path | None = None  # resolved against the protocol file's folder; read only when sealing
    organisation: Mapping[str, str] = field(default_factory=dict)  # ods_code / urn, for `registered_with`
    description: str = ""
    agency: str = ""  # the partner's agency
    regime: str = "uk_gdpr"  # uk_gdpr | dpa2018_part3 (law enforcement processing)
    confidentiality: str | None = None  # DPA 2018 s11(1): why the recipient owes a duty of confidence

    def public_key(self) -> bytes:
        """The raw public key for sealing (lazy for key files). Raises SubscriberKeyError when unusable."""
        from broker.policy.keys import read_public_key

        return read_public_key(self)


@dataclass(frozen=True, slots=True)
class Governance:
    """The information sharing agreement's furniture (schemas/protocol.schema.json `governance`), as written: who is
    controller for what, the joint-controller arrangement, the DPIA, the appropriate policy documents, retention per
    classification, accountable roles with their mailboxes, review, breach and subject-rights routing. Plain
    mappings, so `explain` and the IG API show them as they are."""

    controllers: tuple[Mapping[str, str], ...]
    joint_controllers: Mapping[str, Any] | None
    dpia: Mapping[str, str]
    appropriate_policy_documents: tuple[Mapping[str, Any], ...]
    retention: tuple[Mapping[str, Any], ...]
    roles: tuple[Mapping[str, str], ...]
    review: Mapping[str, Any]
    breach: Mapping[str, Any]
    subject_rights: Mapping[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {"controllers": [dict(c) for c in self.controllers],
                "joint_controllers": None if self.joint_controllers is None else dict(self.joint_controllers),
                "dpia": dict(self.dpia),
                "appropriate_policy_documents": [dict(a) for a in self.appropriate_policy_documents],
                "retention": [dict(r) for r in self.retention], "roles": [dict(r) for r in self.roles],
                "review": dict(self.review), "breach": dict(self.breach),
                "subject_rights": dict(self.subject_rights)}


@dataclass(frozen=True, slots=True, eq=False)
class Protocol:
    id: str
    version: str
    title: str
    effective_from: str
    purposes: Mapping[str, str]
    partners: Mapping[str, Partner]
    subscribers: Mapping[str, Subscriber]  # name -> subscriber; `name in protocol.subscribers` is the membership test
    rules: tuple[Rule, ...] = field(repr=False)
    tests: tuple[Mapping[str, Any], ...] = field(repr=False)
    origin: str
    review_by: str | None = None
    owner: str | None = None
    governance: Governance | None = None  # optional in the language; a protocol a partnership signs has it
    # (subscriber name, event type) -> the rules that could apply, in file order: the engine's only lookup.
    index: Mapping[tuple[str, str], tuple[Rule, ...]] = field(default_factory=dict, repr=False)
    # (agency, source.system upper-cased) -> the partner that declared it (partners[].source_systems; unique by
    # compile). Keyed by agency too: an LA code and a force code may be the same digits.
    partner_by_system: Mapping[tuple[str, str], str] = field(default_factory=dict, repr=False)
    # The `invariants` section (invariants.Invariant): what the protocol promises about every decision it can make,
    # proven when the protocol file loads (prove.py).
    invariants: tuple[Any, ...] = field(default=(), repr=False)
    # The `hub` section (broker/policy/hub.py): cumulative concern, enquiries, repeat referrals and clocks.
    hub: HubRules = field(default_factory=HubRules, repr=False)
    # The `risk_scales` section (broker/policy/thresholds.py): scale id -> RiskScale, each agency's own gradings
    # mapped to the common risk level when the broker decides.
    risk_scales: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def revision(self) -> str:
        return f"{self.id}@{self.version}"

    def source_partner(self, event: Mapping[str, Any]) -> str | None:
        """The partner that disclosed the event: the one of the event's agency declaring its `source.system`.
        None when no partner declares it (the discloser is then unknown, and conditions about it fail)."""
        source = event.get("source")
        if not isinstance(source, Mapping) or not source.get("system"):
            return None
        return self.partner_by_system.get((str(source.get("agency")), str(source["system"]).strip().upper()))

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)
