"""``/docs`` (Swagger UI) and ``/redoc``, rendered from files served here: no internet needed.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (a blank page offline). The
assets come from the ``fastapi-offline`` package (Swagger UI 5, which reads OpenAPI
3.1, and ReDoc), served by exact name under ``/docs-assets/`` (open without the API key:
they hold no data; the pages themselves and ``/openapi.json`` need it when one is set).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from tbptt_service.errors import NotFound

ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_PREFIX = "/docs-assets/"
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css", ".png": "image/png"}
ASSETS = {p.name: p for p in ASSETS_DIR.iterdir() if p.suffix in MEDIA_TYPES}
TITLE = "tbptt-online"

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=f"{TITLE} - API",
        swagger_js_url=f"{ASSETS_PREFIX}swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_PREFIX}swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_PREFIX}favicon.png",
    )


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return get_redoc_html(
        openapi_url="/openapi.json",
        title=f"{TITLE} - API",
        redoc_js_url=f"{ASSETS_PREFIX}redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_PREFIX}favicon.png",
        with_google_fonts=False,
    )


@router.get(ASSETS_PREFIX + "{name}")
async def asset(name: str) -> FileResponse:
    path = ASSETS.get(name)
    if path is None:
        raise NotFound(f"docs asset {name!r} does not exist")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers={"cache-control": "max-age=86400"})
