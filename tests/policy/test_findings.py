"""Issue 19's legal review, finding by finding: each shown fixed by a test that fails on the protocol reviewed.

The review read the sample protocol as it was at version 1.0.0 (commit 92d1b20; its 18 embedded tests passed
because they locked in that behaviour). That file is kept as `fixtures/sample-partnership-1.0.yaml`, and version
1.1.0 (commit b1f7d9a: the lawful-basis model's first part, with the sample's rules only re-coded) as
`fixtures/sample-partnership-1.1.yaml`. Both are our own files, copied from git history unchanged.

- Part A: the current compiler refuses 1.0.0, and its refusals name each legal error the review lists, by YAML path
  and provision.
- Part B: the current sample's embedded tests that express a finding fail on the old rules and pass on the new.
  1.0.0 does not compile any more, so its rules are compiled with the refusals of part A set aside (every one of
  them is checked to be one of part A's: nothing else is bypassed); 1.1.0 compiles as it is.
- Part C: findings no embedded test of the sample expressed, tested here against the sample.

Findings fixed in the engine (an objection routed to a person, consent kinds, para 18 only without consent) pass on
the old rules under today's engine: their tests are the engine's own (tests/policy/test_lawful_basis.py,
test_consent_kinds.py) and the table in broker/policy/README.md names them; those failed on 1.0.0's engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import broker.policy.compile as compile_module
from broker.policy import Protocol, load_protocol, run_protocol_tests
from broker.policy.consent import ConsentState
from broker.policy.engine import decide
from broker.policy.errors import ProtocolError
from broker.policy.testing import run_protocol_test
from tests.policy.conftest import SAMPLE, make_event

FIXTURES = Path(__file__).parent / "fixtures"
REVIEWED = FIXTURES / "sample-partnership-1.0.yaml"  # the protocol issue 19 reviewed
FIRST_PART = FIXTURES / "sample-partnership-1.1.yaml"  # the model's first part, rules re-coded only

# --- Part A: the reviewed protocol is refused, each legal error named -----------------------------------------------
# (finding, YAML path of the refusal, words it must contain). Rules of 1.0.0: [0] mash-s47-significant-harm,
# [1] mash-s17-child-in-need, [2] gp-cp-plan-notices, [3] gp-urgent-care-attendances, [4] school-education-concerns,
# [5] school-cp-plan-start-end, [6] police-domestic-abuse, [7] police-ppn-feedback, [8] early-help-consented-support.
REFUSALS: list[tuple[str, str, str]] = [
    ("L1 9(2)(h) accepted without Sch 1 para 2 (CP-IS notices to the GP)", "rules[2].lawful_basis",
     "uk_gdpr_art9_2_h needs DPA 2018 Schedule 1 paragraph 2"),
    ("L1 9(2)(h) accepted without Sch 1 para 2 (urgent care to the GP)", "rules[3].lawful_basis",
     "uk_gdpr_art9_2_h needs DPA 2018 Schedule 1 paragraph 2"),
    ("L2 9(2)(h) needs a recipient under a duty of confidence (s11(1))", "rules[2].subscribers",
     "DPA 2018 s11(1), Art 9(3)): give riverside_gp a confidentiality"),
    ("L2 ... the same for urgent care attendances", "rules[3].subscribers",
     "DPA 2018 s11(1), Art 9(3)): give riverside_gp a confidentiality"),
    ("L6 para 18 applied to adults (police-domestic-abuse has no under-18 condition)", "rules[6].conditions",
     "covers a child or an adult at risk (Sch 1 para 18(1)(b)"),
    ("L7 para 18 without its para 18(2) reason (hub s47)", "rules[0].para18_reason", "a reason in para 18(2)"),
    ("L7 para 18 without its para 18(2) reason (hub s17)", "rules[1].para18_reason", "a reason in para 18(2)"),
    ("L7 para 18 without its para 18(2) reason (school)", "rules[4].para18_reason", "a reason in para 18(2)"),
    ("L7 para 18 without its para 18(2) reason (school CP plans)", "rules[5].para18_reason",
     "a reason in para 18(2)"),
    ("L7 para 18 without its para 18(2) reason (police)", "rules[6].para18_reason", "a reason in para 18(2)"),
    ("L8 criminal offence data under 9(2)(h) alone, no Sch 1 condition (risk categories to the GP)",
     "rules[2].lawful_basis", "releases criminal offence data (UK GDPR Art 10): cite a DPA 2018 Schedule 1"),
    ("L9 criminal offence data on consent is para 29, not Art 6(1)(a) (early help: an adult's role)",
     "rules[8].lawful_basis", "consent to it is DPA 2018 Schedule 1 paragraph 29, not Art 6(1)(a)"),
    ("L9 ... naming the adult's role as what makes it criminal offence data", "rules[8].lawful_basis",
     "subject.related_people[].role"),
    ("L11 police data to the hub's s47 triage without s36(4)", "rules[0].lawful_basis",
     "only where authorised by law (DPA 2018 s36(4))"),
    ("L11 police data to the hub's s17 triage without s36(4)", "rules[1].lawful_basis",
     "only where authorised by law (DPA 2018 s36(4))"),
    ("L11 police data to the police's non-law-enforcement use without s36(4)", "rules[6].lawful_basis",
     "only where authorised by law (DPA 2018 s36(4))"),
    ("L11 police data (incidents) to early help without s36(4)", "rules[8].lawful_basis",
     "only where authorised by law (DPA 2018 s36(4))"),
    ("L10/L12 the police subscriber must say whether it processes under Part 3 or UK GDPR", "subscribers[2]",
     "(DPA 2018 Part 3, s31) or for another purpose (UK GDPR): say which with regime"),
    ("S9 PPN feedback's CIN assessment factors and primary need are health data under Art 6 alone",
     "rules[7].lawful_basis", "releases special category data (payload.factors[], payload.primary_need_code"),
    ("S9 ... and criminal offence data without a Sch 1 condition", "rules[7].lawful_basis",
     "releases criminal offence data (UK GDPR Art 10)"),
    ("S10 the school receives the categories of abuse (special category) with no Art 9 condition",
     "rules[5].lawful_basis", "releases special category data (payload.initial_category_of_abuse"),
    ("C2 risk categories are marked special category whatever their label", "rules[5].lawful_basis",
     "risk.categories[]): cite a UK GDPR Art 9(2) condition"),
]


def _refusals(path: Path) -> list[tuple[str, str]]:
    with pytest.raises(ProtocolError) as caught:
        load_protocol(path)
    return [(p.path, p.reason) for p in caught.value.problems]


@pytest.mark.parametrize(("finding", "where", "words"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_the_reviewed_protocol_is_refused_naming_the_legal_error(finding: str, where: str, words: str) -> None:
    refusals = _refusals(REVIEWED)
    assert any(path == where and words in reason for path, reason in refusals), (finding, refusals)


def test_the_reviewed_protocol_compiled_before_the_review() -> None:
    """The fixture is the reviewed file, not one written to fail: 1.0.0 of the sample, with its 18 tests."""
    text = REVIEWED.read_text(encoding="utf-8")
    assert 'version: "1.0.0"' in text and "id: police-domestic-abuse" in text
    assert text.count("\n  - name: ") - 5 == 18  # five subscribers are `- name:` entries too


# --- Part B: the findings' embedded tests fail on the old rules ---------------------------------------------------

def _compiled_without_legal_refusals(path: Path) -> Protocol:
    """The old file's rules as the engine would run them, its part A refusals set aside, and only those."""
    set_aside: list[ProtocolError] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compile_module._Problems, "raise_any", lambda self: set_aside.extend(self.items))
        protocol = load_protocol(path)
    unexpected = [(p.path, p.reason) for p in set_aside
                  if not any(p.path == where and words in p.reason for _, where, words in REFUSALS)]
    assert not unexpected, unexpected  # a refusal not listed in part A would be bypassed silently
    return protocol


