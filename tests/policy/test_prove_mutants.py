"""The brute-force cross-check is strong enough: each deliberately broken checker below is caught by it (issue 18).

A mutant is the real checker with one fault put in: a fact's domain narrowed to its default (ignore the risk level,
the consent status, the age band...), one value of a domain dropped (the top risk band, a closed case, a refused
record), or a wrong reading of what is shared (masked treated as released, or as withheld; masked leaves never
counted against an invariant). For each, the cross-check (tests/policy/brute_force.py) runs over the same seeded
random protocols and biased events as the real checker passes, and must report a failure on one of them. The real
checker must pass every protocol tried, so a mutant is caught by its fault, not by noise. The aimed cross-check of
the real checker, seed by seed, lives here too: both tests judge it on the same seeds, worked out once.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from broker.policy import domains
from broker.policy import prove as prove_module
from broker.policy.invariants import Breach
from tests.policy.brute_force import biased_events, cross_check, random_protocol

SEEDS = range(60)  # protocols tried per mutant, until one catches it (most are caught in the first few)
# The seed that first caught each mutant, seeds tried in order (measured 2026-12-01): each mutant is tried on its own
# seed first, then on every other seed of SEEDS in order. Trying every uncaught mutant on every seed up to the last
# one needed cost 178 mutant cross-checks; this costs 21. A stale entry costs time, never strength.
FIRST_CAUGHT = {
    "ignore the objection": 0, "ignore the case status": 0, "ignore the adult-at-risk determination": 0,
    "ignore service agreements": 2, "ignore the plan kind": 3, "ignore the risk level": 4,
    "drop the top risk band": 4, "drop case closed": 4, "ignore the referral source": 4, "ignore the source agency": 5,
    "ignore the risk categories": 6, "ignore the consent status": 6, "ignore the restriction marker": 6,
    "ignore partner_in": 6, "treat masked as released": 6, "treat masked as withheld": 6, "ignore the age band": 8,
    "ignore registrations": 16, "ignore the s47 request": 18, "never count a masked leaf": 18,
    "drop a refused confidentiality record": 25,
}
EACH = 8  # events aimed at each rule and each invariant


def _narrow(name: str, keep: Callable[[tuple[Any, ...]], tuple[Any, ...]]) -> Callable[[pytest.MonkeyPatch], None]:
    """A checker whose dimension `name` walks only `keep(values)`."""
    def apply(mp: pytest.MonkeyPatch) -> None:
        real = domains.BY_NAME[name]
        mutant = dataclasses.replace(real, values=lambda scope, draft: keep(real.values(scope, draft)))
        mp.setattr(domains, "DIMENSIONS", tuple(mutant if d.name == name else d for d in domains.DIMENSIONS))
        mp.setattr(domains, "BY_NAME", {**domains.BY_NAME, name: mutant})
    return apply


def _default_only(*names: str) -> Callable[[pytest.MonkeyPatch], None]:
    def apply(mp: pytest.MonkeyPatch) -> None:
        for name in names:
            _narrow(name, lambda values: values[:1])(mp)
    return apply


def _drop(name: str, value: Any) -> Callable[[pytest.MonkeyPatch], None]:
    return _narrow(name, lambda values: tuple(v for v in values if v != value) or values[:1])


def _states(rewrite: Callable[[str], str | None]) -> Callable[[pytest.MonkeyPatch], None]:
    """A checker that reads a leaf's state wrongly (None: as withheld)."""
    def apply(mp: pytest.MonkeyPatch) -> None:
        real = prove_module.outcome

        def mutant(protocol: Any, scope: Any, case: Any) -> Any:
            found = real(protocol, scope, case)
            states = {p: s2 for p, s in found.states.items() if (s2 := rewrite(s)) is not None}
            return prove_module.Outcome(found.decision, states)
        mp.setattr(prove_module, "outcome", mutant)
    return apply


