"""BodyTimeoutMiddleware: a request body must arrive within ``timeout_s`` (408 otherwise).

A client that declares 100 bytes and sends 10 would otherwise hold its connection,
and the request's task, forever: uvicorn has no body timeout of its own. The clock
starts at the app's first ``receive``; each later one waits at most for what is left
(``asyncio.timeout_at``: no extra task per request). Past it ``receive`` raises
:class:`BodyTimeout`, which FastAPI re-raises while reading the body, so the app's
handler answers 408 with ``Connection: close`` (the rest of the body may still be on
its way: the connection cannot carry another request).
"""

from __future__ import annotations

import asyncio

from fastapi import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTimeout(HTTPException):
    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            408,
            f"the request body did not arrive within body_timeout_s={timeout_s:g} s (TBPTT_BODY_TIMEOUT_S)",
            headers={"Connection": "close"},
        )


class BodyTimeoutMiddleware:
    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        started = False

        async def timed_receive() -> Message:
            nonlocal deadline
            if deadline is None:
                deadline = loop.time() + self.timeout_s
            try:
                async with asyncio.timeout_at(deadline):
                    return await receive()
            except TimeoutError:
                raise BodyTimeout(self.timeout_s) from None

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, timed_receive, tracking_send)
        except BodyTimeout as error:  # met outside FastAPI's body reading (a middleware's): answered here
            if started:
                raise
            await JSONResponse({"detail": error.detail}, status_code=408, headers=error.headers)(scope, receive, send)
