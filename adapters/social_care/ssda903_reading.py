"""Reading an SSDA903 CSV file: which of the return's files it is (from its header row), and its rows with line numbers.

The return is a set of CSV files in the DfE layouts (as DfE's validator reads them); this adapter maps the header
(child details), episodes and missing files, one file per input. The other files of the return (UASC, OC2, OC3, AD1,
placed for adoption, reviews, previous permanence, social worker episodes) are recognised and refused by name: the
canonical schema has no place for what they say. Column names are matched case-insensitively; every required column
must be present. A column outside the file's layout is reported (`column.unknown`, by position: a "name" in a file
without a header row could be a child's value) and ignored, so a local extra column does not lose the whole return.
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
    mapped: bool = True  # False: recognised, and refused by name (nowhere in the canonical schema to put it)

    def accepts(self, columns: list[str]) -> bool:
        return set(self.required) <= set(columns)


HEADER = FileKind("header", ("CHILD", "SEX", "DOB"), ("ETHNIC", "UPN", "MOTHER", "MC_DOB"))
EPISODES = FileKind("episodes", ("CHILD", "DECOM"), ("RNE", "LS", "CIN", "PLACE", "PLACE_PROVIDER", "DEC", "REC",
                                                      "REASON_PLACE_CHANGE", "HOME_POST", "PL_POST", "URN"))
MISSING = FileKind("missing", ("CHILD", "MISSING", "MIS_START"), ("DOB", "MIS_END"))
# The return's other files, each known by the columns only it has (DfE 903 guidance; the validator's layouts).
NOT_MAPPED = (
    FileKind("UASC", ("CHILD", "DUC"), ("SEX", "DOB"), mapped=False),
    FileKind("OC2", ("CHILD", "CONVICTED", "HEALTH_CHECK"), (), mapped=False),
    FileKind("OC3", ("CHILD", "IN_TOUCH"), (), mapped=False),
    FileKind("AD1 (adoption)", ("CHILD", "DATE_INT", "DATE_MATCH"), (), mapped=False),
    FileKind("placed for adoption", ("CHILD", "DATE_PLACED"), (), mapped=False),
    FileKind("reviews", ("CHILD", "REVIEW"), (), mapped=False),
    FileKind("previous permanence", ("CHILD", "PREV_PERM"), (), mapped=False),
    FileKind("social worker episodes", ("CHILD", "SW_ID"), (), mapped=False),
    FileKind("social worker episodes", ("CHILD", "SW_DECOM"), (), mapped=False),
)
# Most specific first: the header file's columns (CHILD, SEX, DOB) are also in the UASC file.
KINDS = (EPISODES, MISSING, *NOT_MAPPED, HEADER)


@dataclass(frozen=True, slots=True)
class Row:
    line: int  # 1-based physical line where the row starts; the header row is line 1
    cells: list[str]


@dataclass(frozen=True, slots=True)
class Table:
    kind: FileKind
    columns: list[str]
    rows: list[Row]
    unknown: tuple[int, ...] = ()  # 1-based positions of columns outside the file's layout (ignored, reported)


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
        kind, unknown = _check_header(columns, source)
        rows: list[Row] = []
        start = reader.line_num + 1
        for cells in reader:
            if len(rows) >= MAX_ROWS:
                raise AdapterInputError(Rejection(source, "", "", f"more than {MAX_ROWS} rows"))
            rows.append(Row(start, cells))
            start = reader.line_num + 1
    except csv.Error:
        # Quoting errors swallow what follows, so the file as a whole cannot be trusted.
        raise AdapterInputError(Rejection(source, f"line {reader.line_num}", "", "malformed CSV")) from None
    return Table(kind, columns, rows, unknown)


README = "adapters/social_care/README.md"


def _check_header(columns: list[str], source: str) -> tuple[FileKind, tuple[int, ...]]:
    kind = kind_of(columns)
    if kind is None:
        raise AdapterInputError(Rejection(source, "line 1", "", "header row is not that of an SSDA903 header, "
                                                                "episodes or missing file"))
    if not kind.mapped:
        raise AdapterInputError(Rejection(source, "", "", f"SSDA903 {kind.name} file: not mapped; see {README}"))
    known = set(kind.required) | set(kind.optional)
    unknown = []
    for n, name in enumerate(columns, start=1):
        if name not in known:  # not named: an unknown "column name" may be a record's value (no header row)
            unknown.append(n)
        elif columns.index(name) != n - 1:
            raise AdapterInputError(Rejection(source, "line 1", name, "column appears more than once"))
    return kind, tuple(unknown)
