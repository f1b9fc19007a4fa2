"""The dashboard: ``/`` serves the page, ``/static/{name}`` its scripts and styles.

Plain files from ``service/static`` (hand-written HTML, CSS and JavaScript, SVG charts;
no build step, nothing fetched from elsewhere). They hold no data: the page reads
everything from the ``/v1`` API in the browser, sending the API key the user typed
in (kept in the browser's local storage) when the server needs one. Only the files
present at start are served, by exact name, so no path can reach outside the folder.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from tbptt_service.errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css"}
FILES = {p.name: p for p in sorted(STATIC_DIR.iterdir()) if p.suffix in MEDIA_TYPES} if STATIC_DIR.is_dir() else {}
NO_CACHE = {"cache-control": "no-cache"}  # revalidate: a new version of the page is seen at once

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type=MEDIA_TYPES[".html"], headers=NO_CACHE)


@router.get("/static/{name}")
async def static_file(name: str) -> FileResponse:
    path = FILES.get(name)
    if path is None:
        raise NotFound(f"static file {name!r} does not exist")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=NO_CACHE)
