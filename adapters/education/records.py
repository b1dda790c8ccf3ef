"""Mapping every record of a file, one at a time: a bad record becomes a Rejection and the rest still flow."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from adapters.education.reading import Element, position
from adapters.kit.interface import AdaptContext, AdapterOutput, FieldProblem, Rejection

# Maps one record element to (record id, events); raises FieldProblem when the record cannot be mapped.
Mapper = Callable[[Element], tuple[str, list[dict[str, Any]]]]


def map_records(records: Iterable[Element], ctx: AdaptContext, mapper: Mapper) -> AdapterOutput:
    out = AdapterOutput()
    seen: set[str] = set()
    for el in records:
        # position(el) only for a rejection: it counts the record's preceding siblings, so every record would cost
        # time in proportion to the file's size
        try:
            record_id, events = mapper(el)
        except FieldProblem as p:
            out.rejections.append(Rejection(ctx.source, position(el), p.field, p.reason, el.sourceline))
            continue
        if record_id in seen:
            # Same id, same version: the events would share ids with the first and be dropped as duplicates.
            out.rejections.append(Rejection(ctx.source, position(el), "", "duplicate of an earlier record in this file "
                                            "(same identifier)", el.sourceline))
            continue
        seen.add(record_id)
        out.add(events, partial(position, el), el.sourceline)
    return out


def check_threshold(threshold: float) -> bool:
    return isinstance(threshold, int | float) and 0 <= threshold <= 1
