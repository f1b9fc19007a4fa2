"""BodyLimitMiddleware: refuse request bodies over ``max_body_bytes`` with 413.

A checkpoint import (``POST /v1/models/{model}/checkpoint``) has its own, larger limit,
``max_checkpoint_bytes``: a model's export is its whole state (about 48 KB a series with the
defaults), so under the JSON bodies' 4 MiB a model of 120 series could not take back its own
export (413).

A pure ASGI middleware: it refuses a declared ``Content-Length`` over the limit
without reading anything, passes a declared length within it straight on (the HTTP
server delivers exactly that many bytes), and otherwise counts the bytes as they
stream in (chunked bodies declare no length), raising :class:`BodyTooLarge` from
``receive`` once the count passes the limit. FastAPI re-raises HTTP exceptions
met while reading a body, so the app's handler answers 413; the middleware
answers itself if the exception reaches it before any response started.
"""

from __future__ import annotations

import re

from fastapi import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CHECKPOINT_IMPORT = re.compile(r"/v1/models/[^/]+/checkpoint")  # POST: the body is a checkpoint file


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int, setting: str = "TBPTT_MAX_BODY_BYTES") -> None:
        super().__init__(413, f"request body exceeds {setting}={limit}")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, max_checkpoint_bytes: int | None = None) -> None:
        self.app = app
        self.body_limit = max_body_bytes
        self.checkpoint_limit = max_body_bytes if max_checkpoint_bytes is None else max_checkpoint_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "POST" and CHECKPOINT_IMPORT.fullmatch(scope["path"]):
            await self._limited(scope, receive, send, self.checkpoint_limit, "TBPTT_MAX_CHECKPOINT_BYTES")
        else:
            await self._limited(scope, receive, send, self.body_limit, "TBPTT_MAX_BODY_BYTES")

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: int, setting: str) -> None:
        declared = None
        for name, value in scope["headers"]:  # the last one counts, as dict(scope["headers"]) would have it
            if name == b"content-length":
                declared = value
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            status, detail = (
                (413, BodyTooLarge(limit, setting).detail) if declared.isdigit() else (400, "bad Content-Length")
            )
            await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)
            return
        if declared is not None:  # within the limit, and the server reads no more than it declares
            await self.app(scope, receive, send)
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit, setting)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as error:
            if started:
                raise
            await JSONResponse({"detail": error.detail}, status_code=413)(scope, receive, send)
