"""Reading HL7 v2 ER7: splitting a stream into messages, field access by HL7 position, TS/DT values.

Segments and fields are parsed with the `hl7` package; a field is then re-split on the message's own separators
(python-hl7 nests a field with no components differently from one with them, so one shape is imposed here).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import hl7
import hl7.util
from hl7.util import unescape

from adapters.kit.interface import FieldProblem
from broker.errors import InputRejected

# python-hl7 logs the raw text of a field whose escape it cannot read: personal data must never reach the logs (the
# adapter reports the field by position instead).
hl7.util.logger.disabled = True

MLLP_START, MLLP_END = b"\x0b", b"\x1c"
_SEGMENT_START = re.compile(rb"(?:^|\r)(?=MSH)")
# HL7 TS/DTM: YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]
_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(?:(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,4}))?)?([+-]\d{4})?$")
LONDON = ZoneInfo("Europe/London")  # a TS without an offset is the sender's local time: England


# Batch envelopes (HL7 v2 chapter 2.10): file header/trailer (FHS/FTS) around batches (BHS/BTS) around messages.
# They carry no patient data, so they are dropped and the messages inside are read one by one.
BATCH_SEGMENTS = (b"FHS", b"BHS", b"BTS", b"FTS")
UTF8_BOM = b"\xef\xbb\xbf"


def starts_like_hl7(data: bytes) -> bool:
    """True when the bytes begin (after a BOM, MLLP start block or blank space) with MSH, FHS or BHS and a field
    separator: HL7 v2 announces itself, so this is recognised whatever the file is named or labelled."""
    head = data[:64].removeprefix(UTF8_BOM).lstrip(b"\x0b\r\n\t ")
    return head[:3] in (b"MSH", b"FHS", b"BHS") and len(head) > 3 and head[3:4] not in b"\r\n\t 0123456789"


def _without_batch_segments(raw: bytes) -> bytes:
    if not any(name in raw for name in BATCH_SEGMENTS):
        return raw
    return b"\r".join(seg for seg in raw.split(b"\r") if seg.lstrip(b"\t ")[:3] not in BATCH_SEGMENTS)


def split_messages(data: bytes) -> list[bytes]:
    """Each message's bytes with CR segment ends; MLLP framing, LF/CRLF line ends and batch envelopes tolerated. Each
    message names its own character set (MSH-18), so it is decoded on its own (`decode_message`)."""
    raw = data.removeprefix(UTF8_BOM).replace(MLLP_START, b"").replace(MLLP_END, b"\r")
    raw = _without_batch_segments(raw.replace(b"\r\n", b"\r").replace(b"\n", b"\r"))
    parts = _SEGMENT_START.split(raw)
    return [p.strip(b"\r") for p in parts if p.strip(b"\r\t ")]


_LINE_END = re.compile(rb"\r\n|\r|\n")


def segment_lines(data: bytes) -> list[list[tuple[bytes, int]]]:
    """Per message (as split_messages finds them), its segments' names and input lines (1-based, CR, LF or CRLF
    ending a line, as an editor counts them): for rejections that name the line of the segment at fault. Built only
    when something is rejected."""
    messages: list[list[tuple[bytes, int]]] = []
    for number, line in enumerate(_LINE_END.split(data.removeprefix(UTF8_BOM)), start=1):
        name = line.strip(MLLP_START + MLLP_END + b"\t ")[:3]
        if name == b"MSH":
            messages.append([])
        if messages and name and name not in BATCH_SEGMENTS:
            messages[-1].append((name, number))
    return messages


def message_line(lines: list[list[tuple[bytes, int]]], message: int, field: str = "") -> int | None:
    """The line of message `message` (1-based) where `field` ("PID-7", "MRG") is: its segment's first line in that
    message, else the message's MSH line; None when the message is not found."""
    if not 0 < message <= len(lines) or not lines[message - 1]:
        return None
    segments = lines[message - 1]
    wanted = field.split("-", 1)[0].encode("ascii", "replace")
    return next((number for name, number in segments if name == wanted), segments[0][1])


# HL7 table 0211 (MSH-18, first repetition: the message's character set) -> Python codec. The ISO 2022 switching
# sets (ISO IR14, IR87, IR159) and UTF-16/32 are not read: such a message is refused, naming MSH-18.
CHARSETS = {"ASCII": "ascii", "ISO IR6": "ascii", "UNICODE UTF-8": "utf-8", "GB 18030-2000": "gb18030",
            "BIG-5": "big5", "KS X 1001": "euc_kr", **{f"8859/{n}": f"iso8859_{n}" for n in (*range(1, 10), 15)}}
