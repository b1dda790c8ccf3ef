"""Reading an SSDA903 CSV file: which of the three files it is (from its header row), and its rows with line numbers.

The return is a set of CSV files; this adapter takes the header (child details), episodes and missing files, one
file per input. Column names are matched case-insensitively; every required column must be present, and a column
that belongs to none of the file's known columns refuses the input, since its meaning is unknown.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from adapters.kit.interface import AdapterInputError, Rejection

MAX_BYTES = 50 * 1024 * 1024
MAX_ROWS = 500_000


@dataclass(frozen=True, slots=True)
class FileKind:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]

    def accepts(self, columns: list[str]) -> bool:
        return set(self.required) <= set(columns)


HEADER = FileKind("header", ("CHILD", "SEX", "DOB"), ("ETHNIC", "UPN", "MOTHER", "MC_DOB"))
EPISODES = FileKind("episodes", ("CHILD", "DECOM"), ("RNE", "LS", "CIN", "PLACE", "PLACE_PROVIDER", "DEC", "REC",
                                                      "REASON_PLACE_CHANGE", "HOME_POST", "PL_POST", "URN"))
MISSING = FileKind("missing", ("CHILD", "MISSING", "MIS_START"), ("MIS_END",))
KINDS = (EPISODES, MISSING, HEADER)


@dataclass(frozen=True, slots=True)
class Row:
    line: int  # 1-based physical line where the row starts; the header row is line 1
    cells: list[str]


@dataclass(frozen=True, slots=True)
class Table:
    kind: FileKind
    columns: list[str]
    rows: list[Row]


def decode(data: bytes, source: str) -> str:
    if len(data) > MAX_BYTES:
        raise AdapterInputError(Rejection(source, "", "", f"input larger than {MAX_BYTES} bytes"))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise AdapterInputError(Rejection(source, "", "", "not UTF-8 text")) from None
    if "\x00" in text:
        raise AdapterInputError(Rejection(source, "", "", "contains NUL characters: not a CSV text file"))
    return text


def header_columns(first_line: str) -> list[str]:
    """Normalised column names of a header row (upper case, surrounding spaces removed)."""
    try:
        cells = next(csv.reader([first_line]), [])
    except csv.Error:
        return []
    return [c.strip().upper() for c in cells]


def kind_of(columns: list[str]) -> FileKind | None:
    return next((k for k in KINDS if k.accepts(columns)), None)


def read_table(data: bytes, source: str) -> Table:
    """The file's kind and rows, or AdapterInputError when the input as a whole is not one of the three files."""
    reader = csv.reader(io.StringIO(decode(data, source), newline=""), strict=True)
    try:
        columns = [c.strip().upper() for c in next(reader, [])]
        kind = _check_header(columns, source)
        rows, start = [], reader.line_num + 1
        for cells in reader:
            if len(rows) >= MAX_ROWS:
                raise AdapterInputError(Rejection(source, "", "", f"more than {MAX_ROWS} rows"))
            rows.append(Row(start, cells))
            start = reader.line_num + 1
    except csv.Error:
        # Quoting errors swallow what follows, so the file as a whole cannot be trusted.
        raise AdapterInputError(Rejection(source, f"line {reader.line_num}", "", "malformed CSV")) from None
    return Table(kind, columns, rows)


def _check_header(columns: list[str], source: str) -> FileKind:
    kind = kind_of(columns)
    if kind is None:
        raise AdapterInputError(Rejection(source, "line 1", "", "header row is not that of an SSDA903 header, "
                                                                "episodes or missing file"))
    known = set(kind.required) | set(kind.optional)
    for n, name in enumerate(columns, start=1):
        # Name only known columns in messages: an unknown "column name" may be a record's value (no header row).
        if name not in known:
            raise AdapterInputError(Rejection(source, "line 1", f"column {n}",
                                              f"not a column of the SSDA903 {kind.name} file"))
        if columns.index(name) != n - 1:
            raise AdapterInputError(Rejection(source, "line 1", name, "column appears more than once"))
    return kind
