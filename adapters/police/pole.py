"""The police adapter: POLE JSON (a submission object or JSON Lines) -> canonical events and precise rejections.

Input format: schemas/police-pole-input.schema.json, described in adapters/police/README.md. Each record is checked
against the schema and then mapped; a record that fails either becomes one Rejection ("record N" or "line N", the
field path, a value-free reason) while the others flow.
"""

from __future__ import annotations

from typing import Any

from adapters.kit.interface import AdaptContext, AdapterInputError, AdapterOutput, FieldProblem, Rejection
from adapters.kit.json_lines import locator
from adapters.police.checks import envelope_problem, record_problem
from adapters.police.mapping import map_record, origin
from adapters.police.reading import read


def _events(record: Any, envelope: dict[str, Any], ctx: AdaptContext) -> list[dict[str, Any]]:
    if not isinstance(record, dict):
        raise FieldProblem("", "not a JSON object")
    problem = record_problem(record)
    if problem is not None:
        raise problem
    return map_record(record, origin(record, envelope, ctx.received_at, ctx.system))


class PoleAdapter:
    name = "police.pole"
    agency = "police"
    formats = ("POLE JSON submission (NPCC POLE vocabulary)", "POLE JSON Lines")
    content_types = ("application/json", "application/vnd.mash.pole+json")
    extensions = (".json", ".jsonl")
    expects = 'a JSON object with "records" (a submission) or "force_code" and "event_type" (one record or line)'

    def sniff(self, data: bytes) -> bool:
        head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
        return head.startswith(b"{") and any(k in head for k in (b'"records"', b'"force_code"', b'"event_type"'))

    def adapt(self, data: bytes, ctx: AdaptContext) -> AdapterOutput:
        parsed = read(data, ctx.source)
        if parsed.envelope:
            problem = envelope_problem(parsed.envelope)
            if problem is not None:
                raise AdapterInputError(Rejection(ctx.source, "", problem.field, problem.reason))
        out = AdapterOutput(rejections=list(parsed.rejections))
        # "record N" of a submission: its line found only if something is rejected; "line N" (JSON Lines) is one
        out.locate = locator(data, "records", r"record (\d+)", first=1)
        for position, record in parsed.records:
            try:
                out.add(_events(record, parsed.envelope, ctx), position)
            except FieldProblem as p:
                out.rejections.append(Rejection(ctx.source, position, p.field, p.reason))
        out.rejections.sort(key=lambda r: _order(r.record))
        out.rejections = [out.located(r) for r in out.rejections]  # the line map, built only when one is rejected
        return out


def _order(position: str) -> int:
    """Rejections in input order: JSON Lines parse failures and mapping failures interleave by line."""
    number = position.rsplit(" ", 1)[-1]
    return int(number) if number.isdigit() else 0


ADAPTER = PoleAdapter()
