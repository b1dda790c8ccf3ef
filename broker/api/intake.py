"""POST /v1/records/{agency}: a native record in, canonical events out once Kafka has them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request, status
from fastapi.responses import JSONResponse

from adapters.kit.registry import AGENCIES, all_adapters
from broker.api.auth import Principal, authenticated, require
from broker.errors import NotFound
from broker.service.intake import InputRefused, ingest
from broker.service.ports import IntakePorts

router = APIRouter(prefix="/v1", tags=["intake"])
NO_CHILD = "no child in this input: nothing to publish"


class UnknownAgency(NotFound, ValueError):
    """The path names no agency the schema knows (404): the path's value is not repeated, the known ones are."""

    def __init__(self) -> None:
        super().__init__(f"unknown agency (expected one of {', '.join(AGENCIES)})")


async def known_agency(agency: str, grants: Annotated[tuple[Principal, ...], Depends(authenticated)]) -> None:
    """Runs before the scope check (a route dependency), after authentication: `/v1/records/probation` is an
    unknown agency (404), not a credential that "may not act for" it (403). The agencies are public (OpenAPI)."""
    if agency not in AGENCIES:
        raise UnknownAgency()


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _accepted_types() -> dict[str, Any]:
    types = sorted({t for a in all_adapters() for t in a.content_types})
    return {"required": True, "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in types}}


@router.post(
    "/records/{agency}",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Submit a native agency record",
    description="The body is the record as the agency system emits it; Content-Type picks the format. Answers 202 "
    "with the event ids once Kafka has acknowledged them. Each rejected record is named precisely (position, field, "
    "reason) and dead-lettered; a partly bad input still publishes its good records. All or nothing per request: "
    "202 only when Kafka acknowledged every event, dead letter and audit record; an input that cannot be kept "
    "within a limit is refused whole (413) with nothing published.",
    openapi_extra={"requestBody": _accepted_types()},
    dependencies=[Depends(known_agency)],
    responses={404: {"description": "Unknown agency (the path is not one of the schema's agencies)"},
               413: {"description": "Body too large, too large to keep as a dead letter, or too slow to read"},
               415: {"description": "No adapter for this content type, or a Content-Encoding (gzip...)"},
               422: {"description": "Every record was rejected (dead-lettered), or the body is not what the content "
                                    "type's adapter reads (not UTF-8, a JSON array...)"},
               503: {"description": "Kafka or the encryption keys unavailable: nothing was accepted, resend"}},
)
async def submit_record(
    agency: str,
    request: Request,
    principal: Annotated[Principal, Depends(require("intake", scope_param="agency"))],
    content_type: Annotated[str | None, Header()] = None,
    # The audit record's pattern for a system code: anything else is refused here (422), not at audit time (500).
    x_source_system: Annotated[str | None, Header(max_length=200, pattern=r"^[A-Za-z0-9 _.:/()-]{1,200}$")] = None,
) -> JSONResponse:
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):  # adapters read the record's own bytes; a compressed body is not one
        label = encoding if encoding in ("gzip", "deflate", "br", "compress", "zstd") else "this"
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                            f"{label} Content-Encoding is not accepted: send the body uncompressed")
    rt: IntakePorts = request.app.state.runtime
    body = await read_body(request, rt.settings.max_body_bytes)
    try:  # Kafka or keys unavailable, intake busy: 503 with Retry-After (broker/api/errors.py)
        result = await ingest(rt, agency, body, content_type=content_type, system=x_source_system,
                              actor=principal.actor)
    except InputRefused as exc:  # nothing published: a resend of the same bytes would be refused the same way
        return JSONResponse({"adapter": exc.result.adapter, "accepted": 0, "events": [],
                             "rejections": [r.to_dict() for r in exc.result.rejections], "deadletter_ids": [],
                             "detail": exc.reason}, status.HTTP_413_CONTENT_TOO_LARGE)
    content = {
        "adapter": result.adapter,
        "accepted": len(result.event_ids),
        "events": [{"event_id": i, "event_type": t} for i, t in zip(result.event_ids, result.event_types,
                                                                   strict=True)],
        "rejections": [r.to_dict() for r in result.rejections],
        "deadletter_ids": result.deadletter_ids,
        # records read and left out as carrying no safeguarding fact, counted by kind (a FHIR resource type name)
        "skipped": dict(sorted(result.skipped.items())),
    }
    if result.event_ids:
        return JSONResponse(content, status.HTTP_202_ACCEPTED)
    if result.adapter is not None and not result.rejections:
        # Read, and nothing in it is about a child (an Organization, a Practitioner, an empty batch): not an error to
        # dead-letter or to make the sender resend, so 202, with a note saying plainly that nothing was published.
        content["note"] = NO_CHILD
        return JSONResponse(content, status.HTTP_202_ACCEPTED)
    if result.adapter is None and result.refused == "media_type" and result.rejections:
        content["detail"] = result.rejections[0].reason  # the type refused, the types listed, a likelier agency
        return JSONResponse(content, status.HTTP_415_UNSUPPORTED_MEDIA_TYPE)
    if result.adapter is None and result.refused == "body" and result.rejections:
        content["detail"] = result.rejections[0].reason  # what is wrong with the body (not UTF-8, gzip, an array)
        return JSONResponse(content, status.HTTP_422_UNPROCESSABLE_CONTENT)
    content["detail"] = "every record was rejected; see rejections (each is dead-lettered)"
    return JSONResponse(content, status.HTTP_422_UNPROCESSABLE_CONTENT)
