"""The partnership's performance framework: the JSON API under /v1/insight and the page /insight.

Behind its own role, `insight` (the partnership board): every endpoint serves disclosure-controlled tables only
(broker/web/insight_data.py), never an exact count, a token or an event, and every read and export is audited
(`insight_read`: what was read, by whom; never a number). The page is a static shell that holds no data: it asks
for the API key and calls the API with it. Its script, style and the charting library (Plotly's plotly.min.js,
MIT, from the `plotly` wheel) are served from the broker, no CDN, under a strict Content-Security-Policy.
"""

# No `from __future__ import annotations`: FastAPI resolves the router-local annotations when each endpoint is
# defined.
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from broker.access.principal import Principal
from broker.audit.store import AuditStore
from broker.insight.compute import ComputeError
from broker.insight.detect import Rise
from broker.insight.measures import MeasureError, Measures, default_measures
from broker.insight.processmap import RenderError, process_map, render_svg, to_dot
from broker.insight.render import table_csv, table_dict
from broker.insight.sdc import DEFAULT_MIN_POPULATION
from broker.insight.source import records_from_store
from broker.insight.table import Published
from broker.policy.model import Protocol
from broker.web.insight_data import View, latest_totals, measure_words, overview, published_tables

STATIC = Path(__file__).resolve().parent / "static" / "insight"
_ASSETS = {"insight.js": "text/javascript; charset=utf-8", "insight.css": "text/css; charset=utf-8"}
_PAGE_HEADERS = {
    # Plotly sets element styles through the CSSOM (allowed) and adds one stylesheet for its hover boxes (blocked
    # here: the page does without it); the map arrives as a blob: image of the SVG the API served.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self' blob: data:; form-action 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
MEASURE = r"^[a-z][a-z0-9_]{0,63}$"
BREAKDOWN = r"^[a-z][a-z0-9_]{0,31}$"
CACHE_SECONDS = 30.0  # the page, its exports and the gauges share one computation for this long


def _plotly_js() -> Path:
    import plotly  # type: ignore[import-untyped]

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"


class _Cache:
    """The last computations, by what was asked: the audit store is read at most once per CACHE_SECONDS per view,
    however many board members have the page open."""

    def __init__(self) -> None:
        self._kept: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        now = time.monotonic()
        hit = self._kept.get(key)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        value = compute()
        self._kept[key] = (now, value)
        return value


def make_insight_router(store_factory: Callable[[], AuditStore], require_insight: Callable[..., Any],
                        protocol_factory: Callable[[], Protocol],
                        on_totals: Callable[[dict[str, int | None]], None] = lambda totals: None,
                        min_population: int = DEFAULT_MIN_POPULATION,
                        measures: Callable[[], Measures] = default_measures,
                        rises: Callable[[list[dict[str, Any]]], Sequence[Rise]] = lambda records: ()) -> APIRouter:
    """The /insight router. `store_factory()` returns the audit store the measures are computed from,
    `require_insight` admits only the insight role, `protocol_factory()` is the protocol in force (for the map and
    for which subscriber is which partner), and `on_totals` receives the operational measures' published totals
    (the Prometheus gauges) each time the page's data is computed; `rises(records)` runs the hotspot detector as the
    insight watch does (broker/service/insight_watch.py), so the page names the rises the hub was told of."""
    cache = _Cache()
    api = APIRouter(prefix="/v1/insight", tags=["insight"], dependencies=[Depends(_no_store)])
    Caller = Annotated[Principal, Depends(require_insight)]

    def partners() -> Mapping[str, str]:
        return {name: s.partner for name, s in protocol_factory().subscribers.items()}

    def audit(caller: Principal, action: str, target: str | None = None) -> None:
        fields = {"target": target} if target else {}
        store_factory().log("insight_read", actor=caller.actor, action=action, **fields)

    def page_data() -> dict[str, Any]:
        def compute() -> dict[str, Any]:
            records = records_from_store(store_factory())
            data = overview(records, measures(), subscriber_partner=partners(), min_population=min_population,
                            rises=rises(records))
            on_totals(latest_totals(data, measures()))
            return data
        found: dict[str, Any] = cache.get(("overview",), compute)
        return found

    def tables(view: View, only: tuple[str, ...] = ()) -> list[Published]:
        def compute() -> list[Published]:
            return published_tables(records_from_store(store_factory()), measures(), view,
                                    subscriber_partner=partners(), only=only, min_population=min_population)
        try:
            found: list[Published] = cache.get(("tables", view, only), compute)
            return found
        except ComputeError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None

    @api.get("/overview", summary="What /insight shows: every measure in words, monthly trends, timeliness "
             "against target and the area table, all disclosure-controlled")
    async def get_overview(caller: Caller) -> dict[str, Any]:
        data = await run_in_threadpool(page_data)
        await run_in_threadpool(audit, caller, "insight.page")
        return data

    @api.get("/measures", summary="The performance framework's measures in words (schemas/measures.yaml)")
    async def get_measures(caller: Caller) -> list[dict[str, Any]]:
        await run_in_threadpool(audit, caller, "insight.measures")
        return measure_words(measures())

    @api.get("/tables", summary="Every measure that breaks down by `by`, across `period`, disclosure-controlled")
    async def get_tables(
        caller: Caller,
        by: Annotated[str, Query(pattern=BREAKDOWN, description="Rows: agency, source, event_type, outcome, area, "
                                 "school_urn, gp_ods, reason, subscriber, field")] = "agency",
        period: Annotated[str, Query(pattern=BREAKDOWN, description="Columns: week, month, quarter, all, or a "
                                     "second breakdown")] = "month",
    ) -> list[dict[str, Any]]:
        found = await run_in_threadpool(tables, View(by, period))
        await run_in_threadpool(audit, caller, "insight.tables", f"by:{by}:{period}")
        return [table_dict(t) for t in found]

    @api.get("/tables/{measure}", summary="Export one measure's table as JSON or CSV, disclosure-controlled",
             responses={200: {"content": {"text/csv": {}}}})
    async def export_table(
        caller: Caller,
        measure: Annotated[str, PathParam(pattern=MEASURE)],
        by: Annotated[str, Query(pattern=BREAKDOWN)] = "agency",
        period: Annotated[str, Query(pattern=BREAKDOWN)] = "month",
        format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
    ) -> Any:
        try:
            measures().by_id(measure)
        except MeasureError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no measure with that id") from None
        found = await run_in_threadpool(tables, View(by, period), (measure,))
        if not found:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                f"measure {measure} does not break down by {by} across {period}")
        await run_in_threadpool(audit, caller, f"insight.export.{format}", f"{measure}:{by}:{period}")
        if format == "json":
            return table_dict(found[0])
        name = f"{measure}-by-{by}-{period}.csv"
        return PlainTextResponse(table_csv(found[0]), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @api.get("/map.svg", summary="The process map of the protocol in force (mash-broker policy map), as SVG",
             responses={200: {"content": {"image/svg+xml": {}}}})
    async def get_map(caller: Caller) -> Response:
        protocol = protocol_factory()

        def draw() -> bytes:
            return render_svg(to_dot(process_map(protocol)))
        try:
            svg = await run_in_threadpool(cache.get, ("map", protocol.revision), draw)
        except RenderError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
        await run_in_threadpool(audit, caller, "insight.map", protocol.revision.replace("@", ":"))
        return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})

    router = APIRouter()
    router.include_router(api)

    @router.get("/insight", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "insight.html", media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    @router.get("/insight/static/{name}", include_in_schema=False)
    def asset(name: str) -> FileResponse:
        if name == "plotly.min.js":
            return FileResponse(_plotly_js(), media_type="text/javascript; charset=utf-8", headers=_PAGE_HEADERS)
        if name not in _ASSETS:  # a fixed list: no path ever reaches the file system from the request
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
        return FileResponse(STATIC / name, media_type=_ASSETS[name], headers=_PAGE_HEADERS)

    return router