# No MSH-18: HL7 says ASCII, but UK systems send UTF-8 or Windows' Latin (1252) undeclared. UTF-8 is tried first
# (ASCII is UTF-8; Windows-1252 text is almost never valid UTF-8), then 1252, and the guess is reported.
UNDECLARED = ("utf-8", "cp1252")


def declared_codec(msh: str) -> str | None:
    """The codec of MSH-18 in an MSH segment's text, None when absent; FieldProblem for one this reader cannot read.
    The header's own fields are ASCII in every supported character set, so the raw bytes read as Latin-1 will do."""
    if len(msh) < 8:
        return None
    fields = msh.split(msh[3])  # fields[0] is "MSH", fields[1] MSH-2, fields[n] MSH-(n+1)
    if len(fields) < 18:
        return None
    encoding = fields[1]
    label = fields[17].split(encoding[1:2] or "~")[0].split(encoding[:1] or "^")[0].strip().upper()
    if not label:
        return None
    if label not in CHARSETS:
        raise FieldProblem("MSH-18", "character set not supported (read: ASCII, 8859/1-9, 8859/15, UNICODE UTF-8, "
                                     "GB 18030-2000, BIG-5, KS X 1001)")
    return CHARSETS[label]


def decode_text(data: bytes, codec: str | None) -> tuple[str, bool]:
    """(text, whether the character set was guessed). UnicodeDecodeError when the bytes are not valid in it."""
    if codec is not None:
        return data.decode(codec), False
    try:
        return data.decode(UNDECLARED[0]), False
    except UnicodeDecodeError:
        return data.decode(UNDECLARED[1]), True


def decode_message(data: bytes) -> tuple[str, str | None, bool]:
    """(text, declared codec or None, whether the character set was guessed); FieldProblem naming MSH-18 when the
    bytes do not decode."""
    codec = declared_codec(data.split(b"\r", 1)[0].decode("latin-1"))
    try:
        text, guessed = decode_text(data, codec)
    except UnicodeDecodeError:
        raise FieldProblem("MSH-18", "the message is not valid text in its character set" if codec else
                           "no character set declared and the message is neither UTF-8 nor Windows-1252") from None
    return text, codec, guessed


_HEADER_SEGMENTS = ("MSH", "BHS", "FHS")  # python-hl7 reads the separators out of these wherever they appear

# `""` is HL7's explicit null ("no value, and the receiver should delete any it holds"): read as no value, never as
# a malformed date or a name of two quote marks. The canonical schema has no nulls, so nothing more can be carried.
EXPLICIT_NULL = '""'

Segment = list[str]  # a segment's fields as raw text: [name, field 1, field 2, ...] (MSH: [MSH, "|", "^~\\&", ...])


def _plan(text: str) -> tuple[str, str] | None:
    """(separators "\r|~^&" as python-hl7 derives them from MSH-1/MSH-2, escape character), or None when the
    header is too odd to read without python-hl7 (no end to MSH-2, repeated separator characters)."""
    sep0 = text[3]
    end = text.find(sep0, 4)
    first_end = text.find("\r")
    if end < 0 or (0 <= first_end < end):
        return None
    seps = text[3:end]
    separators = ("\r" + seps[0] + (seps[2] if len(seps) > 2 else "~") + (seps[1] if len(seps) > 1 else "^")
                  + (seps[4] if len(seps) > 4 else "&"))
    if len(set(separators)) != 5:
        return None
    return separators, seps[3] if len(seps) > 3 else "\\"


def _split_segments(text: str, field_sep: str) -> list[Segment] | None:
    """Each segment's fields by splitting on the field separator; None if a later segment is a header segment."""
    out = []
    for n, seg in enumerate(text.split("\r")):
        if n == 0:  # MSH: MSH-1 is the field separator itself and MSH-2 the encoding characters
            end = seg.find(field_sep, 4)
            rest = seg[end + 1:]
            out.append([seg[:3], field_sep, seg[4:end], *(rest.split(field_sep) if rest else ())])
        elif seg[:3] in _HEADER_SEGMENTS:
            return None
        else:
            out.append(seg.split(field_sep))
    return out


