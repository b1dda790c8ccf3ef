"""/docs: Swagger UI served by the broker itself, so the API documentation works on a network with no internet.

FastAPI's own /docs loads Swagger UI from a CDN; a council or NHS network that blocks it (or a laptop offline) got a
blank page. The files come from the `swagger-ui-bundle-v2` wheel (Swagger UI 5: OpenAPI 3.1, which FastAPI writes).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

_TYPES = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8", "swagger-ui.css": "text/css; charset=utf-8",
          "favicon-32x32.png": "image/png"}


def _assets() -> Path:
    from swagger_ui_bundle import swagger_ui_path

    return Path(str(swagger_ui_path))


def make_docs_router(title: str, openapi_url: str = "/openapi.json") -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi_url, title=f"{title} - API documentation",
                                   swagger_js_url="/docs/static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/static/swagger-ui.css",
                                   swagger_favicon_url="/docs/static/favicon-32x32.png")

    @router.get("/docs/static/{name}")
    def asset(name: str) -> FileResponse:
        if name not in _TYPES:  # a fixed list: no request path reaches the file system
            raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
        return FileResponse(_assets() / name, media_type=_TYPES[name], headers={"Cache-Control": "max-age=86400"})

    return router
