"""The case and consent registers read a batch of tokens at once (issue 24): the same answers as one read per token,
on SQLite and PostgreSQL, for tokens the register holds, never saw, folded in, or migrated and waiting for review,
in one query per IN chunk instead of one per token; and the share worker's facts, read that way, plan the bench
mix exactly as the per-token reads did."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.bench.share_mix import comparable, mix_events, share_mix
from broker.pipeline.cases import case_transition
from broker.pipeline.register_facts import BatchFacts
from broker.pipeline.share_plan import LINKED, ShareFacts, plan_share
from broker.policy import ConsentState
from broker.policy.consent import ConsentRecord
from broker.policy.consent_review import CONFIRMED, MIGRATED_BY
from broker.schema.envelope import linkage_token
from broker.service.held import _registers_at_release
from broker.service.share import _registers_say
from broker.stores.cases import CaseRegister
from broker.stores.consent import ConsentRegister, migrate_v1
from broker.stores.db import IN_CHUNK
from broker.stores.delivered import DeliveredLog
from broker.stores.erasures import ErasureRegister
from broker.stores.held import HeldDeliveries

POOL = [f"lt1_{i:032d}" for i in range(40)]  # fictitious linkage tokens the registers hold something about
UNKNOWN = [f"lt1_{'f' * 28}{i:04d}" for i in range(10)]  # tokens no register has seen


def _cases(tmp_path: Path, url: str | None) -> CaseRegister:
    cases = CaseRegister(tmp_path / "cases.sqlite", url)
    for i, token in enumerate(POOL[:30]):
        cases.set(token, i % 3 != 0, f"e{i}")  # open, open, closed, ...
    for i in range(30, 36):  # tokens found to be one child with a held one: open under `into` if open under either
        cases.fold(POOL[i], into=POOL[i - 30], event_id=f"f{i}")
        cases.fold(POOL[i - 25], into=POOL[i], event_id=f"g{i}")
    return cases


def _consent(tmp_path: Path, url: str | None) -> ConsentRegister:
    consent = ConsentRegister(tmp_path / "consent.sqlite", url)
    for i, token in enumerate(POOL[:24]):
        status = ("given", "refused", "withdrawn", "unknown")[i % 4]
        consent.put(token, ConsentState(status, i % 5 == 0, f"2026-0{1 + i % 9}-01"))
        if i % 6 == 0:  # a related person's record too
            consent.put(token, ConsentState(records=[ConsentRecord("data_protection", "given", "parent", "p1",
                                                                   "2026-10-01", "ig")]))
    # records from the first register, some saying no: read the stricter way until reviewed (one is reviewed)
    consent.db.executemany("INSERT INTO consent VALUES (?, ?, ?, ?)",
                           [(t, ("refused", "given", "withdrawn")[i % 3], i % 2, "2025-01-01")
                            for i, t in enumerate(POOL[24:32])])
    migrate_v1(consent.db)
    consent.review(POOL[24], CONFIRMED, "2026-11-01", "ig:officer-1")
    for i in range(32, 38):
        consent.fold(POOL[i - 32], into=POOL[i])
        consent.fold(POOL[i - 8], into=POOL[i - 31])
    return consent


tokens_drawn = st.lists(st.sampled_from(POOL + UNKNOWN), max_size=80)  # repeats and unknown tokens included
SETTINGS = settings(max_examples=80, deadline=None)  # one register per test, many draws against it


def test_case_states_of_a_batch_equal_the_per_token_reads(tmp_path, store_url) -> None:
    cases = _cases(tmp_path, store_url)

    @SETTINGS
    @given(tokens=tokens_drawn)
    def batch_equals_per_token(tokens: list[str]) -> None:
        assert cases.open_states(tokens) == {t: cases.is_open(t) for t in tokens}

    batch_equals_per_token()


def test_consent_of_a_batch_equals_the_per_token_reads(tmp_path, store_url) -> None:
    consent = _consent(tmp_path, store_url)

    @SETTINGS
    @given(tokens=tokens_drawn)
    def batch_equals_per_token(tokens: list[str]) -> None:
        assert consent.get_many(tokens) == {t: consent.get(t) for t in tokens}

    batch_equals_per_token()


def test_the_registers_fixtures_cover_every_kind_of_token(tmp_path, store_url) -> None:
    """What the property tests draw from holds open, closed, unseen, folded and migrated children (else they
    prove little)."""
    cases, consent = _cases(tmp_path, store_url), _consent(tmp_path, store_url)
    states = cases.open_states(POOL + UNKNOWN)
    assert {states[t] for t in POOL} >= {True, False, None} and all(states[t] is None for t in UNKNOWN)
    assert states[POOL[30]] is True  # only folded in
    read = consent.get_many(POOL + UNKNOWN)
    assert all(read[t] is None for t in UNKNOWN) and read[POOL[32]] is not None  # only folded in
    migrated = [t for t in POOL[24:32] if any(r.recorded_by == MIGRATED_BY for r in consent._records(t))]
    assert len(migrated) == 8 and consent.awaiting_review() >= 1  # some still read the stricter way
    assert read[POOL[25]] != ConsentState(records=consent._records(POOL[25]))  # ... and the batch read did too


def test_a_batch_longer_than_one_in_list_is_read_whole(tmp_path, store_url) -> None:
    cases, consent = CaseRegister(tmp_path / "c.sqlite", store_url), ConsentRegister(tmp_path / "k.sqlite", store_url)
    tokens = [f"lt1_{i:032d}" for i in range(2 * IN_CHUNK + 7)]
    cases.db.executemany("INSERT INTO cases VALUES (?, ?, ?)", [(t, i % 2, "e") for i, t in enumerate(tokens)])
    for t in tokens[::3]:
        consent.put(t, ConsentState("refused", False, "2026-01-01"))
    asked = tokens + UNKNOWN
    assert cases.open_states(asked) == {t: cases.is_open(t) for t in asked}
    assert consent.get_many(asked) == {t: consent.get(t) for t in asked}


class _Statements:
    """Counts the statements a SQLite connection runs (sqlite3's trace callback)."""

    def __init__(self, *conns: object) -> None:
        self.count = 0
        for conn in conns:
            conn.set_trace_callback(self._seen)  # type: ignore[attr-defined]

    def _seen(self, sql: str) -> None:
        self.count += 1


def test_a_batch_of_500_tokens_is_read_in_one_query_per_register_not_one_per_token(tmp_path) -> None:
    cases, consent = _cases(tmp_path, None), _consent(tmp_path, None)
    tokens = (POOL + UNKNOWN + [f"lt1_{'e' * 28}{i:04d}" for i in range(500)])[:500]
    per_token = _Statements(cases.db.conn, consent.db.conn)
    old = {t: cases.is_open(t) for t in tokens}, {t: consent.get(t) for t in tokens}
    before = per_token.count
    batch = _Statements(cases.db.conn, consent.db.conn)
    new = cases.open_states(tokens), consent.get_many(tokens)
    assert new == old
    assert before >= 1000  # one case query and one consent query (or two) per token
    assert batch.count == 3  # cases, consent records, and the reviews of the migrated "no"s among them


@dataclass
class _ShareRegisters:
    """The share worker's register ports over real registers (what broker/service/runtime.py wires)."""

    protocol: object
    delivered: DeliveredLog
    held: HeldDeliveries
    cases: CaseRegister
    consent: ConsentRegister

    def consent_for_many(self, subjects):  # as Runtime.consent_for_many
        return self.consent.get_many(subjects)


def test_the_share_plan_over_the_bench_mix_is_unchanged_by_batch_register_reads(tmp_path) -> None:
    with share_mix(tmp_path, records=120) as mix:
        rt = _ShareRegisters(mix.protocol, DeliveredLog(tmp_path / "d.sqlite"), HeldDeliveries(tmp_path / "h.sqlite"),
                             CaseRegister(tmp_path / "cases.sqlite"), ConsentRegister(tmp_path / "consent.sqlite"))
        tokens = list(dict.fromkeys(i.token for b in mix.batches for i in b))
        for n, token in enumerate(tokens[::4]):  # refusals and objections, so consent changes what is shared
            rt.consent.put(token, ConsentState(("refused", "withdrawn", "given")[n % 3], n % 2 == 0, "2026-06-01"))
        old_plans, new_plans, unconsented = [], [], []
        for batch in mix.batches:
            batch_tokens = list(dict.fromkeys(i.token for i in batch))
            folded = [i.event["payload"]["superseded_token"] for i in batch if i.event["event_type"] == LINKED]
            old = ShareFacts(cases={t: rt.cases.is_open(t) for t in dict.fromkeys([*batch_tokens, *folded])},
                             consent={t: rt.consent.get(t) for t in batch_tokens})
            counted = _Statements(rt.cases.db.conn, rt.consent.db.conn)
            said = _registers_say(rt, batch, batch_tokens, folded, [], BatchFacts())
            assert counted.count == 2  # one case query, one consent query for the batch (per token: 2 x tokens)
            assert said.cases == old.cases and said.consent == old.consent
            old_plans.append(plan_share(batch, old, mix.keys, mix.params))
            new_plans.append(plan := plan_share(batch, ShareFacts(cases=said.cases, consent=said.consent), mix.keys,
                                                mix.params))
            unconsented.append(plan_share(batch, ShareFacts(cases=said.cases), mix.keys, mix.params))
            for write in plan.case_writes:  # the worker's case writes, as _apply makes them
                rt.cases.set(write.token, write.open, write.event_id)
        new, old_out = comparable(new_plans, mix.private_keys), comparable(old_plans, mix.private_keys)
    assert new["deliveries"] and new["case_writes"] and new["audits"]
    assert new["decided"] != comparable(unconsented, mix.private_keys)["decided"]  # the consent read counts
    for part in old_out:
        assert new[part] == old_out[part], part


@pytest.mark.parametrize("tokens", [[], UNKNOWN[:1]])
def test_an_empty_or_unknown_batch_reads_nothing_held(tmp_path, tokens) -> None:
    cases, consent = CaseRegister(tmp_path / "c.sqlite"), ConsentRegister(tmp_path / "k.sqlite")
    counted = _Statements(cases.db.conn, consent.db.conn)
    assert cases.open_states(tokens) == dict.fromkeys(tokens)
    assert consent.get_many(tokens) == dict.fromkeys(tokens)
    assert counted.count == (2 if tokens else 0)  # nothing asked: no query at all


@dataclass
class _ReleaseRegisters:
    """The held release's register ports over real registers (no identity register: no register facts)."""

    cases: CaseRegister
    consent: ConsentRegister
    erasures: ErasureRegister
    identities: None = None

    def consent_for_many(self, subjects):  # as Runtime.consent_for_many
        return self.consent.get_many(subjects)


def test_held_release_reads_the_registers_once_and_decides_each_event_as_the_per_row_reads(tmp_path) -> None:
    events = mix_events(60)
    tokens = list(dict.fromkeys(linkage_token(e) for e in events))
    rt = _ReleaseRegisters(_cases(tmp_path, None), ConsentRegister(tmp_path / "consent.sqlite"),
                           ErasureRegister(tmp_path / "erasures.sqlite"))
    for n, token in enumerate(tokens):
        if n % 3 == 0:
            rt.cases.set(token, n % 2 == 0, f"e{n}")
        if n % 4 == 1:
            rt.consent.put(token, ConsentState("withdrawn", n % 8 == 1, "2026-06-01"))
    rt.erasures.record(tokens[2:4], "2026-11-30T10:00:00Z", "admin")
    counted = _Statements(rt.cases.db.conn, rt.consent.db.conn, rt.erasures.db.conn)
    at_release = _registers_at_release(rt, events)
    assert counted.count == 3  # erasures, cases, consent records (no migrated "no": no reviews): not one per row
    per_row = []
    for event in events:  # what each row's release read before (one erasure, case and consent query per row)
        token = linkage_token(event)
        if rt.erasures.is_erased(token):
            per_row.append(None)
            continue
        transition = case_transition(event)
        case_open = transition if transition is not None else rt.cases.is_open(token)
        per_row.append((rt.consent.get(token), BatchFacts().for_event(token, case_open)))
    batched = [at_release.for_event(e, linkage_token(e)) for e in events]
    assert batched == per_row
    assert None in batched and any(r is not None and r[0] is not None for r in batched)  # erased and consented
