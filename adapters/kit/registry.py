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
    raise AdapterInputError(Rejection(source, "", "", f"no {agency} adapter accepts this {what}"))
