"""SSDA903 (children looked after) CSV return -> canonical social care events.

One input is one of the return's files, recognised from its header row: the header file (child details ->
`person.identified`), the episodes file (`looked_after_episode_started`/`_ended`) or the missing file
(`missing_from_care`); the return's other files are refused naming their kind (ssda903_reading.NOT_MAPPED).
One row is one record; a bad row is rejected as "line N" with the column as the field, and the other rows still
flow. The files do not name the local authority, so the transport must (ctx.system): without it,
ids and linkage tokens of different authorities' children could collide, and the input is refused.
"""

from __future__ import annotations

from collections.abc import Callable

from adapters.kit.events import warning
from adapters.kit.interface import AdaptContext, AdapterInputError, AdapterOutput, FieldProblem, Rejection
from adapters.social_care.common import receipt_day
from adapters.social_care.ssda903_reading import EPISODES, HEADER, MISSING, header_columns, kind_of, read_table
from adapters.social_care.ssda903_rows import RowContext, RowResult, episode_row, header_row, missing_row

MAX_SYSTEM = 200
MAPPERS: dict[str, Callable[..., RowResult]] = {
    HEADER.name: header_row, EPISODES.name: episode_row, MISSING.name: missing_row,
}


def _unknown_columns(positions: tuple[int, ...], kind: str) -> dict[str, str]:
    """One warning for the columns outside the layout (by position, at most 20 listed: the schema's field is short)."""
    listed = ", ".join(str(n) for n in positions[:20]) + (", ..." if len(positions) > 20 else "")
    field = f"column {listed}" if len(positions) == 1 else f"columns {listed}"
    return warning("column.unknown", field, f"not a column of the SSDA903 {kind} file; ignored")


class Ssda903Adapter:
    name = "social_care.ssda903"
    agency = "social_care"
    formats = ("SSDA903 children looked after return, CSV: header, episodes and missing files (the others refused "
               "by name)",)
    content_types = ("text/csv",)
    extensions = (".csv",)
    # What sniff looks for, told to a sender whose CSV it did not recognise (adapters.kit.registry.expectation).
    expects = ("an SSDA903 header row: CHILD,SEX,DOB (header file), CHILD,DECOM (episodes) or CHILD,MISSING,"
               "MIS_START (missing), column order free")

    def sniff(self, data: bytes) -> bool:
        first = data[:2048].split(b"\n", 1)[0].decode("utf-8-sig", errors="replace")
        return kind_of(header_columns(first)) is not None

    def adapt(self, data: bytes, ctx: AdaptContext) -> AdapterOutput:
        table = read_table(data, ctx.source)
        system = (ctx.system or "").strip()[:MAX_SYSTEM]
        if not system:
            raise AdapterInputError(Rejection(ctx.source, "", "", "SSDA903 files do not name the local authority: "
                                                                  "give the sending system (HTTP: the "
                                                                  "X-Source-System header; convert: --system)"))
        rc = RowContext(system=system, received_at=ctx.received_at, today=receipt_day(ctx))
        mapper = MAPPERS[table.kind.name]
        out = AdapterOutput()
        width = len(table.columns)
        ignored = [_unknown_columns(table.unknown, table.kind.name)] if table.unknown else []
        for number, row in enumerate(table.rows, start=1):
            if not any(c.strip() for c in row.cells):
                continue  # blank lines carry nothing
            where = f"row {number}"  # the data row after the header, with the line it starts on (quotes span lines)
            if len(row.cells) != width:
                out.rejections.append(Rejection(ctx.source, where, "", f"row has {len(row.cells)} cells, the header "
                                                                       f"has {width}", row.line))
                continue
            values = {name: cell.strip() for name, cell in zip(table.columns, row.cells, strict=True)}
            try:
                result = mapper(values, rc)
            except FieldProblem as p:
                out.rejections.append(Rejection(ctx.source, where, p.field, p.reason, row.line))
                continue
            for event in result.events:
                event["data_quality"].extend(dict(w) for w in ignored)
            out.add(result.events, where, row.line)
            out.rejections.extend(Rejection(ctx.source, where, p.field, p.reason, row.line) for p in result.problems)
        return out


ADAPTER = Ssda903Adapter()
