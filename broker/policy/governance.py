"""The information sharing agreement's furniture (`governance`): build it, and check it against partners and rules.

Pure functions over the protocol data. Each check answers a question an IG board asks before it signs: is every
partner's controllership stated, does every controller have a DPO (and every health and social care partner a
Caldicott guardian), does an appropriate policy document cover every Schedule 1 condition and every Part 3 sensitive
processing the rules rely on, is every class of data a recipient receives given a retention period, did the DPIA
come before the processing? Problems are (YAML path parts, reason), never a value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from broker.policy.lawful import possible_sources
from broker.policy.model import Governance

# The conditions that hold only with an appropriate policy document in place: DPA 2018 Sch 1 para 5(1) (Part 2
# conditions), para 1(1)(b), para 38 (Part 3 conditions relied on for Art 10 are not cited by the sample), and for
# law enforcement sensitive processing s35(4)(b) and (5)(c) with s42.
NEEDS_POLICY_DOCUMENT = frozenset({"dpa2018_sch1_para1", "dpa2018_sch1_para6", "dpa2018_sch1_para10",
                                   "dpa2018_sch1_para18", "dpa2018_s35_5"})
# Para 10(2): a disclosure to a competent authority (or in preparation for one) needs no policy document.
EXEMPT_WHEN_TO_POLICE = frozenset({"dpa2018_sch1_para10"})
# A Caldicott guardian is required of NHS bodies and of councils with social care functions (Health and Social Care
# (National Data Guardian) Act 2018 s1).
CALDICOTT_AGENCIES = frozenset({"health", "social_care"})

Problem = tuple[list[str | int], str]


def build_governance(raw: Mapping[str, Any] | None) -> Governance | None:
    if raw is None:
        return None
    return Governance(
        controllers=tuple(dict(c) for c in raw["controllers"]),
        joint_controllers=dict(raw["joint_controllers"]) if "joint_controllers" in raw else None,
        dpia=dict(raw["dpia"]),
        appropriate_policy_documents=tuple(dict(a) for a in raw["appropriate_policy_documents"]),
        retention=tuple(dict(r) for r in raw["retention"]), roles=tuple(dict(r) for r in raw["roles"]),
        review=dict(raw["review"]), breach=dict(raw["breach"]), subject_rights=dict(raw["subject_rights"]))


def _partner_refs(raw: Mapping[str, Any], partners: set[str]) -> Iterable[Problem]:
    for section in ("controllers", "appropriate_policy_documents", "roles"):
        for i, item in enumerate(raw[section]):
            if item["partner"] not in partners:
                yield ["governance", section, i, "partner"], "not the id of a partner in partners"
    for i, pid in enumerate((raw.get("joint_controllers") or {}).get("partners", ())):
        if pid not in partners:
            yield ["governance", "joint_controllers", "partners", i], "not the id of a partner in partners"


def _roles(raw: Mapping[str, Any], agency_of: Mapping[str, str]) -> Iterable[Problem]:
    held = {(r["partner"], r["role"]) for r in raw["roles"]}
    stated = {c["partner"] for c in raw["controllers"]}
    for pid in agency_of:
        if pid not in stated:
            yield (["governance", "controllers"],
                   f"partner {pid} is not given a controllers entry: say what it is controller for (UK GDPR Art 4(7))")
    for pid, agency in agency_of.items():
        if (pid, "dpo") not in held:
            yield (["governance", "roles"], f"partner {pid} has no dpo: a public authority designates a data "
                                            "protection officer (UK GDPR Art 37(1)(a); for a school, its DPO service)")
        if agency in CALDICOTT_AGENCIES and (pid, "caldicott_guardian") not in held:
            yield (["governance", "roles"], f"partner {pid} ({agency}) has no caldicott_guardian (Health and Social "
                                            "Care (National Data Guardian) Act 2018 s1)")


def _policy_documents(raw: Mapping[str, Any], rules: list[Mapping[str, Any]], agency_of: Mapping[str, str],
                      subscriber_partner: Mapping[str, str], subscriber_agency: Mapping[str, str],
                      role_names: Mapping[str, list[str]]) -> Iterable[Problem]:
    covered = {(a["partner"], code) for a in raw["appropriate_policy_documents"] for code in a["covers"]}
    partners_of = {agency: [p for p, a in agency_of.items() if a == agency] for agency in set(agency_of.values())}
    for i, rule in enumerate(rules):
        names = [n for who in rule["subscribers"] for n in role_names.get(who, [who])]
        to_police = bool(names) and all(subscriber_agency.get(n) == "police" for n in names)
        sources = possible_sources(rule.get("source_agencies"), _families(rule["event_types"]))
        disclosers = sorted({p for agency in sources for p in partners_of.get(agency, [])})
        recipients = sorted({subscriber_partner[n] for n in names if n in subscriber_partner})
        sides = [("lawful_basis", rule["lawful_basis"], disclosers),
                 ("recipient_basis", rule.get("recipient_basis", rule["lawful_basis"]), recipients)]
        for key, codes, who in sides:
            for code in codes:
                if code not in NEEDS_POLICY_DOCUMENT or (code in EXEMPT_WHEN_TO_POLICE and to_police
                                                         and key == "lawful_basis"):
                    continue
                missing = [p for p in who if (p, code) not in covered]
                if missing:
                    yield (["rules", i, key],
                           f"{code} needs an appropriate policy document (DPA 2018 Sch 1 para 5, s42) and none in "
                           f"governance.appropriate_policy_documents covers it for {', '.join(missing)}")


def _families(patterns: Iterable[str]) -> list[str]:
    """Event type patterns to something possible_sources reads: only the family matters (`police.*` -> police)."""
    return [p if p != "*" else "person.any" for p in patterns]


def _retention(raw: Mapping[str, Any], shared_labels: frozenset[str]) -> Iterable[Problem]:
    seen: dict[str, int] = {}
    for i, entry in enumerate(raw["retention"]):
        for j, label in enumerate(entry["classifications"]):
            if label in seen:
                yield (["governance", "retention", i, "classifications", j],
                       f"{label} already has a retention period at governance.retention[{seen[label]}]")
            seen.setdefault(label, i)
    for label in sorted(shared_labels - set(seen)):
        yield (["governance", "retention"], f"rules release {label} data but no retention period covers it "
                                            "(UK GDPR Art 5(1)(e): kept no longer than necessary)")


def governance_problems(data: Mapping[str, Any], shared_labels: frozenset[str]) -> list[Problem]:
    """Every problem with `governance` against the partners, subscribers and rules; [] when absent (optional in the
    language: a protocol under development need not carry it; the sample, as a partnership would sign it, does)."""
    raw = data.get("governance")
    if raw is None:
        return []
    agency_of = {p["id"]: p["agency"] for p in data["partners"]}
    subscriber_partner = {s["name"]: s["partner"] for s in data["subscribers"]}
    subscriber_agency = {s["name"]: agency_of.get(s["partner"], "") for s in data["subscribers"]}
    role_names: dict[str, list[str]] = {}
    for s in data["subscribers"]:
        role_names.setdefault(s["role"], []).append(s["name"])
    problems = list(_partner_refs(raw, set(agency_of)))
    problems += _roles(raw, agency_of)
    problems += _policy_documents(raw, data["rules"], agency_of, subscriber_partner, subscriber_agency, role_names)
    problems += _retention(raw, shared_labels)
    effective = data["protocol"]["effective_from"]
    if raw["dpia"]["approved_on"] > effective:
        problems.append((["governance", "dpia", "approved_on"],
                         "after protocol.effective_from: a DPIA is carried out prior to the processing (UK GDPR "
                         "Art 35(1))"))
    review_by = data["protocol"].get("review_by")
    if review_by and raw["review"]["next_review"] > review_by:
        problems.append((["governance", "review", "next_review"], "after protocol.review_by"))
    return problems
