"""The share stage's decisions for one batch as a pure function: the batch's revealed events, a snapshot of the
register facts they need, the protocol and the subscribers' key handles -> every effect of the batch.

`plan_share(items, facts, keys, params)` returns a `SharePlan`: the deliveries (sealed, per subscriber, in batch
order) and the dead letters to produce; the deliveries held for a subscriber that cannot be sealed to; the shares
referred to a person; the case-register writes; the audit records; the per-subscriber failures. It decides:

- who receives what: each event under the protocol (default deny) with the child's consent and the registers'
  facts; a `person.erased` notice to every subscriber that was ever sent the child's data, whatever the rules;
- case state through the batch: a `person.linked` carries the absorbed token's case over before the child's next
  decision; an event that opens or closes a case changes it for the events after it (a write only when it changes);
- identity notices once the case opens (issue 24): when an event opens the child's case (a referral after the
  record's `person.identified`, or a case a `person.linked` carries over), the child's identity events (`IDENTITY`)
  decided earlier in the batch while the case was not open are decided again, with the case open, for the
  subscribers they were withheld from, right after the opening event's own decisions, so the hub is told who the
  child is with the record that first sends it the child's data, after that data. A release takes the ordinary
  path (audited, deduplicated, sealed or held); a withhold again records nothing: the first withhold is audited,
  under an id apart from the release's (broker/policy/decision.py). Identity events only, never the batch's other
  earlier events: who the child is may follow the child's data to a subscriber, but sharing, say, a police incident
  because a referral came later in the same poll would make a disclosure depend on how Kafka batches polls. Which
  is what batching still decides here: an identity event and the event opening the case in different polls leave
  the notice to the child's next record, as before;
- duplicates: what the delivered log or this batch already sent a subscriber is not sent again;
- isolation: a subscriber whose public key is unusable has this and every later delivery held (behind what is held
  already, so its events stay in order) while the others go on; a rule that raises fails that subscriber for that
  event (nothing delivered, audited) and the batch goes on.

Sealing happens here, through `keys`, although it is crypto: it is a pure function of a subscriber's public key and
the released view, and whether it succeeds is a decision input (a failed seal holds the delivery and everything
after it for that subscriber), so keeping it in the shell would put that rule back in the shell's loop.

The shell (broker/service/share.py) reveals the batch, reads the facts, plans, then applies inside the batch's Kafka
transaction in a fixed order (see its docstring).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from adapters.kit.events import EVENT_NAMESPACE_BYTES, uuid5_text
from adapters.kit.interface import Rejection
from broker.audit.record import built_record
from broker.audit.withheld import plain_withhold, withheld_record
from broker.crypto.errors import CryptoError, SealError
from broker.pipeline.cases import case_transition
from broker.pipeline.deadletter import deadletter_record
from broker.pipeline.erasure import NOTICE_REASON, NOTICE_TYPE
from broker.pipeline.messages import Outgoing, encode
from broker.pipeline.register_facts import BatchFacts
from broker.pipeline.share import share
from broker.policy import ConsentState, Decision, SubscriberKeyError, decide, release
from broker.policy import Protocol as SharingProtocol
from broker.policy.decision import delivered_record_id
from broker.policy.facts import CaseFacts
from broker.policy.thresholds import assessed
from broker.schema.envelope import linkage_token

# A subscriber that cannot be sealed to: its deliveries are held (broker/service/held.py), the others go on.
SEAL_FAULTS = (SubscriberKeyError, SealError)
HELD_REASON = "subscriber public key unusable: delivery held until it loads"
LINKED = "person.linked"
IDENTITY = frozenset({"person.identified", "person.updated"})  # who the child is: decided again once a case opens
# ends the reason of such a release: why one event has a withhold and a delivery to one subscriber at one time (and
# how the bench's observer, broker/bench/e2e.py, tells it from a later announcement's decision)
REDECIDED = "(decided again: the child's case opened later in the batch)"


class ShareKeys(Protocol):
    """The key handles a batch needs: each subscriber's sealer, and the dead-letter scope for a poison message."""

    def seal_for(self, subscriber: str, released: dict[str, Any]) -> bytes:
        """The view sealed to the subscriber's public key; SubscriberKeyError or SealError when it cannot be."""
        ...

    def seal_deadletter_input(self, data: bytes, content_sha256: str) -> str:
        """The bytes sealed to the dead-letter scope; CryptoError when its key cannot be had."""
        ...