def _masked_never_counts(mp: pytest.MonkeyPatch) -> None:
    """A checker that judges invariants on released leaves only, whatever include_masked says."""
    real = prove_module.breaches

    def mutant(invariant: Any, decision: Any, rule: Any, shared: Any, label_of: Any) -> Breach | None:
        return real(invariant, decision, rule, {p: s for p, s in shared.items() if s == "released"}, label_of)
    mp.setattr(prove_module, "breaches", mutant)


MUTANTS: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "ignore the risk level": _default_only("risk_level"),
    "drop the top risk band": _narrow("risk_level", lambda values: values[:-1] or values),
    "ignore the risk categories": _default_only("risk_categories"),
    "ignore the age band": _default_only("age"),
    "ignore the consent status": _default_only("consent_status"),
    "ignore the objection": _default_only("objection"),
    "ignore the case status": _default_only("case_open"),
    "drop case closed": _drop("case_open", False),
    "ignore registrations": _default_only("registered_gp", "registered_school"),
    "ignore the restriction marker": _default_only("restricted"),
    "ignore the s47 request": _default_only("s47_requested"),
    "ignore partner_in": _default_only("partner_named"),
    "ignore the source agency": _default_only("source_agency"),
    "ignore the referral source": _default_only("referral_source"),
    "ignore the plan kind": _default_only("plan_kind"),
    "ignore the adult-at-risk determination": _default_only("adult_at_risk"),
    "ignore service agreements": _default_only("service_agreement"),
    "drop a refused confidentiality record": _drop("confidentiality", "refused"),
    "treat masked as released": _states(lambda s: "released" if s.startswith("masked") else s),
    "treat masked as withheld": _states(lambda s: None if s.startswith("masked") else s),
    "never count a masked leaf": _masked_never_counts,
}


@contextmanager
def _mutated(apply: Callable[[pytest.MonkeyPatch], None]) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        apply(mp)
        yield
    prove_module._SPLITS.clear()


_TRIALS: dict[int, tuple[Any, list[Any]]] = {}
_REAL: dict[int, list[str]] = {}


def trial(seed: int) -> tuple[Any, list[Any]]:
    """Seed's random protocol and the events aimed at its rules and invariants (pure in the seed: no checker,
    real or broken, is consulted)."""
    if seed not in _TRIALS:
        rng = random.Random(seed)
        protocol = random_protocol(rng)
        _TRIALS[seed] = protocol, biased_events(rng, protocol, EACH)
    return _TRIALS[seed]


def real_checker_failures(seed: int) -> list[str]:
    """What the cross-check finds wrong with the real checker on a seed, worked out once per module: the aimed test
    and the mutant test both judge the real checker on seeds 0-19 (the same protocols, the same events)."""
    if seed not in _REAL:
        _REAL[seed] = cross_check(*trial(seed))
    return _REAL[seed]


@pytest.mark.parametrize("seed", range(20))
def test_checker_agrees_with_brute_force_on_events_aimed_at_each_rule_and_invariant(seed: int) -> None:
    """The strong cross-check (tests/policy/brute_force.py): random protocols and invariants over every domain, and
    concrete events whose every condition value is drawn from a rule's or an invariant's own literals, their
    neighbours and the domain's edges. Its strength is shown by the mutant test below."""
    assert real_checker_failures(seed) == []


def test_every_broken_checker_is_caught_and_the_real_one_is_not() -> None:
    caught: dict[str, int] = {}
    for name, apply in MUTANTS.items():
        hint = FIRST_CAUGHT.get(name)
        for seed in ([hint] if hint in SEEDS else []) + [s for s in SEEDS if s != hint]:
            with _mutated(apply):
                found = cross_check(*trial(seed))
            if found:
                caught[name] = seed
                break
    uncaught = sorted(set(MUTANTS) - set(caught))
    # the real checker passes every seed up to the last one a mutant needed (all of SEEDS if one escaped), so each
    # mutant is caught by its fault on a protocol the real checker gets right, not by noise
    for seed in range(max(caught.values()) + 1) if not uncaught else SEEDS:
        assert real_checker_failures(seed) == [], f"the real checker fails seed {seed}"
    assert not uncaught, f"broken checkers the cross-check did not catch: {uncaught}"
    assert set(caught) == set(MUTANTS)
