"""Deadline transports: a request's answer read whole within the client's timeout, not per read.

httpx's ``timeout`` bounds each read of a socket: a server (or a proxy) that sends its answer one
byte a second never lets a read wait that long, and held ``tbptt-online forecast --timeout 5`` for
as long as it kept sending (a hostile test, session 49: still waiting when killed at 60 s). The
clients wrap their transport in these, which end the answer's body with ``httpx.ReadTimeout`` once
``seconds`` have passed since the request was handed to the transport: the client then retries an
idempotent call and raises :class:`~tbptt_online.client.TransportFailure` as for any timeout. The
connection and the answer's head keep httpx's own per-read bounds.

>>> import httpx
>>> slow = httpx.MockTransport(lambda request: httpx.Response(200, content=iter([b"[", b"]"])))
>>> with httpx.Client(transport=Deadline(slow, seconds=-1.0)) as client:  # already past
...     client.get("http://x/")
Traceback (most recent call last):
...
httpx.ReadTimeout: the answer to GET http://x/ did not arrive whole within -1.0 s
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import httpx


def _late(request: httpx.Request, seconds: float) -> httpx.ReadTimeout:
    return httpx.ReadTimeout(
        f"the answer to {request.method} {request.url} did not arrive whole within {seconds} s", request=request
    )


class _Stream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, request: httpx.Request, deadline: float, seconds: float) -> None:
        self.inner, self.request, self.deadline, self.seconds = inner, request, deadline, seconds

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            if time.monotonic() > self.deadline:
                raise _late(self.request, self.seconds)
            yield chunk

    def close(self) -> None:
        self.inner.close()


class Deadline(httpx.BaseTransport):
    """``inner`` (None: httpx's own HTTP transport) with each answer read whole within ``seconds``."""

    def __init__(self, inner: httpx.BaseTransport | None, seconds: float) -> None:
        self.inner, self.seconds = inner or httpx.HTTPTransport(), seconds

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        deadline = time.monotonic() + self.seconds
        response = self.inner.handle_request(request)
        response.stream = _Stream(response.stream, request, deadline, self.seconds)  # type: ignore[arg-type]
        return response

    def close(self) -> None:
        self.inner.close()


class _AsyncStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, request: httpx.Request, deadline: float, seconds: float) -> None:
        self.inner, self.request, self.deadline, self.seconds = inner, request, deadline, seconds

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            if time.monotonic() > self.deadline:
                raise _late(self.request, self.seconds)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class AsyncDeadline(httpx.AsyncBaseTransport):
    """:class:`Deadline`'s twin for ``httpx.AsyncClient``."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None, seconds: float) -> None:
        self.inner, self.seconds = inner or httpx.AsyncHTTPTransport(), seconds

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        deadline = time.monotonic() + self.seconds
        response = await self.inner.handle_async_request(request)
        response.stream = _AsyncStream(response.stream, request, deadline, self.seconds)  # type: ignore[arg-type]
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