@dataclass(frozen=True, slots=True)
class Item:
    """One revealed event of the batch, and where it was read (a referral or a held delivery reads it again there)."""

    event: dict[str, Any]
    partition: int
    offset: int

    @property
    def token(self) -> str:
        return linkage_token(self.event)


@dataclass(frozen=True, slots=True)
class Poison:
    """A message of the batch that could not be decoded or revealed: dead-lettered, and the stream goes on."""

    topic: str
    partition: int
    offset: int
    value: bytes = field(repr=False)
    why: str  # value-free: "undecodable event (<exception type>)"

    @property
    def position(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True, slots=True)
class ShareFacts:
    """What the registers say, read once before the batch is planned."""

    sent: frozenset[tuple[str, str]] = frozenset()  # (subscriber, event id) the delivered log has
    holding: frozenset[str] = frozenset()  # subscribers with held deliveries
    cases: Mapping[str, bool | None] = field(default_factory=dict)  # token -> case open, for the batch's tokens and
    # those its person.linked events fold in (absent: no social care event seen)
    consent: Mapping[str, ConsentState | None] = field(default_factory=dict)  # token -> the consent register's
    register: BatchFacts = field(default_factory=BatchFacts)  # determinations and dates of birth (register_facts.py)
    notice_recipients: Mapping[str, frozenset[str]] = field(default_factory=dict)  # notice event id -> subscribers
    # ever sent a delivery about any of its erased tokens


@dataclass(frozen=True, slots=True)
class ShareParams:
    protocol: SharingProtocol
    mask_key: bytes = field(repr=False)
    now: str  # the batch's decision time (audit records, referrals, a poison message's receipt)
    deliver_topic: Callable[[str], str]  # subscriber -> its delivery topic
    deadletter_topic: str


@dataclass(frozen=True, slots=True)
class Delivery:
    subscriber: str
    event_id: str
    decision_id: str
    token: str
    message: Outgoing


@dataclass(frozen=True, slots=True)
class CaseWrite:
    token: str
    open: bool
    event_id: str


@dataclass(frozen=True, slots=True)
class Held:
    """A delivery held for a subscriber that cannot be sealed to: where its event sits on the events topic, so it
    can be read again and delivered once the key loads (the held register, broker/stores/held.py, keeps these)."""

    subscriber: str
    event_id: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class ReferralDue:
    """A share the law routes to a person (the shell makes the register's Referral: broker/service/decisions.py)."""

    decision: Decision
    event: dict[str, Any]
    token: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Failure:
    """One subscriber not served one event: a rule raised, or an erasure notice could not be sealed to it."""

    subscriber: str
    event_id: str
    reason: str  # value-free: what failed and the exception's type


@dataclass(frozen=True, slots=True)
class SharePlan:
    deadletters: tuple[Outgoing, ...] = ()
    deliveries: tuple[Delivery, ...] = ()
    held: tuple[Held, ...] = ()
    referrals: tuple[ReferralDue, ...] = ()
    case_writes: tuple[CaseWrite, ...] = ()  # in order; the shell writes them before it produces
    audits: tuple[dict[str, Any], ...] = ()
    failures: tuple[Failure, ...] = ()
    faults: Mapping[str, str] = field(default_factory=dict)  # subscriber -> why it cannot be sealed to (new this batch)
    decided: tuple[tuple[str, str], ...] = ()  # (subscriber, outcome) per decision, for the metrics
    duplicates: tuple[str, ...] = ()  # the subscriber of each delivery dropped as already sent
    poison: tuple[Poison, ...] = ()

    @property
    def marks(self) -> list[tuple[str, str, str]]:
        """The delivered log's marks: (subscriber, event id, decision id) of every delivery."""
        return [(d.subscriber, d.event_id, d.decision_id) for d in self.deliveries]

    @property
    def recipients(self) -> set[tuple[str, str]]:
        """(token, subscriber) of every delivery: who received what about a child, for erasure notices."""
        return {(d.token, d.subscriber) for d in self.deliveries}


