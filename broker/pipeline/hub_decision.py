"""The MASH hub's decision as canonical events, as pure functions: the hub's request in, `mash.decision` and one
`mash.action` per partner asked to act out.

The hub records its joint decision on a contact or referral (POST /v1/hub/decisions, `mash-broker hub decide`). The
decision becomes events like any agency's record: validated against the canonical schema, encrypted per field,
published on the events topic, audited, and shared by the protocol's rules. So feedback is the protocol's business,
not this module's: the decision names the partners whose information it used and who referred
(`contributing_partners`, `referring_partners`), each action names the partner that must act (`assigned_partner`),
and rules with the condition `partner_in` release to each what the partnership agreed (broker/policy/README.md).

Each action is its own event, addressed to one partner: a field rule can release or withhold a path, not pick one
item of a list by who is reading, and what one agency must do is not every agency's business. The decision's
rationale stays on `mash.decision`: it rests on every agency's information, police intelligence included.

Ids: the hub's own reference is the record id and a digest of the request the record version, so a resent
decision gets the same event ids (and is delivered once) and a changed one never shares an id with what it replaces.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from adapters.kit.events import event_id, prune
from broker.schema.loader import SCHEMA_VERSION

AGENCY = "mash_hub"
FORMAT = "mash-hub-decision+json"
ADAPTER = "mash-hub-decision"
DECISION = "mash.decision"
ACTION = "mash.action"
TOKEN_PATTERN = r"^lt[0-9]+_[A-Za-z0-9_-]{20,64}$"
PARTNER_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
CODE_PATTERN = r"^[a-z][a-z0-9_]{1,60}$"
RAG_SCALE = "mash_rag"  # the hub's RAG rating as an agency level: the protocol's risk_scales maps it

Outcome = Literal["no_further_action", "information_and_advice", "early_help", "section_17_assessment",
                  "strategy_discussion_section_47", "police_action", "other"]
ActionCode = Literal["attend_strategy_discussion", "provide_information", "monitor_and_report", "offer_early_help",
                     "visit", "safety_plan", "other"]
Partner = Annotated[str, Field(pattern=PARTNER_PATTERN)]

# The hub is the local authority's front door: its decision is the LA's s17/s47 function, with the partners' s11
# duty; special category and criminal offence data under Art 9(2)(g) with Sch 1 paras 6 and 18.
LAWFUL_BASIS = {"article_6": "6(1)(e)", "article_9": "9(2)(g)",
                "dpa_2018_schedule_1": ["para_6_statutory_purposes", "para_18_safeguarding_children"],
                "statutory_gateways": ["children_act_1989_s17", "children_act_1989_s47", "children_act_2004_s11"]}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChildIn(_Strict):
    """Who the child is, for the partners that must act (a school must know which pupil). Optional; when given it
    must carry an NHS number or UPN the broker holds for the child the token names (the shell checks)."""

    nhs_number: str | None = Field(None, max_length=20)
    upn: str | None = Field(None, max_length=20)
    given_names: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=10)
    family_name: str | None = Field(None, max_length=100)
    date_of_birth: str | None = Field(None, pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class LeadIn(_Strict):
    partner: Partner = Field(description="The partner that leads the response (partners[].id of the protocol)")
    professional_role: str | None = Field(None, pattern=CODE_PATTERN,
                                          description="A role code: social_worker, team_manager, dsl...")
    professional_name: str | None = Field(None, max_length=200)
    professional_contact: str | None = Field(None, max_length=200, description="A work phone or mailbox")


class ActionIn(_Strict):
    partner: Partner = Field(description="The partner that must act")
    action: ActionCode
    due_by: AwareDatetime | None = None
    meeting_at: AwareDatetime | None = Field(None, description="When the strategy discussion or meeting is")
    instructions: str | None = Field(None, max_length=2000, description="What the partner must do, written for it")


class HubDecision(_Strict):
    """One MASH decision, as the hub posts it."""

    reference: str = Field(pattern=r"^[A-Za-z0-9._:/-]{1,100}$",
                           description="The hub's own id of the decision: a resend with the same content is one")
    subject_token: str = Field(pattern=TOKEN_PATTERN, description="The child, by the token on the hub's deliveries")
    child: ChildIn | None = None
    concerns: list[Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]] \
        = Field(min_length=1, max_length=50, description="Event ids of the contacts and referrals decided")
    enquiry_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_:.-]{1,100}$")
    rag: Literal["red", "amber", "green"]
    outcome: Outcome
    outcome_other: str | None = Field(None, pattern=CODE_PATTERN, description="With outcome other: the code")
    lead: LeadIn
    contributing_partners: list[Partner] = Field(max_length=30,
                                                 description="Partners whose information the decision used")
    referring_partners: list[Partner] = Field(default_factory=list, max_length=30,
                                              description="Partners that made the contact or referral")
    actions: list[ActionIn] = Field(default_factory=list, max_length=30)
    rationale: str | None = Field(None, max_length=10000, description="Why: narrative, encrypted, kept to the hub")
    decided_at: AwareDatetime
    revised: bool = Field(False, description="Supersedes the hub's earlier decision with the same reference")


def problems(decision: HubDecision, partners: Mapping[str, str]) -> list[str]:
    """What the protocol refuses in a decision, value-free (field positions only). `partners`: id -> agency."""
    out: list[str] = []
    named = [("lead.partner", decision.lead.partner)]
    named += [(f"contributing_partners[{i}]", p) for i, p in enumerate(decision.contributing_partners)]
    named += [(f"referring_partners[{i}]", p) for i, p in enumerate(decision.referring_partners)]
    named += [(f"actions[{i}].partner", a.partner) for i, a in enumerate(decision.actions)]
    out += [f"{where}: not a partner of the protocol" for where, partner in named if partner not in partners]
    for field in ("contributing_partners", "referring_partners", "concerns"):
        values = getattr(decision, field)
        if len(set(values)) != len(values):
            out.append(f"{field}: a value is named twice")
    if (decision.outcome == "other") != (decision.outcome_other is not None):
        out.append("outcome_other: needed with outcome other, and only then")
    if decision.child is not None and not (decision.child.nhs_number or decision.child.upn):
        out.append("child: needs the NHS number or UPN the broker holds for this child (a name alone could be "
                   "another child)")
    return out


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def record_version(decision: HubDecision) -> str:
    """A digest of the decision's content: what tells two versions of one reference apart."""
    body = json.dumps(decision.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


def _lead(decision: HubDecision, partners: Mapping[str, str]) -> dict[str, Any]:
    lead = decision.lead
    out: dict[str, Any] = prune({"partner": lead.partner, "agency": partners.get(lead.partner),
                                 "professional_role": lead.professional_role,
                                 "professional_name": lead.professional_name,
                                 "professional_contact": lead.professional_contact})
    return out


def decision_events(decision: HubDecision, *, token: str, hub: str, received_at: str,
                    partners: Mapping[str, str]) -> list[dict[str, Any]]:
    """The decision's canonical events, complete (linkage and receipt time set): `mash.decision`, then one
    `mash.action` per action. `token`: the child's current token; `hub`: the hub subscriber that decided (the
    source system); `partners`: the protocol's partner id -> agency, checked by `problems` first."""
    version = record_version(decision)
    decided_at = _iso(decision.decided_at)
    child = prune(decision.child.model_dump()) if decision.child else {}
    key_version = int(token[2:token.index("_")])
    common = {
        "schema_version": SCHEMA_VERSION, "occurred_at": decided_at, "recorded_at": received_at,
        "source": {"agency": AGENCY, "system": hub, "record_id": decision.reference, "record_version": version,
                   "format": FORMAT},
        "subject": {"linkage": {"token": token, "key_version": key_version, "basis": "subject_token",
                                "confidence": "high"},
                    "child": child, "related_people": []},
        "risk": {"level": "unknown", "categories": [],
                 "agency_levels": [{"scale": RAG_SCALE, "level": decision.rag}]},
        "lawful_basis": json.loads(json.dumps(LAWFUL_BASIS)), "consent": {"status": "not_applicable"},
        "data_quality": [],
    }
    decision_id = event_id(AGENCY, hub, decision.reference, version, "decision")
    lead = _lead(decision, partners)
    actions = [prune({"partner": a.partner, "action": a.action, "due_by": _iso(a.due_by),
                      "meeting_at": _iso(a.meeting_at), "instructions": a.instructions}) for a in decision.actions]
    payload = prune({
        "decision_kind": "revised" if decision.revised else "initial", "concerns": list(decision.concerns),
        "enquiry_id": decision.enquiry_id, "rag": decision.rag, "outcome": decision.outcome,
        "outcome_other": decision.outcome_other, "lead": lead,
        "contributing_partners": list(decision.contributing_partners),
        "referring_partners": list(decision.referring_partners), "actions": actions,
        "rationale": decision.rationale, "decided_at": decided_at})
    if not decision.contributing_partners:  # required by the schema even when empty: the hub used no one's data
        payload["contributing_partners"] = []
    out = [{"event_id": decision_id, "event_type": DECISION, **_copy(common), "payload": payload}]
    for i, action in enumerate(actions):
        out.append({"event_id": event_id(AGENCY, hub, decision.reference, version, f"action:{i}"),
                    "event_type": ACTION, **_copy(common),
                    "payload": prune({"decision_event_id": decision_id, "outcome": decision.outcome,
                                      "assigned_partner": action["partner"], "action": action["action"],
                                      "due_by": action.get("due_by"), "meeting_at": action.get("meeting_at"),
                                      "instructions": action.get("instructions"), "lead": lead,
                                      "decided_at": decided_at})})
    return out


def _copy(common: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of the shared envelope: each event's dicts are its own (later stages build new ones, but a
    shared nested dict would make one event's change every event's)."""
    copied: dict[str, Any] = json.loads(json.dumps(common))
    return copied


def hub_subscribers(subscribers: Mapping[str, Any]) -> Collection[str]:
    """The protocol's subscribers that are a MASH hub (role mash_hub): the scopes a hub_decision key may have."""
    return sorted(name for name, sub in subscribers.items() if getattr(sub, "role", None) == "mash_hub")
