"""StatementDeadline: a client-side limit on how long one database call may wait for an answer.

A connection that is partitioned (packets dropped, not refused) or a server process that is
frozen leaves a blocking libpq call waiting until TCP gives up: minutes, or forever where the
peer's kernel goes on acknowledging the packets (a stopped process). The server's
``statement_timeout`` needs a running server to apply it, and TCP keepalives are answered by
the kernel; neither ends such a wait. ``StatementDeadline`` does, from the client: when a call
is still running after ``timeout_s``, a timer shuts the connection's socket down, the blocked
call wakes with ``psycopg.OperationalError``, and the caller treats it as the connection lost
during the call (for an append: unknown whether it committed).

>>> deadline = StatementDeadline(0.5)
>>> deadline.timeout_s, deadline.expired
(0.5, False)
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg


class StatementDeadline:
    """Cuts a connection whose call outlives ``timeout_s`` (``expired`` then says so)."""

    def __init__(self, timeout_s: float) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s={timeout_s!r} is invalid: must be > 0")
        self.timeout_s = timeout_s
        self.expired = False

    @contextmanager
    def guarding(self, conn: Any) -> Iterator[None]:
        """Run the body (one call on ``conn``, a psycopg connection) under the deadline."""
        timer = threading.Timer(self.timeout_s, self._cut, args=(conn,))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()  # a call that answered in time: nothing is cut

    def _cut(self, conn: Any) -> None:
        self.expired = True
        try:
            fd = conn.fileno()  # the libpq socket; raises once the connection is closed
            # A duplicate of the descriptor: shutdown acts on the socket both share, so the call
            # blocked on the original wakes (end of stream); closing the duplicate leaves the
            # original to psycopg, which closes it with the connection.
            with socket.socket(fileno=os.dup(fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except (OSError, psycopg.Error):  # the connection closed meanwhile: nothing left to cut
            return