# The escape sequences HL7 v2 (chapter 2.7) defines and this reader decodes: separators (F S T R E), highlighting
# (H N), hex data (X, whole bytes, read in the message's character set) and formatting (.br .sp .in .ti .sk .ce .fi
# .nf). python-hl7 silently drops anything else (\XZZ\, \Z locally defined, \C and \M character-set switches, an
# unterminated escape), so a name or an address would lose part of itself without a word: such a field is refused.
_KNOWN_ESCAPE = re.compile(r"[FSTREHN]|X(?:[0-9A-Fa-f]{2})+|\.(?:br|sp\d*|(?:in|ti)(?:[+-]?\d+)?|sk\d*|ce|fi|nf)")


# Highlighting (\H\ start, \N\ normal) is presentation, not data: python-hl7 would put "_" into the value.
_PLAIN_TEXT = {"H": "", "N": ""}


class EscapeError(InputRejected, ValueError):
    """An escape sequence python-hl7 would drop or misread; the reason names its kind, never its text."""


def check_escapes(text: str, esc: str) -> None:
    """Raise EscapeError unless every escape sequence in `text` is one HL7 defines and this reader decodes."""
    parts = text.split(esc)
    if len(parts) % 2 == 0:
        raise EscapeError("unterminated escape sequence")
    for sequence in parts[1::2]:
        if _KNOWN_ESCAPE.fullmatch(sequence):
            continue
        if sequence[:1] in ("Z", "C", "M"):
            raise EscapeError(f"unsupported escape sequence ({sequence[0]}: locally defined or a character-set switch)")
        raise EscapeError("malformed escape sequence")


class _Escapes:
    """What python-hl7's unescape reads from a message: its escape character and separators."""

    __slots__ = ("esc", "separators")

    def __init__(self, esc: str, separators: str) -> None:
        self.esc = esc
        self.separators = separators


@dataclass(frozen=True)
class Message:
    """One parsed message; fields addressed as HL7 does (PID-3 is field 3 of PID, MSH-3 likewise).

    Each segment is kept as the raw text of its fields, split once. For a header whose five separators are distinct
    (every real message) that is the text python-hl7 would give back for each field, without building its tree of
    containers; any other header goes through python-hl7 itself, which refuses what it cannot read.
    """

    segment_fields: list[Segment]
    separators: str  # "\r|~^&": segment, field, repetition, component, subcomponent
    escapes: _Escapes
    text: str
    codec: str | None = None  # MSH-18's character set; None: undeclared (UTF-8, else Windows-1252)
    guessed: list[str] = field(default_factory=list)  # where an undeclared character set had to be guessed

    @classmethod
    def parse(cls, message: str | bytes) -> Message:
        """A message from its bytes (decoded by MSH-18) or from text already decoded."""
        if isinstance(message, bytes):
            if not message.startswith(b"MSH"):
                raise FieldProblem("MSH", "message does not start with an MSH segment")
            text, codec, guessed = decode_message(message)
        else:
            text, guessed = message, False
            codec = declared_codec(text.split("\r", 1)[0]) if text.startswith("MSH") else None
        if not text.startswith("MSH") or len(text) < 8:
            raise FieldProblem("MSH", "message does not start with an MSH segment")
        stripped = text.strip()  # as python-hl7 does
        plan = _plan(stripped)
        fields = _split_segments(stripped, plan[0][1]) if plan else None
        if plan is None or fields is None:
            try:
                parsed = hl7.parse(text)
            except Exception:  # hl7 raises bare ParseException/IndexError/ValueError on broken headers
                raise FieldProblem("MSH", "not a parseable HL7 v2 message") from None
            fields = [[str(f) for f in seg] for seg in parsed]
            plan = (parsed.separators, parsed.esc)
        return cls(fields, plan[0], _Escapes(plan[1], plan[0]), text, codec, ["MSH-18"] if guessed else [])

    def segments(self, name: str) -> list[Segment]:
        return [s for s in self.segment_fields if s[0] == name]

    def segment(self, name: str) -> Segment | None:
        return next((s for s in self.segment_fields if s[0] == name), None)

    def _unescape(self, text: str) -> str:
        esc = self.escapes.esc
        if esc not in text:
            return text
        check_escapes(text, esc)
        if esc + "X" not in text:
            plain: str = unescape(self.escapes, text, app_map=_PLAIN_TEXT)  # python-hl7 is untyped
            return plain
        # python-hl7 reads hex byte by byte as Latin-1; bytes are text in the message's character set, and a
        # character may span several \X..\ sequences, so adjacent ones are decoded together
        out: list[str] = []
        pending = bytearray()
        for i, part in enumerate(text.split(esc)):
            if (i % 2 and part[:1] == "X") or not part:  # hex, or nothing between two escapes: still one run
                pending += bytes.fromhex(part[1:])
                continue
            if pending:
                out.append(self._hex_text(bytes(pending)))
                pending.clear()
            if i % 2:
                out.append(unescape(self.escapes, esc + part + esc, app_map=_PLAIN_TEXT))
            else:
                out.append(part)
        if pending:
            out.append(self._hex_text(bytes(pending)))
        return "".join(out)

    def _hex_text(self, data: bytes) -> str:
        try:
            text, guessed = decode_text(data, self.codec)
        except UnicodeDecodeError:
            raise EscapeError("hex escape is not text in the message's character set") from None
        if guessed and "MSH-18" not in self.guessed:
            self.guessed.append("MSH-18")
        return text

    def repetitions(self, segment: Segment | None, field: int) -> list[list[list[str]]]:
        """Repetitions of a field, each a list of components, each a list of unescaped subcomponents."""
        if segment is None or field >= len(segment):
            return []
        raw = segment[field]
        if segment[0] in _HEADER_SEGMENTS and field <= 2:  # the separators themselves: never unescaped
            return [[[raw]]]
        sep = self.separators
        rep_sep, comp_sep, sub_sep = sep[2], sep[3], sep[4]
        unescape = self._unescape
        try:
            return [[["" if sub == EXPLICIT_NULL else unescape(sub) for sub in comp.split(sub_sep)]
                     for comp in rep.split(comp_sep)] for rep in raw.split(rep_sep)]
        except EscapeError as exc:
            raise FieldProblem(f"{segment[0]}-{field}", str(exc)) from None
        except Exception:  # python-hl7 raises bare ValueError/IndexError/KeyError on a malformed escape sequence
            raise FieldProblem(f"{segment[0]}-{field}", "malformed escape sequence") from None

    def value(self, segment: Segment | None, field: int, component: int = 1, repetition: int = 1, sub: int = 1) -> str:
        """One value, '' when absent; positions are 1-based as in HL7 (PID-5.2 = value(pid, 5, 2))."""
        if segment is None or field >= len(segment):
            return ""
        raw = segment[field]
        try:
            if self.escapes.esc in raw or (segment[0] in _HEADER_SEGMENTS and field <= 2):
                # every subcomponent unescaped, as python-hl7 would (a broken escape anywhere in the field raises)
                return self.repetitions(segment, field)[repetition - 1][component - 1][sub - 1].strip()
            sep = self.separators  # nothing to unescape: split only down the path asked for
            found = raw.split(sep[2])[repetition - 1].split(sep[3])[component - 1].split(sep[4])[sub - 1].strip()
            return "" if found == EXPLICIT_NULL else found
        except IndexError:
            return ""


