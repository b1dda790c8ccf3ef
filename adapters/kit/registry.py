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
    if not mine:
        raise NoAdapter(Rejection(source, "", "", f"no {agency} adapter accepts this {what}"), "media_type")
    names = ", ".join(a.name for a in mine)
    reason = body_problem(data) or f"the body is not in a format the {what}'s adapter ({names}) reads"
    raise NoAdapter(Rejection(source, "", "", reason), "body")
