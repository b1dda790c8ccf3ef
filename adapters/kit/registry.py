"""Adapter discovery through the `mash_broker.adapters` entry-point group, and choosing one for an input."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from adapters.kit.interface import Adapter, AdapterInputError, Rejection

GROUP = "mash_broker.adapters"
AGENCIES = ("police", "health", "education", "social_care")


@cache
def _discover() -> tuple[tuple[Adapter, ...], tuple[str, ...]]:
    found, errors = [], []
    for ep in entry_points(group=GROUP):
        try:
            adapter = ep.load()
        except Exception as exc:  # a broken third-party adapter must not stop the others
            errors.append(f"{ep.name}: cannot load {ep.value} ({type(exc).__name__})")
            continue
        if isinstance(adapter, Adapter):
            found.append(adapter)
        else:
            errors.append(f"{ep.name}: {ep.value} does not provide the Adapter interface")
    return tuple(sorted(found, key=lambda a: a.name)), tuple(errors)


def all_adapters() -> tuple[Adapter, ...]:
    return _discover()[0]


def load_errors() -> tuple[str, ...]:
    """Entry points that failed to load: shown by `mash-broker adapters` and `doctor`."""
    return _discover()[1]


def broken_entry_points() -> tuple[str, ...]:
    """The names of the entry points that failed to load, alone (for /readyz, which is public: no module paths)."""
    return tuple(error.split(":", 1)[0] for error in load_errors())


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


class NoAdapter(AdapterInputError):
    """No adapter reads this input. `kind` says why, so HTTP can answer truthfully: "media_type" when no adapter of
    the agency lists the content type (415), "body" when one does but the bytes are not what it reads (422)."""

    def __init__(self, rejection: Rejection, kind: str) -> None:
        super().__init__(rejection)
        self.kind = kind


_BOMS = ((b"\x00\x00\xfe\xff", "UTF-32 BOM"), (b"\xff\xfe\x00\x00", "UTF-32 BOM"), (b"\xfe\xff", "UTF-16 BOM"),
         (b"\xff\xfe", "UTF-16 BOM"))


def body_problem(data: bytes) -> str | None:
    """What is plainly wrong with a body no adapter sniffed, named without quoting it; None when nothing obvious."""
    if data[:2] == b"\x1f\x8b":
        return "body is gzip-compressed: send it uncompressed"
    for bom, name in _BOMS:
        if data.startswith(bom):
            return f"body is not UTF-8 ({name} found): send it encoded as UTF-8"
    head = data[:64]
    if len(head) >= 4 and head.count(0) * 4 >= len(head):
        return "body is not UTF-8 (UTF-16 or UTF-32 without a BOM?): send it encoded as UTF-8"
    if data.lstrip()[:1] == b"[":
        return "a JSON array is not a record this adapter reads: send one record, a FHIR Bundle or a records object"
    return None


def select(agency: str, data: bytes, *, source: str, content_type: str | None = None,
           filename: str | None = None) -> Adapter:
    """The adapter for this agency whose content type (or file ending) matches and whose sniff accepts the bytes."""
    if agency not in AGENCIES:
        raise AdapterInputError(Rejection(source, "", "", f"unknown agency (expected one of {', '.join(AGENCIES)})"))
    mine = [a for a in all_adapters() if a.agency == agency]
    if content_type:
        mt = media_type(content_type)
        mine = [a for a in mine if mt in a.content_types]
        what = "content type"
    elif filename:
        mine = [a for a in mine if filename.lower().endswith(a.extensions)]
        what = "file type"
    else:
        what = "input"
    for adapter in mine:
        if adapter.sniff(data):
            return adapter
    # A format that announces itself in its first bytes (HL7 v2: MSH, FHS or BHS) is chosen by content whatever the
    # name or label: ADT extracts are stored as .txt and sent as text/plain. Only adapters that say so
    # (`recognised_by_content`): a JSON or XML body under the wrong label stays refused, as the label is then wrong.
    for adapter in all_adapters():
        if adapter.agency == agency and getattr(adapter, "recognised_by_content", False) and adapter.sniff(data):
            return adapter
    elsewhere = _read_elsewhere(agency, data)
    if not mine:
        raise NoAdapter(Rejection(source, "", "", _not_listed(agency, content_type, filename) + elsewhere),
                        "media_type")
    reason = body_problem(data) or _not_recognised(agency, data, mine, what) + elsewhere
    raise NoAdapter(Rejection(source, "", "", reason), "body")


def body_kind(data: bytes) -> str | None:
    """What kind of text the body plainly is (JSON, XML, HL7 v2, CSV), from its first line; None when unclear."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] in (b"{", b"["):
        return "JSON"
    if head[:1] == b"<":
        return "XML"
    if head[:4] in (b"MSH|", b"FHS|", b"BHS|"):
        return "HL7 v2"
    first = head.split(b"\n", 1)[0]
    return "CSV" if b"," in first else None


def expectation(adapter: Adapter) -> str:
    """What an adapter's sniff looks for, in words for the sender: its optional `expects`, else its formats."""
    expects = getattr(adapter, "expects", None)
    return expects if isinstance(expects, str) and expects else " or ".join(adapter.formats)


def _not_recognised(agency: str, data: bytes, mine: list[Adapter], what: str) -> str:
    """Why adapters that list this content type (or file ending) did not take the body: what it is, what they expect."""
    expected = "; or ".join(f"{expectation(a)} ({a.name})" for a in mine)
    kind = body_kind(data)
    if kind == "CSV":
        return f"the body is CSV but its header is not a known {agency} file: expected {expected}"
    if kind is not None:
        return f"the body is {kind} but not a known {agency} format: expected {expected}"
    return f"the body is not in a format the {what}'s adapter reads: expected {expected}"


def _not_listed(agency: str, content_type: str | None, filename: str | None) -> str:
    """No adapter of the agency lists this label: name the label (a header the sender chose, bounded) and the ones
    that are listed. A file name is not repeated: it may name a child."""
    mine = [a for a in all_adapters() if a.agency == agency]
    if content_type:
        accepted = sorted({t for a in mine for t in a.content_types})
        return (f"no {agency} adapter accepts content type '{media_type(content_type)[:100]}' "
                f"({agency} adapters accept {', '.join(accepted) or 'none'})")
    if filename:
        endings = sorted({e for a in mine for e in a.extensions})
        return f"no {agency} adapter reads this file type ({agency} adapters read {', '.join(endings) or 'none'})"
    return f"no {agency} adapter reads this input"


def _read_elsewhere(agency: str, data: bytes) -> str:
    """When another agency's adapter recognises the body, say so: the likeliest cause is the wrong agency's path."""
    others = sorted({a.agency for a in all_adapters() if a.agency != agency and _sniffs(a, data)})
    if not others:
        return ""
    return f"; the body looks like a {' or '.join(others)} record: send it for that agency"


def _sniffs(adapter: Adapter, data: bytes) -> bool:
    try:
        return bool(adapter.sniff(data))
    except Exception:  # a third-party sniff that breaks on an input it never expected must not turn a 4xx into a 500
        return False
