"""StatementDeadline: a client-side limit on how long one database call may wait for an answer.

A connection that is partitioned (packets dropped, not refused) or a server process that is
frozen leaves a blocking libpq call waiting until TCP gives up: minutes, or forever where the
peer's kernel goes on acknowledging the packets (a stopped process). The server's
``statement_timeout`` needs a running server to apply it, and TCP keepalives are answered by
the kernel; neither ends such a wait. ``StatementDeadline`` does, from the client: a watchdog
thread looks at the call in flight every quarter of ``timeout_s`` and, once it has run longer
than ``timeout_s``, shuts the connection's socket down; the blocked call wakes with
``psycopg.OperationalError`` and the caller treats it as the connection lost during the call
(for an append: unknown whether it committed). A call costs two assignments under a lock (a
timer thread per call cost about 0.1 ms, a fifth of a local append).

>>> deadline = StatementDeadline(0.5)
>>> deadline.timeout_s, deadline.expired
(0.5, False)
>>> deadline.close()
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg


class StatementDeadline:
    """Cuts a connection whose call outlives ``timeout_s`` (``expired`` then says so); one call at a
    time (the log's lock sees to it). ``close()`` stops the watchdog."""

    def __init__(self, timeout_s: float) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s={timeout_s!r} is invalid: must be > 0")
        self.timeout_s = timeout_s
        self.expired = False
        self._lock = threading.Lock()
        self._running: tuple[int, Any, float] | None = None  # (call number, connection, started) in flight
        self._calls = 0
        self._closed = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="statement-deadline", daemon=True)
        self._watchdog.start()

    @contextmanager
    def guarding(self, conn: Any) -> Iterator[None]:
        """Run the body (one call on ``conn``, a psycopg connection) under the deadline."""
        with self._lock:
            self._calls += 1
            self._running = (self._calls, conn, time.monotonic())
        try:
            yield
        finally:
            with self._lock:
                self._running = None  # answered (or failed) in time: nothing to cut

    def close(self) -> None:
        self._closed.set()
        self._watchdog.join()

    def _watch(self) -> None:
        while not self._closed.wait(self.timeout_s / 4):
            with self._lock:
                running = self._running
                if running is None or time.monotonic() - running[2] < self.timeout_s:
                    continue
                self._running = None
                self.expired = True
                _cut(running[1])  # under the lock: the call it cuts is still the one in flight


def _cut(conn: Any) -> None:
    """Shut ``conn``'s socket down, so that a call blocked on it wakes (end of stream)."""
    try:
        fd = conn.fileno()  # the libpq socket; raises once the connection is closed
        # A duplicate of the descriptor: shutdown acts on the socket both share; closing the
        # duplicate leaves the original to psycopg, which closes it with the connection.
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, psycopg.Error):  # the connection closed meanwhile: nothing left to cut
        return