# (finding, the sample's embedded test, the old versions it fails on). "1.1" absent: fixed by the model's first part.
FINDING_TESTS: list[tuple[str, str, tuple[str, ...]]] = [
    ("S1 the hub's s17 rule is a bulk feed: no routine pupil record without an open contact or referral",
     "the hub receives no routine pupil record about a child with no open contact or referral", ("1.0", "1.1")),
    ("S1 ... nor every emergency attendance of every child",
     "the hub receives no emergency attendance of a child the broker knows no case about", ("1.0", "1.1")),
    ("S1 ... a police notice is the force's contact, masked as under s17",
     "mash hub gets a medium-risk incident under s17 with narrative redacted and adults masked", ("1.0", "1.1")),
    ("S3 s47 fired on the source's risk flag: a CP-IS notice is high by definition and proves no enquiry",
     "a CP-IS notice (high by definition) is no s47 decision; with a referral open it reaches the hub under s17",
     ("1.0", "1.1")),
    ("S3 ... nor is a critical police incident a s47 enquiry",
     "a critical police incident is not a s47 enquiry; it reaches the hub as the force's contact, adults masked",
     ("1.0", "1.1")),
    ("S3 ... the LA's own recorded s47 decision is what fires the rule",
     "the LA's recorded s47 enquiry reaches the hub whatever risk level the record carries", ("1.0", "1.1")),
    ("S5 police-domestic-abuse reached adults: an adult's health flag never reaches the police by rule",
     "an adult's health domestic abuse flag never reaches the police by rule", ("1.0", "1.1")),
    ("S6 health to police about a capacitous adult with an objection is a recorded public-interest decision",
     "an adult's GP domestic abuse flag with an objection goes to a recorded public-interest decision",
     ("1.0", "1.1")),
    ("S7 a health flag tells the police a flag exists, never the address (a refuge) or phone",
     "a child's health domestic abuse flag tells the police a flag exists, never the address or phone", ("1.0",)),
    ("S7 restricted records (refuge, PDS S flag) release no location or contact",
     "a restricted patient's record reaches the hub with no address, phone or incident location", ("1.0", "1.1")),
    ("S8 PPN feedback sent every referral: only the police's own referrals",
     "PPN feedback is only about the police's own referrals, not a school's", ("1.0", "1.1")),
    ("S8 ... every assessment (its factors are health data)",
     "PPN feedback sends no assessment (its factors are health data; feedback is on the police's own referrals)",
     ("1.0", "1.1")),
    ("S8 ... every s47 outcome", "PPN feedback sends no s47 outcome to the police (it stays with the hub)",
     ("1.0", "1.1")),
    ("S9 PPN feedback released CIN factors and primary need (health data) under Art 6 alone",
     "PPN feedback never gives the police the risk categories or the child's primary need", ("1.0",)),
    ("S10 the school received the parents' special category risk categories",
     "the school learns of a CP plan but not the risk categories, the parents' special category data",
     ("1.0", "1.1")),
    ("S11 early help leaked police incident types and times",
     "a police incident never reaches early help, consent or not (DPA 2018 s36(4))", ("1.0",)),
    ("S12 early help leaked urgent care attendances",
     "an urgent care attendance never reaches early help (its type alone is health data)", ("1.0",)),
    ("S13 early help leaked SEN", "early help never receives a pupil's special educational needs", ("1.0", "1.1")),
    ("S14 early help leaked an adult's role 'offender'",
     "early help never learns an adult's role as offender or the child's risk categories", ("1.0",)),
    ("S15 early help leaked the referral source and the adults' addresses",
     "early help never receives the referral source, SEN needs or the adults' addresses and phones",
     ("1.0", "1.1")),
    ("S16 no Operation Encompass rule: the notification reaches the school despite an objection (s49A)",
     "Operation Encompass reaches the pupil's school despite an objection, minimum dataset only (s49A)", ("1.0",)),
    ("S17 Operation Encompass's minimum dataset: never the child's role or the offences",
     "Operation Encompass never tells the school the child's role, which can be suspect, nor the offences",
     ("1.0", "1.1")),
    ("S17/C1 ... nor the risk level, DASH grading or the family's objection",
     "Operation Encompass never tells the school the risk level, DASH grading or the family's objection", ("1.0",)),
    ("S21 unborn-child CP plans (on the mother's record) reached no one",
     "an unborn child's protection plan, held on the mother's record, reaches the mother's GP practice",
     ("1.0", "1.1")),
    ("S21 the CP-IS minimum dataset to the GP",
     "a CP-IS notice gives the GP its minimum dataset, not the child's address or name", ("1.0", "1.1")),
    ("C1 ... released only by a rule naming them (the hub's strategy discussion)",
     "the hub's strategy discussion sees the risk level, consent and DASH grading it weighs", ("1.0", "1.1")),
]


