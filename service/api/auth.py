"""ApiKeyMiddleware: when an API key is set, every route but the probes and the
dashboard's static page needs it (``/readyz`` answers without it, but says why a model is
quarantined or the state failed to load only to a request that carries it: the reasons quote
log records and settings).

A pure ASGI middleware, so it covers every path (the docs and unknown paths
included) before routing. The key is compared in constant time.
"""

from __future__ import annotations

import secrets

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/"})
# the dashboard's files and the docs pages' assets hold no data; the dashboard sends the key to /v1 itself
OPEN_PREFIXES = ("/static/", "/docs-assets/")


def bearer_matches(scope: Scope, key: bytes) -> bool:
    """Whether the request's (last) ``Authorization`` header is ``Bearer <key>`` (constant time)."""
    header = b""
    for name, value in scope["headers"]:  # the last one counts
        if name == b"authorization":
            header = value
    scheme, _, token = header.partition(b" ")
    return scheme.lower() == b"bearer" and secrets.compare_digest(token.strip(), key)


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.key = api_key.encode()

    def _authorized(self, scope: Scope) -> bool:
        return bearer_matches(scope, self.key)

    @staticmethod
    def _open(path: str) -> bool:
        return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._open(scope["path"]) or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        refusal = JSONResponse(
            {"detail": "missing or wrong API key: send the header 'Authorization: Bearer <key>'"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await refusal(scope, receive, send)
