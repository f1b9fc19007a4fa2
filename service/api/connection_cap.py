"""At most ``max_connections`` connections are served at once (``TBPTT_MAX_CONNECTIONS``).

Nothing bounded them (a hostile test, session 60: F6, F7): 21,000 idle connections took every file
descriptor the process may open, and checkpoints failed (``EMFILE``) while they lasted; 60 clients
that asked for large pages and never read held 2.4 GB. :class:`ConnectionCapProtocol` (uvicorn's
protocol with the head limits of ``head_limits.py``) counts the open connections as each one opens:

- past the cap, the connection that has waited longest for a request's head (a new one, or one kept
  alive after its answer; nothing of the head received, or a part of it: a head sent a byte at a time
  holds no place) is closed to make room: connections that owe a request give way to one that may
  bring one, and no request read whole is dropped;
- when none waits so, the new connection must send its request line within ``OVER_CAP_HEAD_S``: it
  is answered 503 in JSON, with ``Retry-After``, naming the setting, and closed (``/healthz`` and
  ``/readyz``, a probe's, are served as usual: the process is alive, and its readiness is its own);
- past twice the cap (connections arriving faster than the refused ones close), a connection is
  closed at once, unanswered: the descriptors the process may open are never all taken by clients.

uvicorn's own ``limit_concurrency`` answers ``text/plain`` and counts a connection only once its
request's headers are complete: an idle one still held its descriptor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import ClassVar

from tbptt_service.api.head_limits import head_limited_protocol, refusal
from tbptt_service.api.send_deadline import SendDeadlineProtocol

OVER_CAP_HEAD_S = 1.0  # how long a connection past the cap has to send its request line
PROBES = (b"/healthz", b"/readyz")  # served past the cap
LOG_EVERY_S = 10.0  # the refusals are logged at most this often (a flood would fill the log)
log = logging.getLogger("tbptt_service.api")


def _busy_response(max_connections: int) -> bytes:
    detail = (
        f"the server holds max_connections={max_connections} connections (TBPTT_MAX_CONNECTIONS): "
        "try again shortly, or reuse a connection"
    )
    return refusal("503 Service Unavailable", detail, retry_after_s=1)


class ConnectionCapProtocol(SendDeadlineProtocol):
    """:class:`SendDeadlineProtocol` (and so :class:`HeadLimitedProtocol`) serving at most ``max_connections``
    connections at once."""

    max_connections = 512
    over_cap_head_s = OVER_CAP_HEAD_S
    # the connections that owe a request's head and are owed nothing (no request of theirs read whole and
    # unanswered), the longest waiting first (one dict per protocol class connection_capped_protocol makes)
    waiting: ClassVar[OrderedDict[ConnectionCapProtocol, None]] = OrderedDict()
    refused: ClassVar[list[int]] = [0, 0]  # [refused with 503, closed at once], since the last log line
    logged_at: ClassVar[list[float]] = [0.0]
    _over_cap = False
    _request_line = b""  # what an over-cap connection sent so far (its request line is looked at)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # (counted in self.connections from here on)
        open_now = len(self.connections)
        if open_now > self.max_connections and self.waiting:
            oldest, _ = self.waiting.popitem(last=False)
            oldest.transport.close()  # no request of it was read whole since it opened or since its answer
        elif open_now > 2 * self.max_connections:
            self._count(closed=True)
            transport.abort()  # no answer: a descriptor given back at once
            return
        elif open_now > self.max_connections:
            self._over_cap = True
            self.head_timeout_s = min(self.head_timeout_s, self.over_cap_head_s)  # (this connection's own)
            self._arm()
            return
        self.waiting[self] = None

    def data_received(self, data: bytes) -> None:
        if not self._over_cap or self._refused:  # (a refused one's bytes are dropped by HeadLimitedProtocol)
            super().data_received(data)
            return
        self._request_line += data
        if b"\n" not in self._request_line.lstrip(b"\r\n"):
            if len(self._request_line) > self.max_head_bytes:
                self._refuse_busy()
            return
        words = self._request_line.lstrip(b"\r\n").split(b" ", 2)
        target = words[1].partition(b"?")[0] if len(words) > 1 else b""
        if target in PROBES:  # a probe: served as any other connection's request
            self._over_cap, line = False, self._request_line
            self._request_line = b""
            super().data_received(line)
        else:
            self._refuse_busy()

    def _refuse_busy(self) -> None:
        self._request_line = b""
        self._count(closed=False)
        self._refuse(_busy_response(self.max_connections))

    def on_headers_complete(self) -> None:
        self.waiting.pop(self, None)  # a request read: it is owed an answer (its body may still be arriving)
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # kept alive and owed nothing: it waits for its next request (unless one is queued behind)
        if not self.transport.is_closing() and not self.pipeline and self.cycle.response_complete:
            self.waiting[self] = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.waiting.pop(self, None)
        super().connection_lost(exc)

    def _count(self, closed: bool) -> None:
        self.refused[1 if closed else 0] += 1
        now = time.monotonic()
        if now - self.logged_at[0] >= LOG_EVERY_S:
            log.warning(
                "past TBPTT_MAX_CONNECTIONS=%d: %d connection(s) answered 503, %d closed unanswered (past twice "
                "the cap) since the last such line",
                self.max_connections,
                *self.refused,
            )
            self.refused[:] = [0, 0]
            self.logged_at[0] = now


def connection_capped_protocol(
    timeout_s: float, max_bytes: int, max_connections: int, send_timeout_s: float = 30.0
) -> type[ConnectionCapProtocol]:
    """The protocol class for ``uvicorn.run(http=...)``: heads as :func:`head_limited_protocol` makes them,
    answers taken within ``send_timeout_s`` (``send_deadline.py``), at most ``max_connections`` connections.

    >>> protocol = connection_capped_protocol(2.5, 8192, 100, send_timeout_s=9.0)
    >>> protocol.head_timeout_s, protocol.max_head_bytes, protocol.max_connections, protocol.send_timeout_s
    (2.5, 8192, 100, 9.0)
    """
    limits = head_limited_protocol(timeout_s, max_bytes)
    attributes = {
        "head_timeout_s": limits.head_timeout_s,
        "max_head_bytes": limits.max_head_bytes,
        "max_connections": max_connections,
        "send_timeout_s": send_timeout_s,
        "waiting": OrderedDict(),
        "refused": [0, 0],
        "logged_at": [0.0],
    }
    return type("ConnectionCapProtocol", (ConnectionCapProtocol,), attributes)
