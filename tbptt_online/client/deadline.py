"""A request's answer read whole within the client's timeout, not per read.

httpx's ``timeout`` bounds each read of a socket: a server (or a proxy) that sends its answer one
byte a second never lets a read wait that long, and held ``tbptt-online forecast --timeout 5`` for
as long as it kept sending (a hostile test, session 49: still waiting when killed at 60 s). The
clients send each request with ``stream=True`` and read its answer through ``within``, whose
stream ends with ``httpx.ReadTimeout`` once ``seconds`` have passed since the request was sent
(None: no bound): the client then retries an idempotent call and raises
:class:`~tbptt_online.client.TransportFailure` as for any timeout. The connection and the answer's
head keep httpx's own per-read bounds; httpx's transports, proxies from the environment among
them, are its own (a first version wrapped the transport, and httpx then read no proxy from the
environment: a review's).

>>> import httpx
>>> slow = httpx.MockTransport(lambda request: httpx.Response(200, content=iter([b"[", b"]"])))
>>> with httpx.Client(transport=slow) as client:
...     response = client.send(client.build_request("GET", "http://x/"), stream=True)
...     within(response, sent=0.0, seconds=1.0).read()  # sent at 0.0 on the monotonic clock: long past
Traceback (most recent call last):
...
httpx.ReadTimeout: the answer to GET http://x/ did not arrive whole within 1.0 s
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


def within(response: httpx.Response, sent: float, seconds: float | None) -> httpx.Response:
    """``response`` (sent with ``stream=True`` at ``sent``, ``time.monotonic()``), its body to be read
    (``read`` or ``aread``) within ``seconds`` of ``sent`` (None: as httpx reads it)."""
    if seconds is not None:
        deadline, stream = sent + seconds, response.stream
        if isinstance(stream, httpx.AsyncByteStream):
            response.stream = _AsyncStream(stream, response.request, deadline, seconds)
        else:
            response.stream = _Stream(stream, response.request, deadline, seconds)  # type: ignore[arg-type]
    return response
