"""A request's head (its request line and headers) must arrive within ``header_timeout_s``.

uvicorn closes an idle keep-alive connection after 5 s, but that clock stops at the first byte
received, and none runs before a connection's first request: a connection that sent nothing, or
a head one byte at a time, was kept open forever (still open after 70 s). Each holds a file
descriptor and a protocol object, so enough of them (the process may open 20,000 files here)
refuse every other client. The body has its own deadline (``body_timeout.py``).

:func:`head_deadline_protocol` makes uvicorn's httptools protocol with a deadline: armed when a
connection opens and after each response (for the next request's head), disarmed when a head is
complete. Past it, a connection that has begun a head gets a 408 naming the setting, then is
closed; one that sent nothing is closed.
"""

from __future__ import annotations

import asyncio

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def _timeout_response(timeout_s: float) -> bytes:
    body = orjson.dumps(
        {"detail": f"the request head did not arrive within header_timeout_s={timeout_s:g} s (TBPTT_HEADER_TIMEOUT_S)"}
    )
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class HeadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol whose connections must send each request head within ``head_timeout_s``."""

    head_timeout_s = 30.0
    _deadline: asyncio.TimerHandle | None = None
    _head_begun = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        self._head_begun = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._head_begun = False
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:  # a pipelined head is already complete
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.head_timeout_s, self._head_too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._head_begun:
            self.transport.write(_timeout_response(self.head_timeout_s))
        self.transport.close()


def head_deadline_protocol(timeout_s: float) -> type[HeadDeadlineProtocol]:
    """The protocol class for ``uvicorn.run(http=...)`` with a head deadline of ``timeout_s`` seconds.

    >>> head_deadline_protocol(2.5).head_timeout_s
    2.5
    """
    return type("HeadDeadlineProtocol", (HeadDeadlineProtocol,), {"head_timeout_s": timeout_s})