def components(rep: list[list[str]], n: int) -> str:
    """Component n (1-based), first subcomponent, '' when absent."""
    return rep[n - 1][0].strip() if len(rep) >= n and rep[n - 1] else ""


def ts(value: str, field: str) -> str | None:
    """An HL7 TS as an ISO date or date-time (with offset); None when empty; FieldProblem when malformed.

    Year or year-month precision is not a date the canonical schema can hold: treated as malformed.
    """
    text = value.strip()
    if not text:
        return None
    m = _TS.match(text)
    if not m or m.group(3) is None:
        raise FieldProblem(field, "not a valid HL7 date/time (YYYYMMDD[HHMM[SS]][+/-ZZZZ])")
    year, month, day, hour, minute, second, frac, offset = m.groups()
    try:
        date = dt.date(int(year), int(month), int(day))
        if hour is None:
            return date.isoformat()
        moment = dt.datetime(date.year, date.month, date.day, int(hour), int(minute or 0), int(second or 0),
                             int((frac or "0").ljust(6, "0")[:6]))
    except ValueError:
        raise FieldProblem(field, "not a valid HL7 date/time (out of range)") from None
    if offset:
        sign = 1 if offset[0] == "+" else -1
        try:
            tz = dt.timezone(sign * dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
        except ValueError:
            raise FieldProblem(field, "not a valid HL7 time zone offset") from None
        moment = moment.replace(tzinfo=tz)
    else:
        moment = moment.replace(tzinfo=LONDON)
    return moment.isoformat(timespec="seconds" if not frac else "microseconds")


def date_only(value: str, field: str) -> str | None:
    stamp = ts(value, field)
    return stamp[:10] if stamp else None