def plan_share(items: Sequence[Item | Poison], facts: ShareFacts, keys: ShareKeys, params: ShareParams) -> SharePlan:
    """Every effect of one batch, in batch order (module docstring)."""
    b = _Batch(facts, keys, params)
    for item in items:
        if isinstance(item, Poison):
            b.poison(item)
        elif item.event["event_type"] == NOTICE_TYPE:
            b.notice(item)
        else:
            b.event(item)
    return SharePlan(tuple(b.deadletters), tuple(b.deliveries), tuple(b.held), tuple(b.referrals),
                     tuple(b.case_writes), tuple(b.audits), tuple(b.failures), dict(b.faults), tuple(b.decided),
                     tuple(b.duplicates), tuple(b.poisoned))


def decisions(protocol: SharingProtocol, event: dict[str, Any], *, consent: ConsentState | None, facts: CaseFacts,
              mask_key: bytes) -> list[tuple[str, Decision | None, dict[str, Any] | None, str | None]]:
    """(subscriber, decision, released view or None, why it failed or None) for every subscriber. All at once
    first (the fast path); if anything raises, one by one, so that a rule that raises fails only its subscriber."""
    try:
        return [(d.subscriber, d, released, None)
                for d, released in share(protocol, event, consent=consent, facts=facts, mask_key=mask_key)]
    except Exception:  # found again below, per subscriber
        pass
    out: list[tuple[str, Decision | None, dict[str, Any] | None, str | None]] = []
    event = dict(assessed(protocol.risk_scales, event))  # as share() does: deliver the level decided on
    for name in protocol.subscribers:
        try:
            decision = decide(protocol, event, name, consent=consent, facts=facts)
            released = release(event, decision, mask_key=mask_key) if decision.outcome == "deliver" else None
        except Exception as exc:  # a rule's fault: that subscriber fails, never the batch
            out.append((name, None, None, f"decision failed ({type(exc).__name__}): nothing delivered to this "
                                          "subscriber for this event"))
            continue
        out.append((name, decision, released, None))
    return out


