"""The information governance API (/v1/ig/...) and page (/ig).

Every /v1/ig endpoint depends on `require_ig` (the caller's IG credential); the page itself is a static shell that
holds no data: it asks for the API key and calls the API with it, so without the key it shows nothing. The page,
its script and style are served from this package (no CDN, no build step) under a strict Content-Security-Policy.
"""

# No `from __future__ import annotations` here: FastAPI must resolve the router-local `Store` alias when each
# endpoint is defined, which string annotations would defer past its scope.
import base64
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from broker.audit.record import KINDS, AuditRecordError
from broker.audit.sar import (
    MASK_WORDS,
    SAR_CSS,
    Recipient,
    basis_words,
    consent_lines,
    override_words,
    plain_field,
    plain_fields,
    subject_access_report,
)
from broker.audit.store import AuditStore
from broker.clock import now_iso
from broker.crypto import CryptoError
from broker.errors import Unavailable
from broker.pipeline.find_child import REASONS, ChildQuery, lookup_record
from broker.pipeline.find_child import find_child as find_child_tokens
from broker.pipeline.identify import LinkageKey
from broker.policy.codes import LAWFUL_BASIS

STATIC = Path(__file__).resolve().parent / "static"
_ASSETS = {"ig.js": "text/javascript; charset=utf-8", "ig.css": "text/css; charset=utf-8"}
# The subject access report opens inside the page (an iframe from srcdoc, which keeps the page's policy): its one
# inline style block is allowed by its hash, nothing else inline is.
_SAR_STYLE = "'sha256-" + base64.b64encode(hashlib.sha256(SAR_CSS.encode()).digest()).decode() + "'"
_PAGE_HEADERS = {
    "Content-Security-Policy": f"default-src 'none'; script-src 'self'; style-src 'self' {_SAR_STYLE}; "
                               "connect-src 'self'; img-src 'self'; form-action 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

TOKEN = r"^lt[0-9]{1,9}_[A-Za-z0-9_-]{20,64}$"  # key version: 9 digits at most (a 64-bit int is 19)
SUBSCRIBER = r"^[a-z][a-z0-9_-]{1,48}$"
MAX_SEQ = 2**63 - 1  # the largest audit sequence number either store can hold


class LinkageUnavailable(Unavailable, RuntimeError):
    pass


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"


def _in_words(event_type: str | None, d: Mapping[str, Any]) -> dict[str, Any]:
    """A disclosure's fields as the subject access report words them (broker/audit/sar.py): one wording."""
    return {"shared": plain_fields(event_type, d["fields_released"]), "basis": basis_words(d["lawful_basis"]),
            "masked": [f"{plain_field(p)}: {MASK_WORDS.get(k, k.replace('_', ' '))}"
                       for p, k in d["fields_masked"].items()],
            "override": override_words(d["consent_override"]) or None,
            "not_shared": [f for _, fs in plain_fields(event_type, d["fields_withheld"]) for f in fs]}


class FindChildBody(BaseModel):
    """What an IG officer knows of the child, and why they look (required). Sent in a POST body, never a URL, so no
    access log or browser history holds an identifier. Limits only: each value is checked by the lookup, whose
    answers name fields, never values."""

    reason: str = Field(max_length=40, description="Why: one of " + ", ".join(REASONS))
    reference: str | None = Field(None, max_length=40, description="The request or ticket reference, if any")
    nhs_number: str | None = Field(None, max_length=20)
    upn: str | None = Field(None, max_length=20)
    la_child_id: str | None = Field(None, max_length=60)
    la_system: str | None = Field(None, max_length=60, description="The LA's system code (its child ids are its own)")
    family_name: str | None = Field(None, max_length=100)
    given_name: str | None = Field(None, max_length=100)
    birth_date: str | None = Field(None, max_length=10, description="YYYY-MM-DD")
    postcode: str | None = Field(None, max_length=10)


ChildName = Callable[[list[str], list[str]], Awaitable[Mapping[str, str] | None]]


def _words_for(entries: list[dict[str, Any]], named: Mapping[str, Recipient] | None = None) -> dict[str, Any]:
    """The words for the codes these entries carry: `recipients` (subscriber -> the partner's name, when `named`
    knows it) and `bases` (lawful basis and gateway code -> its title), so the page shows words, not codes."""
    records = [e.get("record") or {} for e in entries]
    subs = {r["subscriber"] for r in records if r.get("subscriber")}
    codes = {c for r in records for c in r.get("lawful_basis", [])}
    codes |= {str(r["consent_override"].get("gateway")) for r in records if r.get("consent_override")}
    return {"recipients": {s: named[s].label for s in subs if named and s in named},
            "bases": {c: LAWFUL_BASIS[c] for c in codes if c in LAWFUL_BASIS}}


def make_ig_router(store_factory: Callable[[], AuditStore], require_ig: Callable[..., Any],
                   aliases: Callable[[str], list[str]] = lambda token: [token],
                   linkage: Callable[[], LinkageKey | None] = lambda: None,
                   recipients: Callable[[], Mapping[str, Recipient]] = dict,
                   consent: Callable[[str], Any] = lambda token: None,
                   child_name: ChildName | None = None) -> APIRouter:
    """The IG router. `store_factory()` returns the (long-lived) audit store, `require_ig` is the FastAPI
    dependency that admits only IG auditors, and `aliases(token)` lists every token the identity register ties to
    that child, so a child's timeline and subject access report cover the records kept under a token later folded
    into another. `linkage()` is the linkage key in force, with which Find a child computes the tokens intake gives
    (None: the lookup is unavailable). For the subject access report: `recipients()` names each subscriber as the
    protocol names its partner, `consent(token)` is the consent register's state for a token (or None), and
    `child_name(tokens, event_ids)` reveals the child's name from the newest of those events (None: the report
    names no one)."""
    api = APIRouter(prefix="/v1/ig", tags=["information governance"],
                    dependencies=[Depends(require_ig), Depends(_no_store)])

    def store() -> AuditStore:
        return store_factory()

    Store = Annotated[AuditStore, Depends(store)]

    @api.get("/search", summary="Search audit records by child, agency, subscriber, event type, rule, kind, time")
    def search(
        audit: Store,
        subject: Annotated[str | None, Query(pattern=TOKEN)] = None,
        agency: Annotated[str | None, Query(max_length=20)] = None,
        subscriber: Annotated[str | None, Query(pattern=SUBSCRIBER)] = None,
        event_type: Annotated[str | None, Query(max_length=100)] = None,
        rule_id: Annotated[str | None, Query(max_length=100)] = None,
        kind: Annotated[str | None, Query(max_length=40)] = None,
        since: Annotated[str | None, Query(max_length=40, description="ISO 8601, inclusive")] = None,
        until: Annotated[str | None, Query(max_length=40, description="ISO 8601, exclusive")] = None,
        # le: SQLite integers are 64-bit; a larger one raised OverflowError in the driver (500), now 422
        before_seq: Annotated[int | None, Query(ge=1, le=MAX_SEQ,
                                                description="Page: records older than this seq")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        if kind is not None and kind not in KINDS:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "unknown record kind")
        try:
            entries = audit.search(subject=subject, agency=agency, subscriber=subscriber, event_type=event_type,
                                   rule_id=rule_id, kind=kind, since=since, until=until, before_seq=before_seq,
                                   limit=limit)
        except AuditRecordError:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "since/until must be ISO 8601 with a time zone") from None
        more = len(entries) == limit
        return {"entries": entries, "next_before_seq": entries[-1]["seq"] if more else None,
                **_words_for(entries, recipients())}

    @api.get("/children/{subject}/timeline", summary="Everything recorded about one child, oldest first")
    def timeline(audit: Store, subject: Annotated[str, PathParam(pattern=TOKEN)]) -> dict[str, Any]:
        """Each disclosure also carries its fields in words, by class (`shared`, `masked`, `not_shared`), as the
        subject access report gives them; `recipients` names each subscriber as the protocol names its partner."""
        tokens = aliases(subject)
        found = audit.every_disclosure(subject=subject, aliases=tokens)
        named = recipients()
        entries = audit.timeline(subject, aliases=tokens)
        return {"subject": subject, "tokens": tokens, "entries": entries,
                "disclosures": [{**d.to_dict(), **_in_words(d.event_type, d.to_dict())} for d in found],
                **_words_for(entries, named)}

    @api.get("/children/{subject}/report", response_class=HTMLResponse,
             summary="Subject access report: every disclosure about one child, the child named (HTML, prints on A4)")
    async def report(audit: Store, subject: Annotated[str, PathParam(pattern=TOKEN)],
                     caller: Annotated[Any, Depends(require_ig)]) -> HTMLResponse:
        """Names the child (revealed from the newest event about them, for this report only: the reveal is
        recorded as admin_action `ig.reveal_identity` with who asked), names recipients as the protocol does,
        gives fields in words by class and the lawful basis in words, the consent register's records and every
        override, and what each recipient read."""
        # registers and the audit store are called off the event loop (the rule in broker/aio.py)
        tokens = await run_in_threadpool(aliases, subject)
        verification = await run_in_threadpool(audit.verify) if audit.public_key is not None else None
        found = await run_in_threadpool(audit.every_disclosure, subject=subject, aliases=tokens)
        entries = await run_in_threadpool(audit.timeline, subject, aliases=tokens)
        child, note = None, "not named: this service cannot read the events topic"
        published = [r["event_id"] for r in reversed([e.get("record") or {} for e in entries])
                     if r.get("kind") == "event_published" and r.get("event_id")]
        if child_name is not None and published:
            # before the reveal: an attempt that fails is still recorded
            await run_in_threadpool(audit.log, "admin_action", actor=caller.actor, action="ig.reveal_identity",
                                    target="sar", subject=subject, count=1)
            try:
                child = await child_name(tokens, published)
                note = "not named: no event about the child is held any more (retention, or erased)"
            except (KafkaError, CryptoError, OSError, TimeoutError):  # Kafka or the keys: the report still goes
                note = "not named: the events topic or the keys could not be read just now"
        elif not published:
            note = "not named: no event about this child reached the broker"
        states = await run_in_threadpool(lambda: [consent(t) for t in tokens])
        held = [r for state in states if state is not None for r in state.records]
        body = subject_access_report(subject, found, entries, now_iso(), verification, child=child, child_note=note,
                                     recipients=recipients(), consent=consent_lines(held), tokens=tokens,
                                     generated_by=caller.actor)
        # an export of what was shared about a child: recorded with who took it, as `mash-broker audit export` is
        await run_in_threadpool(audit.log, "admin_action", actor=caller.actor, action="audit.export", target="sar",
                                subject=subject, count=len(found))
        return HTMLResponse(body, headers={"Cache-Control": "no-store"})

    @api.post("/children/find", summary="Find a child by NHS number, UPN, LA child id, or name, birth date and "
                                        "postcode (the lookup is audited with who looked and why)")
    def find_child(audit: Store, body: FindChildBody, caller: Annotated[Any, Depends(require_ig)]) -> dict[str, Any]:
        """The server computes the tokens intake would give these identifiers (broker/pipeline/find_child.py),
        follows the identity register to every token the child carried, and records the lookup as an IG read
        (admin_action ig.find_child: the caller, the reason code and reference, which kinds of identifier, the
        child's token). Nothing given is echoed, in the answer or an error."""
        key = linkage()
        if key is None:
            raise LinkageUnavailable("the linkage key is not loaded: Find a child cannot compute tokens")
        query = ChildQuery(**body.model_dump())
        # ChildQueryRejected (InputRejected: 400, broker/api/errors.py) names fields and reasons, never a value
        found = find_child_tokens(query, key, aliases, lambda token: bool(audit.search(subject=token, limit=1)))
        audit.log("admin_action", actor=caller.actor, **lookup_record(query, found))
        # tokens of an earlier linkage key are not computed: a key rotation re-keys every stream
        return {**found.answer(), "key_version": key.version}

    @api.get("/subscribers/{name}/disclosures", summary="What one subscriber was sent, under which rule, and read")
    def subscriber_disclosures(
        audit: Store, name: Annotated[str, PathParam(pattern=SUBSCRIBER)],
        since: Annotated[str | None, Query(max_length=40)] = None,
        until: Annotated[str | None, Query(max_length=40)] = None,
        limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
        after_seq: Annotated[int, Query(ge=0, le=MAX_SEQ, description="Page: disclosures after this seq")] = 0,
    ) -> dict[str, Any]:
        """Oldest first, `limit` at a time: `total` counts every disclosure in the range, `next_after_seq` asks
        for the next page (null on the last)."""
        try:
            found = audit.disclosures(subscriber=name, since=since, until=until, limit=limit, after_seq=after_seq)
            total = audit.count_disclosures(subscriber=name, since=since, until=until)
        except AuditRecordError:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "since/until must be ISO 8601 with a time zone") from None
        more = len(found) == limit
        named = recipients()
        rows = [d.to_dict() for d in found]  # a disclosure names its subscriber, bases and override as records do
        return {"subscriber": name, "recipient": named[name].label if name in named else None, "total": total,
                "disclosures": [{**d, **_in_words(d["event_type"], d)} for d in rows],
                "bases": _words_for([{"record": d} for d in rows])["bases"],
                "next_after_seq": found[-1].seq if more and found else None}

    # IG sees dead letters but does not reprocess them: reprocessing republishes data, an admin's act
    # (POST /v1/admin/deadletters/{deadletter_id}/reprocess), which the list shows as `reprocessed_at`.
    @api.get("/deadletters", summary="Dead-lettered inputs with their value-free reasons, newest first")
    def deadletters(audit: Store, limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> dict[str, Any]:
        return {"deadletters": audit.dead_letters(limit)}

    @api.get("/verification", summary="Verify the hash chain and signed checkpoints now")
    def verification(audit: Store) -> dict[str, Any]:
        if audit.public_key is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no audit public key configured")
        result = audit.verify()
        head_seq, head_hash = audit.head()
        return {**result.to_dict(), "store_head_seq": head_seq, "store_head_hash": head_hash,
                "checked_at": now_iso()}

    @api.get("/protocols", summary="Information sharing protocol versions, oldest first")
    def protocols(audit: Store) -> dict[str, Any]:
        return {"history": audit.protocol_history()}

    router = APIRouter()
    router.include_router(api)

    @router.get("/ig", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "ig.html", media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    @router.get("/ig/static/{name}", include_in_schema=False)
    def asset(name: str) -> FileResponse:
        if name not in _ASSETS:  # a fixed list: no path ever reaches the file system from the request
            raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
        return FileResponse(STATIC / name, media_type=_ASSETS[name], headers=_PAGE_HEADERS)

    return router
