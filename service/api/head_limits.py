"""A request's head (its request line and headers) must arrive within ``header_timeout_s`` and
hold at most ``max_header_bytes``.

uvicorn closes an idle keep-alive connection after 5 s, but that clock stops at the first byte
received, and none runs before a connection's first request: a connection that sent nothing, or
a head one byte at a time, was kept open forever (still open after 70 s). Each holds a file
descriptor and a protocol object, so enough of them (the process may open 20,000 files here)
refuse every other client. The body has its own deadline (``body_timeout.py``).

:func:`head_limited_protocol` makes uvicorn's httptools protocol with a deadline: armed when a
connection opens and after the response to the newest request (for the next request's head),
disarmed when a head is complete. Past it, a connection that has begun a head gets a 408 naming the setting, then is
closed; one that sent nothing is closed.

Nor did anything bound a head's size: one header of 100 MB was parsed (14 s, worse than
linearly) and answered 200, and another client's ``/healthz`` waited up to 3.9 s meanwhile (a
hostile test; 200,000 headers were taken too). The bytes received while a head is incomplete
are counted up to the blank line that ends it, before they are parsed (from the end of the
message before it, whether or not a request is being served meanwhile: a pipelined head is
counted too); past ``max_header_bytes`` the connection gets a 431 naming the setting and is
closed, the rest dropped unparsed. The API key cannot guard this: headers are read before it
is. (Bounded by one read, up to 256 KiB, past the limit: the bytes of a read in which a
message ends, which the parser sees first, are not counted into the next head.)

Bytes the parser refuses (a control byte in a header, both Content-Length and chunked) get a 400
in JSON, as every other error, after the answer to a request before them on the connection, and
the connection then ends as on a 431 (uvicorn's own answer was ``text/plain``, sent at once).
"""

from __future__ import annotations

import asyncio

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DRAIN_S = 1.0  # how long a refused head's connection is read (and dropped) before it is closed


def refusal(status: str, detail: str, retry_after_s: int | None = None) -> bytes:
    """A whole response refusing a connection's request: ``{"detail": ...}``, then the connection closes."""
    body = orjson.dumps({"detail": detail})
    retry = "" if retry_after_s is None else f"retry-after: {retry_after_s}\r\n"
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n{retry}"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _timeout_response(timeout_s: float) -> bytes:
    detail = f"the request head did not arrive within header_timeout_s={timeout_s:g} s (TBPTT_HEADER_TIMEOUT_S)"
    return refusal("408 Request Timeout", detail)


def _too_large_response(max_bytes: int) -> bytes:
    detail = (
        f"the request line and headers exceed max_header_bytes={max_bytes} bytes (TBPTT_MAX_HEADER_BYTES); "
        "send the data in the body"
    )
    return refusal("431 Request Header Fields Too Large", detail)


class HeadLimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol whose connections must send each request head within
    ``head_timeout_s`` and in at most ``max_head_bytes``."""

    head_timeout_s = 30.0
    max_head_bytes = 65536
    _deadline: asyncio.TimerHandle | None = None
    _head_begun = False
    _in_head = False  # the bytes arriving belong to a request's head (from a message's end to its headers' end)
    _head_started = False  # a byte of it other than the CR and LF llhttp skips before a request line
    _head_bytes = 0  # received of the current head
    _tail = b""  # its last bytes (a blank line split between two reads)
    _refused = False
    _refusal_due: bytes | None = None  # refused while a request was being served: this follows its response

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._next_head()
        self._arm()

    def on_message_begin(self) -> None:
        self._head_begun = True
        super().on_message_begin()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # a refused head's rest: dropped unparsed
        if self._in_head and self._over(data):
            self._refuse(_too_large_response(self.max_head_bytes))
            return
        super().data_received(data)

    def _over(self, data: bytes) -> bool:
        """Count ``data`` into the head under way, up to its blank line: whether it passes the limit."""
        skipped = 0
        if not self._head_started:  # the empty lines before a request line are skipped, not its end
            skipped = len(data) - len(data.lstrip(b"\r\n"))
            self._head_started = skipped < len(data)
        seen = self._tail + data[skipped:]
        ends = [at + len(mark) for mark in (b"\r\n\r\n", b"\n\n") if (at := seen.find(mark)) >= 0]
        if ends and self._head_started:
            head = self._head_bytes + skipped + min(ends) - len(self._tail)
        else:
            head = self._head_bytes + len(data)
        if head > self.max_head_bytes:
            return True
        self._head_bytes += len(data)
        self._tail = seen[-3:] if self._head_started else b""
        return False

    def _refuse(self, response: bytes, wait: bool = True) -> None:
        """Send ``response`` and end the connection; with ``wait``, after the response under way."""
        self._refused = True
        self._disarm()
        if self.transport.is_closing():
            return
        if wait and self.cycle is not None and not self.cycle.response_complete:
            self._refusal_due = response  # after the response under way: answers go out in order
            return
        self._sendrefusal(response)

    def _sendrefusal(self, response: bytes) -> None:
        self._refusal_due = None
        self.transport.write(response)
        # Closed with the client's bytes still unread, the socket would send a reset, which can
        # overtake the answer: the sending side is ended, what arrives is dropped unparsed, and the
        # connection closes after DRAIN_S.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(DRAIN_S, self.transport.close)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes its parser refuses (a control byte in a header, both
        Content-Length and chunked, a negative Content-Length), as JSON like every other error
        (it was ``text/plain``, a hostile test), after the response under way (uvicorn closed
        the connection at once, and a pipelined request before the bad bytes went unanswered),
        then the connection ends as a refused head's."""
        detail = f"{msg.rstrip('.')}: the request line, a header or the body's framing is malformed"
        cycle = self.cycle
        in_body = cycle is not None and not cycle.response_complete and cycle.more_body
        if in_body:
            # the bad bytes are in the body under way (a chunk's size that is no number): its handler waits
            # for the rest, which never comes; waiting for its answer held the 400 until body_timeout_s
            # (30 s) and then sent a 408 instead (a hostile test). The handler is told the client is gone.
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:  # no room for a 400: the connection ends
                self._refused = True
                self._disarm()
                self.transport.close()
                return
        self._refuse(refusal("400 Bad Request", detail), wait=not in_body)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        self._head_begun = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._next_head()  # what arrives next is the next request's head

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refusal_due is not None and not self.transport.is_closing():
            self._sendrefusal(self._refusal_due)
            return
        # The deadline runs while the client owes the next head and the server owes nothing: the
        # newest request answered (``cycle`` is the newest; a pipelined one started just now is
        # not) and its message complete. (Armed whenever the pipeline was empty, it ran under a
        # pipelined request still being served, which a slow one outlived: closed unanswered, a
        # review; and it restarted the count of a head already under way.)
        if not self.transport.is_closing() and self._in_head and self.cycle.response_complete:
            self._arm()

    def _next_head(self) -> None:
        self._in_head, self._head_started, self._head_bytes, self._tail = True, False, 0, b""

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


def head_limited_protocol(timeout_s: float, max_bytes: int) -> type[HeadLimitedProtocol]:
    """The protocol class for ``uvicorn.run(http=...)`` with a head deadline of ``timeout_s``
    seconds and a head size limit of ``max_bytes``.

    >>> protocol = head_limited_protocol(2.5, 8192)
    >>> protocol.head_timeout_s, protocol.max_head_bytes
    (2.5, 8192)
    """
    attributes = {"head_timeout_s": timeout_s, "max_head_bytes": max_bytes}
    return type("HeadLimitedProtocol", (HeadLimitedProtocol,), attributes)
