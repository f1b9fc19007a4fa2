"""A client must take some of its answer within ``send_timeout_s`` while the server has more for it
(``TBPTT_SEND_TIMEOUT_S``).

uvicorn stops writing to a connection whose unsent bytes pass 64 KiB (its flow control) until the client
has taken all but 16 KiB of them; nothing ended a connection whose client never took any: it held its
descriptor, its place under ``TBPTT_MAX_CONNECTIONS`` and the answer's bytes (a whole checkpoint export,
the rest of a forecast page) for as long as the client kept it open (a hostile test, session 61: 60
connections that asked for pages and never read held them for good). :class:`SendDeadlineProtocol`
arms a deadline when writing pauses and disarms it when writing resumes; past it the connection is
aborted (a reset: nothing more can reach such a client), and the request's handler sees a client gone.
A client reading slowly but steadily resumes the writing each time it takes 48 KiB (at 2 KB/s, every 24 s).
"""

from __future__ import annotations

import asyncio
import logging

from tbptt_service.api.head_limits import HeadLimitedProtocol

log = logging.getLogger("tbptt_service.api")


class SendDeadlineProtocol(HeadLimitedProtocol):
    """:class:`HeadLimitedProtocol` whose client must take some of an answer within ``send_timeout_s``."""

    send_timeout_s = 30.0
    _send_deadline: asyncio.TimerHandle | None = None

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_deadline is None:
            self._send_deadline = self.loop.call_later(self.send_timeout_s, self._send_too_slow)

    def resume_writing(self) -> None:
        self._disarm_send()
        super().resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_send()
        super().connection_lost(exc)

    def _disarm_send(self) -> None:
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None

    def _send_too_slow(self) -> None:
        self._send_deadline = None
        if self.transport.is_closing():
            return
        log.info(
            "closed a connection whose client took none of its answer for send_timeout_s=%g s (TBPTT_SEND_TIMEOUT_S)",
            self.send_timeout_s,
        )
        self.transport.abort()
