"""The registers, listed once. Everything that walks the registers reads `REGISTERS`: the runtime opens, checks and
closes them by it, `stores migrate` copies them by it, a child's erasure forgets by it (`FORGOTTEN_ON_SHRED`), and
`mash-broker stores --help` names them from it. A new register is one class and one entry here; the entry must say
what a shred does to it (`on_shred`), so a register that holds facts about a child cannot be left out of an erasure
without someone writing down why. tests/unit/test_register_list.py fails for a register class not listed here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast, runtime_checkable

from broker.stores.cases import CaseRegister
from broker.stores.consent import ConsentRegister
from broker.stores.cursors import CursorStore
from broker.stores.db import Db
from broker.stores.decisions import ReferralRegister
from broker.stores.delivered import DeliveredLog
from broker.stores.determinations import DeterminationRegister
from broker.stores.erasures import ErasureRegister
from broker.stores.held import HeldDeliveries
from broker.stores.history import HistoryRegister
from broker.stores.identities import IdentityRegister
from broker.stores.served import FirstServed


class Register(Protocol):
    """What every register has: one SQLite file in the data directory (or tables in PostgreSQL at `url`), the fixed
    names of every table it creates (what `stores migrate` copies), its connection, and close."""

    # read-only members, so each class's plain `FILE = ...` and tuple of tables conform (see RegisterSpec.file)
    @property
    def FILE(self) -> str: ...
    @property
    def TABLES(self) -> tuple[str, ...]: ...

    db: Db

    def __init__(self, path: Path, url: str | None = None) -> None: ...
    def close(self) -> None: ...


@runtime_checkable
class Forgets(Protocol):
    """A register holding facts about a child that its erasure deletes, under every token it carried."""

    def forget(self, tokens: Iterable[str]) -> int: ...
    def close(self) -> None: ...


FORGETS = "forgets"  # on_shred: the erasure calls its forget(tokens)
NO_CHILD = "holds nothing about a child"  # on_shred, for a register with no subject or token column


@dataclass(frozen=True)
class RegisterSpec:
    attr: str  # the Runtime attribute that holds it once started (rt.cases, rt.identities...)
    cls: type[Register]
    what: str  # in words, for `mash-broker stores --help`
    on_shred: str  # FORGETS, or why the register keeps its rows when a child is erased

    # A protocol's class attribute reads, on the class, as the property that declares it: hence the casts
    @property
    def file(self) -> str:
        return cast(str, self.cls.FILE)

    @property
    def tables(self) -> tuple[str, ...]:
        return cast(tuple[str, ...], self.cls.TABLES)

    def open(self, data_dir: Path, url: str | None = None) -> Register:
        return self.cls(data_dir / self.file, url)


REGISTERS: tuple[RegisterSpec, ...] = (
    RegisterSpec("delivered", DeliveredLog, "delivered log",
                 "keeps who received the child's data: the person.erased notice goes to those subscribers"),
    RegisterSpec("cursors", CursorStore, "subscriber cursors and the Kafka epoch", NO_CHILD),
    RegisterSpec("first_served", FirstServed, "first-served offsets", NO_CHILD),
    RegisterSpec("consent", ConsentRegister, "consent and objections",
                 "keeps IG's record of the lawful basis and objections (tokens and statuses, no personal data): "
                 "what was decided about sharing stays accountable after the data is gone"),
    RegisterSpec("cases", CaseRegister, "case state", "keeps only whether a token's case is open (no personal data)"),
    RegisterSpec("identities", IdentityRegister, "identity register", FORGETS),
    RegisterSpec("erasures", ErasureRegister, "erasure register",
                 "is the record of the erasure itself: it hides and refuses the child's data from then on"),
    RegisterSpec("held", HeldDeliveries, "held and decided deliveries",
                 "keeps event ids per subscriber; the erasure register hides those events and their data keys are "
                 "shredded"),
    RegisterSpec("referrals", ReferralRegister, "shares awaiting a human decision",
                 "keeps the decisions made (who decided, when, why): accountability for what was shared"),
    RegisterSpec("determinations", DeterminationRegister, "s47(9) requests and adult-at-risk determinations", FORGETS),
    RegisterSpec("history", HistoryRegister, "the hub's history of each child's events, enquiries and clocks",
                 FORGETS),
)

FORGOTTEN_ON_SHRED: tuple[RegisterSpec, ...] = tuple(r for r in REGISTERS if r.on_shred == FORGETS)


def _forgets(register: object, spec: RegisterSpec) -> Forgets:
    if not isinstance(register, Forgets):  # a register marked FORGETS without forget(), or not open
        raise TypeError(f"register {spec.attr} ({spec.file}) is marked as forgotten on a shred but cannot forget")
    return register


def forgetting(holder: object) -> list[Forgets]:
    """The open registers, held as attributes of `holder` (a started Runtime), that a child's erasure forgets."""
    return [_forgets(getattr(holder, spec.attr), spec) for spec in FORGOTTEN_ON_SHRED]


def open_forgotten(data_dir: Path, url: str | None, **opened: object) -> list[Forgets]:
    """The registers a child's erasure forgets, opened (the CLI's way in): those already open are passed by their
    attribute name (identities=...) and used as they are; the caller closes every one."""
    return [_forgets(opened[spec.attr] if spec.attr in opened else spec.open(data_dir, url), spec)
            for spec in FORGOTTEN_ON_SHRED]


def register_names() -> str:
    """The registers in words, for help texts."""
    return ", ".join(spec.what for spec in REGISTERS)
