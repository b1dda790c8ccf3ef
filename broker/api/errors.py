"""Every HTTP status an error gets, in one place: the broker's error family (broker/errors.py) -> status.

Routers raise or let through the service's exceptions; they do not catch them to pick a status. Each answer is
`{"detail": <the exception's message>}`, the shape FastAPI's HTTPException gives, and the message is value-free by
the rule every broker exception keeps (positions, fields, ids, limits; never a value). An exception outside the
family is not handled here: it stays a 500 without its message.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from broker.api.limits import BodyTooLarge
from broker.errors import BrokerError, Conflict, InputRejected, NotFound, Refused, Unavailable
from broker.service.decisions import DecisionRefused
from broker.service.delivery import StaleCursor
from broker.service.reprocess import DeadLetterNotFound

FAMILY_STATUS: dict[type[BrokerError], int] = {
    InputRejected: status.HTTP_400_BAD_REQUEST,
    NotFound: status.HTTP_404_NOT_FOUND,
    Conflict: status.HTTP_409_CONFLICT,
    Refused: status.HTTP_403_FORBIDDEN,
    Unavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
}
# Where one member answers otherwise than its family, most specific first.
STATUS: dict[type[BrokerError], int] = {
    StaleCursor: status.HTTP_410_GONE,  # issued by this API, but Kafka no longer holds those positions
    BodyTooLarge: status.HTTP_413_CONTENT_TOO_LARGE,  # a streamed body passed its limit while the route read it
}
RETRY_AFTER_S: dict[type[BrokerError], int] = {DecisionRefused: 30}  # others: 5 (intake resends soon)
DEFAULT_RETRY_AFTER_S = 5
DETAIL_PREFIX: dict[type[BrokerError], str] = {DeadLetterNotFound: "no reprocessable dead letter "}


def _first(table: dict[type[BrokerError], int], exc: BrokerError) -> int | None:
    return next((value for cls, value in table.items() if isinstance(exc, cls)), None)


def status_of(exc: BrokerError) -> int:
    """The status this exception answers with; 500 for a broker error outside the family."""
    if isinstance(exc, DecisionRefused):  # the decision service names its status (404, 403, 409, 422, 503)
        return exc.status
    return _first(STATUS, exc) or _first(FAMILY_STATUS, exc) or status.HTTP_500_INTERNAL_SERVER_ERROR


async def broker_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BrokerError)
    code = status_of(exc)
    prefix = next((p for cls, p in DETAIL_PREFIX.items() if isinstance(exc, cls)), "")
    headers = None
    if code == status.HTTP_503_SERVICE_UNAVAILABLE:
        headers = {"Retry-After": str(_first(RETRY_AFTER_S, exc) or DEFAULT_RETRY_AFTER_S)}
    return JSONResponse({"detail": prefix + str(exc)}, code, headers=headers)


async def value_free_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 naming where and why, never what: FastAPI's default answer echoes the offending input (`input`, `ctx`),
    which may be a name or an NHS number sent in the wrong field."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [{"loc": [str(part)[:64] for part in e.get("loc", ())], "type": e.get("type"), "msg": e.get("msg")}
              for e in errors[:50]]
    return JSONResponse({"detail": detail}, status.HTTP_422_UNPROCESSABLE_CONTENT)


def install(app: FastAPI) -> None:
    """Register the handlers: the request-validation one, and one per family member (DecisionRefused has none:
    it is a BrokerError that carries its own status)."""
    app.add_exception_handler(RequestValidationError, value_free_validation_error)
    for cls in (*FAMILY_STATUS, DecisionRefused):
        app.add_exception_handler(cls, broker_error)