class _Batch:
    """The working state of one plan: what is sent, held and open so far in the batch."""

    def __init__(self, facts: ShareFacts, keys: ShareKeys, params: ShareParams) -> None:
        self.facts, self.keys, self.p = facts, keys, params
        self.sent = set(facts.sent)  # what this batch sends joins it: an event twice in one batch is sent once
        self.holding = set(facts.holding)
        self.cases = dict(facts.cases)
        self.deadletters: list[Outgoing] = []
        self.deliveries: list[Delivery] = []
        self.held: list[Held] = []
        self.referrals: list[ReferralDue] = []
        self.case_writes: list[CaseWrite] = []
        self.audits: list[dict[str, Any]] = []
        self.failures: list[Failure] = []
        self.faults: dict[str, str] = {}
        self.decided: list[tuple[str, str]] = []
        self.duplicates: list[str] = []
        self.poisoned: list[Poison] = []
        # token -> its identity events decided in this batch while its case was not open, each with the subscribers
        # withheld from: decided again for them when the case opens (module docstring)
        self.unopened: dict[str, list[tuple[Item, frozenset[str]]]] = {}

    def poison(self, item: Poison) -> None:
        digest = hashlib.sha256(item.value).hexdigest()
        try:
            sealed = self.keys.seal_deadletter_input(item.value, digest)
        except CryptoError:
            sealed = ""  # the original stays on the events topic at its position
        record = deadletter_record(Rejection(item.position, "", "", item.why), agency="unknown", system=None,
                                   content_type="application/json", received_at=self.p.now, content_sha256=digest,
                                   sealed_input=sealed)
        self.deadletters.append(Outgoing(self.p.deadletter_topic, record["deadletter_id"].encode(), encode(record)))
        self.poisoned.append(item)

    def notice(self, item: Item) -> None:
        """A `person.erased` notice: to every past recipient of the child still in the protocol, whatever the rules."""
        event, token = item.event, item.token
        told = self.facts.notice_recipients.get(event["event_id"], frozenset())
        for subscriber in sorted(told & set(self.p.protocol.subscribers)):
            if (subscriber, event["event_id"]) in self.sent:
                self.duplicates.append(subscriber)
                continue
            try:
                sealed = self.keys.seal_for(subscriber, event)
            except Exception as exc:  # one subscriber's unusable key must not keep it from the others
                self.failures.append(Failure(subscriber, event["event_id"],
                                             f"erasure notice not sealed ({type(exc).__name__})"))
                continue
            self.sent.add((subscriber, event["event_id"]))
            decision_id = uuid5_text(EVENT_NAMESPACE_BYTES, f"erasure-notice\x1f{event['event_id']}\x1f{subscriber}")
            headers = (("event_id", event["event_id"].encode()), ("decision_id", decision_id.encode()),
                       ("protocol_version", str(self.p.protocol.version).encode()),
                       ("event_type", NOTICE_TYPE.encode()))
            self._deliver(subscriber, event["event_id"], decision_id, token, sealed, headers)
            self.audits.append(built_record("delivered", time=self.p.now, actor="share", subject=token,
                                            record_id=delivered_record_id(decision_id, subscriber),
                                            subscriber=subscriber, event_id=event["event_id"],
                                            decision_id=decision_id, reason=NOTICE_REASON))

    def event(self, item: Item) -> None:
        event, token = item.event, item.token
        was_open = self.cases.get(token)
        case_open = self._case(event, token)
        plain: list[Decision] = []  # the event's withholds that no rule applied to: one audit record names them all
        withheld: list[str] = []
        for subscriber, decision, released, failed in self._decisions(event, token, case_open):
            if decision is None:
                why = failed or "decision failed"
                self.failures.append(Failure(subscriber, event["event_id"], why))
                self.decided.append((subscriber, "error"))
                self.audits.append(built_record("admin_action", time=self.p.now, actor="share",
                                                action="delivery.failed", subject=token, subscriber=subscriber,
                                                event_id=event["event_id"], reason=why))
                continue
            if decision.outcome != "deliver":
                withheld.append(subscriber)
            self._decided(item, decision, released, plain)
        if plain:  # after the event's other records; the store expands it into one decision record per subscriber
            self.audits.append(withheld_record(plain, time=self.p.now, actor="share", subject=token))
        if event["event_type"] in IDENTITY and withheld and not case_open:
            self.unopened.setdefault(token, []).append((item, frozenset(withheld)))
        if case_open and not was_open:
            self._opened(token)

    def _opened(self, token: str) -> None:
        """The child's case has just opened: its identity events withheld earlier in the batch are decided again for
        those they were withheld from; a release is delivered as any, a withhold again adds nothing."""
        for item, withheld in self.unopened.pop(token, ()):
            for subscriber, decision, released, _ in self._decisions(item.event, token, True):
                if subscriber in withheld and decision is not None and decision.outcome == "deliver":
                    self._decided(item, replace(decision, reason=f"{decision.reason} {REDECIDED}"), released, [])

    def _decisions(self, event: dict[str, Any], token: str,
                   case_open: bool | None) -> list[tuple[str, Decision | None, dict[str, Any] | None, str | None]]:
        return decisions(self.p.protocol, event, consent=self.facts.consent.get(token),
                         facts=self.facts.register.for_event(token, case_open), mask_key=self.p.mask_key)

    def _decided(self, item: Item, decision: Decision, released: dict[str, Any] | None,
                 plain: list[Decision]) -> None:
        """One subscriber's decision of an event: audited, then referred, deduplicated, held or delivered."""
        p, token, subscriber = self.p, item.token, decision.subscriber
        self.decided.append((subscriber, decision.outcome))
        if plain_withhold(decision):
            plain.append(decision)
            return  # (a plain withhold is never referred, sent or held: nothing below applies to it)
        self.audits.append(built_record("decision", time=p.now, actor="share", subject=token,
                                        record_id=decision.decision_id, **decision.to_record()))
        key = (subscriber, decision.event_id)
        if released is None:
            # referred unless already sent (a redelivery decided again after an objection came in)
            if decision.human_decision is not None and key not in self.sent:
                self.referrals.append(ReferralDue(decision, item.event, token, item.partition, item.offset))
            return
        if key in self.sent:
            self.duplicates.append(subscriber)
            return
        self.sent.add(key)
        sealed = self._seal(subscriber, released)
        if sealed is None:  # this subscriber's fault: held, never lost, and the batch goes on
            self.held.append(Held(subscriber, decision.event_id, item.partition, item.offset))
            self.audits.append(built_record("admin_action", time=p.now, actor="share", action="delivery.held",
                                            subject=token, subscriber=subscriber, event_id=decision.event_id,
                                            decision_id=decision.decision_id, reason=HELD_REASON))
            return
        headers = (("event_id", decision.event_id.encode()), ("decision_id", decision.decision_id.encode()),
                   ("protocol_version", str(p.protocol.version).encode()))
        self._deliver(subscriber, decision.event_id, decision.decision_id, token, sealed, headers)
        self.audits.append(built_record("delivered", time=p.now, actor="share", subject=token,
                                        record_id=delivered_record_id(decision.decision_id, subscriber),
                                        subscriber=subscriber, event_id=decision.event_id,
                                        decision_id=decision.decision_id))

    def _case(self, event: dict[str, Any], token: str) -> bool | None:
        """The child's case state for this event's decisions, after what this event says of it."""
        if event["event_type"] == LINKED:  # before this child's next decision: its case state carries over
            theirs, ours = self.cases.get(event["payload"]["superseded_token"]), self.cases.get(token)
            if theirs is not None and not ours:
                self._set_case(token, theirs, event["event_id"])
        transition = case_transition(event)
        if transition is not None and self.cases.get(token) is not transition:
            # written only when the case opens or closes: most social care events re-assert an open case
            self._set_case(token, transition, event["event_id"])
        return self.cases.get(token)

    def _set_case(self, token: str, is_open: bool, event_id: str) -> None:
        self.cases[token] = is_open
        self.case_writes.append(CaseWrite(token, is_open, event_id))

    def _seal(self, subscriber: str, released: dict[str, Any]) -> bytes | None:
        """The sealed view; None when it must be held: the subscriber already has held deliveries (they go first),
        or its key is unusable now (then it is held from here on, for the rest of the batch too)."""
        if subscriber in self.holding:
            return None
        try:
            return self.keys.seal_for(subscriber, released)
        except SEAL_FAULTS as exc:
            self.holding.add(subscriber)
            self.faults[subscriber] = str(exc)
            return None

    def _deliver(self, subscriber: str, event_id: str, decision_id: str, token: str, sealed: bytes,
                 headers: tuple[tuple[str, bytes], ...]) -> None:
        message = Outgoing(self.p.deliver_topic(subscriber), token.encode(), sealed, headers)
        self.deliveries.append(Delivery(subscriber, event_id, decision_id, token, message))
