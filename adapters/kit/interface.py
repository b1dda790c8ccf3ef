"""The adapter interface: bytes in, canonical events and precise rejections out. No I/O, no clock, no keys."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from broker.errors import InputRejected


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one record (or the whole input) was refused. Never carries a value from the record."""

    source: str  # file name, or "request" for HTTP intake
    record: str  # position: "record 3", "row 4", "Bundle.entry[2]", "Children/Child[4]"; "" for the whole input
    field: str  # element or field path inside the record; "" when the record as a whole is refused
    reason: str
    # The input line (1-based) the problem is on, where the input has lines: a CSV row's, an HL7 v2 segment's, an
    # XML element's (lxml's sourceline), a JSON record's (kit.json_lines). None where it has none, or it is unknown.
    line: int | None = None

    @property
    def position(self) -> str:
        """The record and its line in one phrase, as the audit log and the CLI name it: 'record 3, line 12'."""
        if self.line is None or self.record == f"line {self.line}":
            return self.record
        return f"{self.record}, line {self.line}" if self.record else f"line {self.line}"

    def __str__(self) -> str:
        return ": ".join(p for p in (self.source, self.position, self.field, self.reason) if p)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def at(self, line: int | None) -> Rejection:
        """This rejection on that line (kept as it is when the line is unknown)."""
        return self if line is None or line == self.line else replace(self, line=line)


class AdapterInputError(InputRejected):
    """The whole input is unusable (not XML, wrong root element, hostile DTD, not UTF-8...)."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(str(rejection))
        self.rejection = rejection


class FieldProblem(InputRejected):
    """Raised while mapping one record: names the field and the reason; the adapter turns it into a Rejection."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(slots=True)
class AdapterOutput:
    events: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    # Records read and deliberately left out because they carry no safeguarding fact (an ordinary Condition, an
    # AllergyIntolerance, a lone Organization), counted by record kind. The kind is the format's own vocabulary (a
    # FHIR resource type name), never a string the sender chose. Not rejections: nothing is wrong with them.
    skipped: dict[str, int] = field(default_factory=dict)
    # Which input record each event came from, for a problem found after the adapter (the canonical schema refusing
    # an event): spans (first event index, end index, record position, line) added by `add`, in event order. The
    # position may be a function, for positions that cost something to work out (an XML element's path).
    origins: list[tuple[int, int, str | Callable[[], str], int | None]] = field(default_factory=list)
    # For inputs whose lines are worked out only when needed (JSON: a line map costs a second parse, paid only when
    # something is rejected): a record position -> its line. Intake puts the line on each rejection that lacks one.
    locate: Callable[[str], int | None] | None = None

    def skip(self, kind: str) -> None:
        self.skipped[kind] = self.skipped.get(kind, 0) + 1

    def add(self, events: Sequence[dict[str, Any]], record: str | Callable[[], str], line: int | None = None) -> None:
        """One input record's events, remembered as coming from that record (and line)."""
        start = len(self.events)
        self.events.extend(events)
        if len(self.events) > start:
            self.origins.append((start, len(self.events), record, line))

    def origin(self, index: int) -> tuple[str, int | None] | None:
        """The record (and line) event `index` came from; None when the adapter did not say (plain events.append)."""
        at = bisect.bisect_right(self.origins, index, key=lambda span: span[0]) - 1
        if at < 0 or not self.origins[at][0] <= index < self.origins[at][1]:
            return None
        _, _, named, line = self.origins[at]
        record = named if isinstance(named, str) else named()
        if line is None and self.locate is not None and record:
            line = self.locate(record)
        return record, line

    def located(self, rejection: Rejection) -> Rejection:
        """The rejection with its record's line, when the adapter can find it on demand (`locate`)."""
        if rejection.line is not None or self.locate is None or not rejection.record:
            return rejection
        return rejection.at(self.locate(rejection.record))

    def extend(self, other: AdapterOutput) -> None:
        shift = len(self.events)
        self.origins.extend((start + shift, end + shift, record, line) for start, end, record, line in other.origins)
        self.events.extend(other.events)
        self.rejections.extend(other.rejections)
        for kind, count in other.skipped.items():
            self.skipped[kind] = self.skipped.get(kind, 0) + count


@dataclass(frozen=True, slots=True)
class AdapterSettings:
    """Every adapter setting. The shell reads them once from broker.config.Settings at start (loading any file a
    setting names) and hands the same object to every adapt call: adapters read no environment and no files."""

    attendance_threshold: float = 0.9  # education: attendance rate below which a concern event is raised
    # social care: census year -> compiled DfE CIN XSD (adapters.social_care.cin_xsd), from MASH_CIN_XSD_DIR
    cin_schemas: Mapping[int, Any] = field(default_factory=dict)


DEFAULT_SETTINGS = AdapterSettings()


@dataclass(frozen=True, slots=True)
class AdaptContext:
    """What an adapter may know beyond the bytes: where they came from and the adapter settings."""

    source: str = "request"
    received_at: str = "1970-01-01T00:00:00Z"  # set by the shell from its clock; also the fallback occurred_at
    system: str | None = None  # sending system, when the transport names it (HTTP header X-Source-System)
    settings: AdapterSettings = DEFAULT_SETTINGS

    @property
    def attendance_threshold(self) -> float:
        return self.settings.attendance_threshold


@runtime_checkable
class Adapter(Protocol):
    """What every adapter provides. Register an instance under the `mash_broker.adapters` entry-point group."""

    name: str  # unique, e.g. "health.fhir"
    agency: str  # police | health | education | social_care
    formats: tuple[str, ...]  # human-readable, for `mash-broker adapters`
    content_types: tuple[str, ...]  # media types accepted over HTTP
    extensions: tuple[str, ...]  # file name endings accepted by `convert`

    def sniff(self, data: bytes) -> bool:
        """Cheap check that these bytes are this adapter's format (to choose among an agency's adapters)."""
        ...

    def adapt(self, data: bytes, ctx: AdaptContext) -> AdapterOutput:
        """Map every record; a bad record becomes a Rejection and the rest still flow.

        Raises AdapterInputError, and nothing else, when the input as a whole cannot be read.
        """
        ...