def _test_named(protocol: Protocol, name: str) -> dict[str, Any]:
    found = [t for t in protocol.tests if t["name"] == name]
    assert found, f"the sample protocol has no embedded test named {name!r}"
    return found[0]


@pytest.fixture(scope="module")
def current() -> Protocol:
    return load_protocol(SAMPLE)


@pytest.fixture(scope="module")
def reviewed() -> Protocol:
    return _compiled_without_legal_refusals(REVIEWED)


@pytest.fixture(scope="module")
def first_part() -> Protocol:
    return load_protocol(FIRST_PART)


@pytest.mark.parametrize(("finding", "name", "fails_on"), FINDING_TESTS, ids=[f[0] for f in FINDING_TESTS])
def test_the_findings_embedded_test_fails_on_the_old_rules_and_passes_on_the_new(
        finding: str, name: str, fails_on: tuple[str, ...], current: Protocol, reviewed: Protocol,
        first_part: Protocol) -> None:
    test = _test_named(current, name)
    assert run_protocol_test(current, test).passed, run_protocol_test(current, test).failures
    assert not run_protocol_test(reviewed, test).passed, finding
    assert run_protocol_test(first_part, test).passed is ("1.1" not in fails_on), finding


def test_every_embedded_test_of_the_sample_passes(current: Protocol) -> None:
    failed = [(r.name, r.failures) for r in run_protocol_tests(current) if not r.passed]
    assert not failed, failed


