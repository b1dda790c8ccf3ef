"""Intake as a pure function: native bytes -> complete, validated canonical events and precise rejections.

Both HTTP intake and `mash-broker convert` run this; only what happens to the result differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.kit.interface import AdaptContext, AdapterInputError, AdapterOutput, Rejection
from adapters.kit.registry import NoAdapter, select
from broker.pipeline.identify import Identity, LinkageKey, complete_identified
from broker.schema.validate import FieldError, validate_event


@dataclass(slots=True)
class Prepared:
    adapter: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    identities: list[list[Identity]] = field(default_factory=list)  # each event's child's, for the register
    rejections: list[Rejection] = field(default_factory=list)
    # why no adapter read the input: "media_type" (no adapter lists the content type) or "body" (one does, but the
    # bytes are not its format); None when an adapter was chosen
    refused: str | None = None
    # linkage tokens of the children named by events the canonical schema refused (their dead letter names them)
    rejected_tokens: list[str] = field(default_factory=list)
    # records the adapter left out as carrying no safeguarding fact, by kind (AdapterOutput.skipped)
    skipped: dict[str, int] = field(default_factory=dict)


def _schema_rejections(source: str, adapted: AdapterOutput, index: int, event: dict[str, Any],
                       problems: Sequence[FieldError]) -> list[Rejection]:
    """The canonical schema's refusal of event `index`, located at the input record (and line) it came from, as
    the adapter recorded it (`AdapterOutput.add`); by the event's index when the adapter did not say. The event
    type is the adapter's own constant, never the sender's text."""
    kind = event.get("event_type") if isinstance(event.get("event_type"), str) else "unknown type"
    where = adapted.origin(index)
    record, line = where if where is not None else (f"event {index} ({kind})", None)
    return [Rejection(source, record, p.field, f"canonical schema ({kind} event): {p.reason}", line)
            for p in problems]


def prepare(agency: str, data: bytes, ctx: AdaptContext, key: LinkageKey, *, content_type: str | None = None,
            filename: str | None = None) -> Prepared:
    """Adapt, link, stamp and validate. Never raises for bad input: every problem is a Rejection."""
    out = Prepared()
    try:
        adapter = select(agency, data, source=ctx.source, content_type=content_type, filename=filename)
        out.adapter = adapter.name
        adapted = adapter.adapt(data, ctx)
    except NoAdapter as exc:
        out.rejections.append(exc.rejection)
        out.refused = exc.kind
        return out
    except AdapterInputError as exc:
        out.rejections.append(exc.rejection)
        return out
    except Exception as exc:  # an adapter bug must not lose the record: reject it (it is dead-lettered whole)
        out.rejections.append(Rejection(ctx.source, "", "", f"adapter {out.adapter} failed ({type(exc).__name__})"))
        return out
    out.rejections.extend(adapted.located(r) for r in adapted.rejections)
    out.skipped = dict(adapted.skipped)
    for i, draft in enumerate(adapted.events):
        event, ids = complete_identified(draft, key, ctx.received_at)
        problems = validate_event(event)
        if problems:  # an adapter bug or an unmappable value: fail closed, name every field
            out.rejections.extend(_schema_rejections(ctx.source, adapted, i, event, problems))
            token = ((event.get("subject") or {}).get("linkage") or {}).get("token")
            if isinstance(token, str):
                out.rejected_tokens.append(token)
        else:
            out.events.append(event)
            out.identities.append(ids)
    return out
