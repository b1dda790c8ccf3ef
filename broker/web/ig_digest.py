"""The owning agency is told, over HTTP: each partner's disclosure digest (broker/audit/digest.py) for the IG page's
"Told to the source agency" view and for a partner's IG lead to fetch daily. IG auditors only; every digest served
is audited (`admin_action` `audit.digest`, the partner, the count, who asked)."""

# No `from __future__ import annotations`: FastAPI must resolve the router-local `require_ig` in each signature.
import io
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi import Path as PathParam

from broker.audit.digest import DEFAULT_TIME_ZONE, DigestError, read_digest, write_digest_csv
from broker.audit.store import AuditStore
from broker.clock import now_iso
from broker.policy.digest import digest_contact
from broker.policy.model import Protocol

PARTNER = r"^[a-z0-9][a-z0-9-]{0,79}$"  # the protocol's partner id (schemas/protocol.schema.json $defs/slug)
DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"


def make_digest_router(store_factory: Callable[[], AuditStore], require_ig: Callable[..., Any],
                       protocol: Callable[[], Protocol | None]) -> APIRouter:
    """`protocol()`: the protocol in force (None before the service has loaded one: 503)."""
    api = APIRouter(prefix="/v1/ig", tags=["information governance"],
                    dependencies=[Depends(require_ig), Depends(_no_store)])

    def in_force() -> Protocol:
        found = protocol()
        if found is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no protocol loaded")
        return found

    @api.get("/digests", summary="The partners told what of their data went to whom (protocol disclosure_digest)")
    def partners() -> dict[str, Any]:
        p = in_force()
        roles = p.governance.roles if p.governance is not None else ()
        return {"partners": [{"id": x.id, "name": x.name, "agency": x.agency,
                              "to": (digest_contact(roles, x.id) or {}).get("role")}
                             for x in p.partners.values() if x.disclosure_digest]}

    # a plain def: the store is read in Starlette's thread pool, off the event loop (broker/aio.py)
    @api.get("/digests/{partner}", summary="One partner's disclosure digest for one day, overrides first",
             response_model=None)
    def one(partner: Annotated[str, PathParam(pattern=PARTNER)],
            date: Annotated[str, Query(pattern=DATE, description="The day, in time_zone")],
            caller: Annotated[Any, Depends(require_ig)],
            time_zone: Annotated[str, Query(max_length=64)] = DEFAULT_TIME_ZONE,
            format: Annotated[str, Query(pattern="^(json|csv)$")] = "json") -> dict[str, Any] | Response:
        store = store_factory()
        try:
            made = read_digest(store, in_force(), partner, date=date, time_zone=time_zone, generated_at=now_iso())
        except DigestError as exc:
            asked = "partner" if exc.asked == "agency" else exc.asked
            raise HTTPException(status.HTTP_404_NOT_FOUND if exc.missing else status.HTTP_400_BAD_REQUEST,
                                f"{asked}: {exc.reason}") from None
        store.log("admin_action", actor=caller.actor, action="audit.digest", target=partner,
                  count=made["summary"]["disclosures"])
        if format == "json":
            return made
        out = io.StringIO()
        write_digest_csv(out, made)
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="disclosure-digest-{partner}-{date}.csv"',
            "Cache-Control": "no-store"})

    return api