# --- Part C: findings no embedded test expressed ------------------------------------------------------------------
OBJECTION = ConsentState("not_sought", objection=True, recorded_on="2026-04-20")


def test_s2_an_objection_under_the_hubs_s17_rule_goes_to_a_person_never_overridden(current: Protocol) -> None:
    """1.0.0 overrode it "under s17". s17 is the LA's function, a power to share, no duty on anyone to disclose:
    Art 21(1) lets public-task processing go on after an objection only on compelling grounds shown case by case."""
    event = make_event("social_care.referral", "social_care", {"referral_date": "2026-05-01"})
    shared = decide(current, event, "mash_hub", case_open=True)
    assert shared.outcome == "deliver" and shared.rule_id == "mash-s17-child-in-need"
    held = decide(current, event, "mash_hub", consent=OBJECTION, case_open=True)
    assert held.outcome == "withhold" and held.consent_override is None
    assert held.human_decision is not None and held.human_decision.rule_id == "mash-s17-child-in-need"
    assert "children_act_1989_s17" in held.human_decision.basis


@pytest.mark.parametrize("status", ["refused", "withdrawn"])
def test_l16_a_refused_consent_does_not_block_the_hubs_public_task_share(current: Protocol, status: str) -> None:
    """Under public task a refused "consent" has no legal effect on the basis; 1.0.0's engine withheld the share."""
    event = make_event("social_care.referral", "social_care", {"referral_date": "2026-05-01"})
    d = decide(current, event, "mash_hub", consent=ConsentState(status, recorded_on="2026-04-20"), case_open=True)
    assert d.outcome == "deliver" and d.rule_id == "mash-s17-child-in-need" and d.human_decision is None
    assert d.consent_override is None


def test_l3_the_hub_rules_rest_on_para_6_not_para_18_alone(current: Protocol) -> None:
    """9(2)(g) was hard-wired to para 18; para 6 (statutory purposes) is the sounder condition for s17/s47 work, and
    para 10 serves the disclosures to the police."""
    by_id = {r.id: r for r in current.rules}
    for rule_id in ("mash-s47-significant-harm", "mash-police-contact", "mash-s17-child-in-need"):
        assert "dpa2018_sch1_para6" in by_id[rule_id].lawful_basis, rule_id
    assert "dpa2018_sch1_para10" in by_id["police-health-domestic-abuse-adult"].lawful_basis
