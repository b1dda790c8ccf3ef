"""The recorded determinations register: what a person decided about a child's (or adult subject's) case that a
protocol rule may rely on, and that no agency's record carries.

Two kinds, each keyed by the subject's linkage token, recorded through the decisions API (broker/api/decisions.py)
and audited (`determination` records, broker/audit/README.md):

- an **s47(9) request**: the local authority, making enquiries under Children Act 1989 s47(1) about this child,
  calls upon named partners to assist it with information (s47(9)); a person s47(11) lists must then assist unless
  it would be unreasonable in all the circumstances (s47(10)). The duty exists only once called upon, for that
  enquiry: the request ends when withdrawn, or when the case register next shows the child's case closed (`end`,
  called by the share stage's facts read; a case closed and reopened between two of its reads is not seen closed).
- an **adult-at-risk determination**: that the subject is (or is not) an adult at risk in the sense of Care Act
  2014 s42(1) and DPA 2018 Sch 1 para 18(3), with the reason as a code. A newer determination supersedes the one
  before; a withdrawn one leaves the subject undetermined (unknown, which no `adult_at_risk` condition accepts).

Never a name or narrative: partner ids from the protocol, reason codes from the tables below, an optional
reference (a case or enquiry number in the agency's own system, checked to be a short code with no run of 10
digits, so an NHS number cannot be stored as one), the recorder's audit actor and times. Erasure deletes a
child's rows under every token it carried (`forget`), with SQLite's secure_delete and a WAL checkpoint so the
deleted rows do not linger in free pages or the write-ahead log.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.errors import Conflict
from broker.pipeline.register_facts import Determined
from broker.stores.db import IN_CHUNK, open_register

S47_REQUEST, ADULT_AT_RISK = "s47_request", "adult_at_risk"

# Why a subject is, or is not, an adult at risk: the statutory test each code records as met (or not).
AT_RISK_REASONS: dict[str, str] = {
    "care_act_s42_enquiry": "the local authority has reasonable cause to suspect the Care Act 2014 s42(1) "
                            "criteria and is making enquiries under s42(2)",
    "dpa_sch1_para18_3": "reasonable cause to suspect DPA 2018 Sch 1 para 18(3)(a)-(c): needs for care and "
                         "support, experiencing or at risk of neglect or harm, and as a result unable to protect "
                         "themselves",
}
NOT_AT_RISK_REASONS: dict[str, str] = {
    "criteria_not_met": "the Care Act 2014 s42(1) / DPA 2018 Sch 1 para 18(3) criteria are not met",
}
# Why a request or determination ends before the case does.
WITHDRAW_REASONS: dict[str, str] = {
    "recorded_in_error": "recorded in error",
    "enquiry_concluded": "the enquiry concluded",
    "no_longer_needed": "the information is no longer needed for the enquiry",
    "circumstances_changed": "the subject's circumstances changed",
}
CASE_CLOSED = "case_closed"  # an s47(9) request's end when the case register shows the case closed
SUPERSEDED = "superseded"  # an adult-at-risk determination replaced by a newer one

# A reference: a short code from the recorder's own system, never free text. No run of 10 digits (an NHS number),
# no '@', no spaces (so no name in words).
REFERENCE = re.compile(r"^(?![\s\S]*[0-9]{10})[A-Za-z0-9][A-Za-z0-9_./:-]{0,63}$")

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS s47_requests (request_id TEXT PRIMARY KEY, subject TEXT NOT NULL,"
    " requested_by TEXT NOT NULL, partners TEXT NOT NULL, enquiry_ref TEXT, recorded_by TEXT NOT NULL,"
    " recorded_at TEXT NOT NULL, ended_at TEXT, ended_by TEXT, end_reason TEXT)",
    "CREATE INDEX IF NOT EXISTS s47_requests_subject ON s47_requests (subject)",
    "CREATE TABLE IF NOT EXISTS adult_at_risk (determination_id TEXT PRIMARY KEY, subject TEXT NOT NULL,"
    " at_risk INTEGER NOT NULL, reason TEXT NOT NULL, reference TEXT, recorded_by TEXT NOT NULL,"
    " recorded_at TEXT NOT NULL, ended_at TEXT, ended_by TEXT, end_reason TEXT)",
    "CREATE INDEX IF NOT EXISTS adult_at_risk_subject ON adult_at_risk (subject)",
]
_S47 = ("request_id", "subject", "requested_by", "partners", "enquiry_ref", "recorded_by", "recorded_at",
        "ended_at", "ended_by", "end_reason")
_AAR = ("determination_id", "subject", "at_risk", "reason", "reference", "recorded_by", "recorded_at", "ended_at",
        "ended_by", "end_reason")


@dataclass(frozen=True, slots=True)
class S47Request:
    request_id: str
    subject: str  # the child's linkage token
    requested_by: str  # the local authority's partner id
    partners: tuple[str, ...]  # the partner ids called upon
    enquiry_ref: str | None
    recorded_by: str  # the recorder's audit actor
    recorded_at: str
    ended_at: str | None = None
    ended_by: str | None = None
    end_reason: str | None = None  # a WITHDRAW_REASONS code, or CASE_CLOSED

    @property
    def active(self) -> bool:
        return self.ended_at is None

    def view(self) -> dict[str, Any]:
        return {"kind": S47_REQUEST, "id": self.request_id, "subject": self.subject,
                "requested_by": self.requested_by, "partners": list(self.partners), "enquiry_ref": self.enquiry_ref,
                "recorded_by": self.recorded_by, "recorded_at": self.recorded_at, "active": self.active,
                "ended_at": self.ended_at, "ended_by": self.ended_by, "end_reason": self.end_reason}


@dataclass(frozen=True, slots=True)
class AdultAtRisk:
    determination_id: str
    subject: str
    at_risk: bool
    reason: str  # an AT_RISK_REASONS or NOT_AT_RISK_REASONS code
    reference: str | None
    recorded_by: str
    recorded_at: str
    ended_at: str | None = None
    ended_by: str | None = None
    end_reason: str | None = None  # a WITHDRAW_REASONS code, or SUPERSEDED

    @property
    def active(self) -> bool:
        return self.ended_at is None

    def view(self) -> dict[str, Any]:
        return {"kind": ADULT_AT_RISK, "id": self.determination_id, "subject": self.subject,
                "at_risk": self.at_risk, "reason": self.reason, "reference": self.reference,
                "recorded_by": self.recorded_by, "recorded_at": self.recorded_at, "active": self.active,
                "ended_at": self.ended_at, "ended_by": self.ended_by, "end_reason": self.end_reason}


def _s47(row: tuple[Any, ...]) -> S47Request:
    v = dict(zip(_S47, row, strict=True))
    return S47Request(**{**v, "partners": tuple(json.loads(v["partners"]))})


def _aar(row: tuple[Any, ...]) -> AdultAtRisk:
    v = dict(zip(_AAR, row, strict=True))
    return AdultAtRisk(**{**v, "at_risk": bool(v["at_risk"])})


class AlreadyEnded(Conflict):
    """The request or determination is no longer in force (withdrawn, superseded or ended with the case)."""


class DeterminationRegister:
    FILE, TABLE = "determinations.sqlite", "s47_requests"  # its SQLite file in the data directory, and a table
    TABLES = ("s47_requests", "adult_at_risk")  # every table, for `stores migrate`

    def __init__(self, path: Path, url: str | None = None) -> None:
        # durable: a determination is a person's acknowledged act
        self.db = open_register(path, _SCHEMA, url=url, durable=True)
        if self.db.dialect == "sqlite":  # erasure: deleted rows are overwritten, not left in free pages
            self.db.execute("PRAGMA secure_delete=ON")

    # --- s47(9) requests -----------------------------------------------------------------------------------------
    def request_s47(self, subject: str, *, requested_by: str, partners: Iterable[str], enquiry_ref: str | None,
                    recorded_by: str, at: str) -> S47Request:
        request = S47Request(str(uuid.uuid4()), subject, requested_by, tuple(sorted(set(partners))), enquiry_ref,
                             recorded_by, at)
        with self.db.transaction():
            self.db.execute(f"INSERT INTO s47_requests ({', '.join(_S47)}) VALUES ({','.join('?' * len(_S47))})",
                            (request.request_id, subject, requested_by, json.dumps(list(request.partners)),
                             enquiry_ref, recorded_by, at, None, None, None))
        return request

    def s47_request(self, request_id: str) -> S47Request | None:
        rows = self.db.query(f"SELECT {', '.join(_S47)} FROM s47_requests WHERE request_id = ?", (request_id,))
        return _s47(rows[0]) if rows else None

    def end_s47(self, request_id: str, *, by: str, reason: str, at: str) -> S47Request:
        """Withdraw one request, once (AlreadyEnded when it is not in force)."""
        with self.db.transaction():
            cur = self.db.execute("UPDATE s47_requests SET ended_at = ?, ended_by = ?, end_reason = ?"
                                  " WHERE request_id = ? AND ended_at IS NULL", (at, by, reason, request_id))
            if cur.rowcount != 1:
                raise AlreadyEnded(request_id)
        found = self.s47_request(request_id)
        assert found is not None
        return found

    def end_closed(self, tokens: Iterable[str], *, at: str) -> list[S47Request]:
        """End every active request about these tokens: their children's cases are closed, and an s47(9) request
        belongs to the enquiry it was made in. Returns what was ended (for the audit)."""
        wanted = list(dict.fromkeys(tokens))
        if not wanted:
            return []
        with self.db.transaction():
            found = [_s47(r) for r in self.db.query_in(
                f"SELECT {', '.join(_S47)} FROM s47_requests WHERE ended_at IS NULL AND subject IN ({{marks}})",
                wanted)]
            self.db.executemany("UPDATE s47_requests SET ended_at = ?, ended_by = ?, end_reason = ?"
                                " WHERE request_id = ? AND ended_at IS NULL",
                                [(at, "share", CASE_CLOSED, r.request_id) for r in found])
        return [S47Request(**{**{k: getattr(r, k) for k in _S47}, "ended_at": at, "ended_by": "share",
                              "end_reason": CASE_CLOSED}) for r in found]

    # --- adult-at-risk determinations ----------------------------------------------------------------------------
    def determine(self, subject: str, *, at_risk: bool, reason: str, reference: str | None, recorded_by: str,
                  at: str) -> tuple[AdultAtRisk, AdultAtRisk | None]:
        """Record a determination, superseding the one in force (returned second, as it was before, or None)."""
        made = AdultAtRisk(str(uuid.uuid4()), subject, at_risk, reason, reference, recorded_by, at)
        with self.db.transaction():
            before = self.adult_at_risk(subject)
            if before is not None:
                self.db.execute("UPDATE adult_at_risk SET ended_at = ?, ended_by = ?, end_reason = ?"
                                " WHERE determination_id = ?", (at, recorded_by, SUPERSEDED, before.determination_id))
            self.db.execute(f"INSERT INTO adult_at_risk ({', '.join(_AAR)}) VALUES ({','.join('?' * len(_AAR))})",
                            (made.determination_id, subject, int(at_risk), reason, reference, recorded_by, at,
                             None, None, None))
        return made, before

    def adult_at_risk(self, subject: str) -> AdultAtRisk | None:
        """The determination in force for `subject`, or None."""
        rows = self.db.query(f"SELECT {', '.join(_AAR)} FROM adult_at_risk WHERE subject = ? AND ended_at IS NULL"
                             " ORDER BY recorded_at DESC, determination_id LIMIT 1", (subject,))
        return _aar(rows[0]) if rows else None

    def withdraw_determination(self, subject: str, *, by: str, reason: str, at: str) -> AdultAtRisk:
        """Withdraw the determination in force (AlreadyEnded when there is none)."""
        with self.db.transaction():
            found = self.adult_at_risk(subject)
            if found is None:
                raise AlreadyEnded(subject)
            self.db.execute("UPDATE adult_at_risk SET ended_at = ?, ended_by = ?, end_reason = ?"
                            " WHERE determination_id = ?", (at, by, reason, found.determination_id))
        return AdultAtRisk(**{**{k: getattr(found, k) for k in _AAR}, "ended_at": at, "ended_by": by,
                              "end_reason": reason})

    # --- reading -------------------------------------------------------------------------------------------------
    def listed(self, tokens: Iterable[str]) -> list[S47Request | AdultAtRisk]:
        """Every record (in force or ended) about these tokens, oldest first."""
        wanted = list(dict.fromkeys(tokens))
        found: list[S47Request | AdultAtRisk] = [
            _s47(r) for r in self.db.query_in(f"SELECT {', '.join(_S47)} FROM s47_requests"
                                              " WHERE subject IN ({marks})", wanted)]
        found += [_aar(r) for r in self.db.query_in(f"SELECT {', '.join(_AAR)} FROM adult_at_risk"
                                                    " WHERE subject IN ({marks})", wanted)]
        return sorted(found, key=lambda r: (r.recorded_at, r.view()["id"]))

    def in_force(self, children: Mapping[str, Iterable[str]]) -> dict[str, Determined]:
        """For each child token, what is in force under it or any token it carried (`children`: child token ->
        every token of that child, itself included). One query per IN_CHUNK tokens over both tables."""
        owner = {t: child for child, tokens in children.items() for t in (child, *tokens)}
        s47: dict[str, set[str]] = {}
        s47_open: dict[str, set[str]] = {}
        at_risk: dict[str, tuple[str, bool]] = {}  # the newest determination in force per child
        wanted = list(owner)
        for start in range(0, len(wanted), IN_CHUNK // 2):
            part = wanted[start:start + IN_CHUNK // 2]
            marks = ",".join("?" * len(part))
            rows = self.db.query(
                f"SELECT subject, partners, NULL, NULL FROM s47_requests WHERE ended_at IS NULL AND subject IN"
                f" ({marks}) UNION ALL SELECT subject, NULL, at_risk, recorded_at FROM adult_at_risk WHERE"
                f" ended_at IS NULL AND subject IN ({marks})", [*part, *part])
            for subject, partners, risk, recorded_at in rows:
                child = owner[subject]
                if partners is not None:
                    s47.setdefault(child, set()).update(json.loads(partners))
                    s47_open.setdefault(child, set()).add(subject)
                elif child not in at_risk or at_risk[child][0] < recorded_at:
                    at_risk[child] = (recorded_at, bool(risk))
        return {child: Determined(frozenset(s47.get(child, ())),
                                  at_risk[child][1] if child in at_risk else None,
                                  tuple(sorted(s47_open.get(child, ()))))
                for child in children if child in s47 or child in at_risk}

    # --- erasure -------------------------------------------------------------------------------------------------
    def forget(self, tokens: Iterable[str]) -> int:
        """Delete every record about these tokens (a child's erasure); returns how many rows went."""
        wanted = list(dict.fromkeys(tokens))
        gone = 0
        with self.db.transaction():
            for table in self.TABLES:  # fixed table names
                for start in range(0, len(wanted), IN_CHUNK):
                    part = wanted[start:start + IN_CHUNK]
                    cur = self.db.execute(f"DELETE FROM {table} WHERE subject IN ({','.join('?' * len(part))})",
                                          part)
                    gone += max(cur.rowcount, 0)
        if self.db.dialect == "sqlite":  # the deleted pages out of the write-ahead log too
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return gone

    def close(self) -> None:
        self.db.close()
