"""ShardApp: one incarnation of a shard's app, and the requests a front forwards to it.

The app is today's service (``create_app``) run on the shard's event loop and reached through an
in-memory ASGI client. Each forwarded request of a call with key ``K`` goes in with the header
``Idempotency-Key: K/i`` (``i`` its place in the call) unless its client sent one: an observation
request is journaled with its key, so a retry after a restart is answered, not applied again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any, NamedTuple

import httpx

from tbptt_service.api.cross_site import FRONT_HOSTS
from tbptt_service.settings import Settings

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEY = "idempotency-key"


class ForwardedRequest(NamedTuple):
    method: str
    path: str  # with the query string, if any
    headers: list[tuple[str, str]]
    body: bytes
    # The names the forwarding front answers browsers at (its TBPTT_HOST, the allowed hosts): the shard's host
    # check uses them (cross_site.FRONT_HOSTS); None (an older front's request): the shard's own settings'.
    browser_hosts: tuple[str, ...] | None = None


class ForwardedResponse(NamedTuple):
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class ShardApp:
    """One incarnation of a shard's app: started (recovered) on ``loop``, answering, closed."""

    def __init__(self, index: int, settings: Settings) -> None:
        from tbptt_service.api.app import create_app  # the app is what a shard runs; imported where it starts

        self.index = index
        self.app = create_app(settings)
        self._stack = AsyncExitStack()
        self._client: httpx.AsyncClient | None = None
        self._calls = 0  # calls let in (``enter``) and not yet answered (``leave``)
        self._closing = False  # once set, ``enter`` lets no call in
        self._calls_lock = threading.Lock()  # enter/leave run on the callers' threads, close on the loop

    async def start(self, on_step: Callable[[str], None] = lambda step: None) -> None:
        """Start the app and recover its state; ``RuntimeError`` naming why it could not.
        ``on_step`` hears each step done (the shard's startup marks)."""
        try:
            await self._stack.enter_async_context(self.app.router.lifespan_context(self.app))
            on_step("log opened (a new epoch)")
            await self.app.state.loading  # recovery: the newest checkpoint, then the log stream after it
        except BaseException:
            await self._stack.aclose()
            raise
        if not getattr(self.app.state, "ready", False):
            error = getattr(self.app.state, "load_error", "not ready")
            await self._stack.aclose()
            raise RuntimeError(f"shard {self.index}: {error}")
        report = getattr(self.app.state.durability, "report", None)
        applied = "?" if report is None else report.applied
        on_step(f"recovered ({applied} log records; kernels loaded beside it in {self.app.state.kernels_s:.2f} s)")
        transport = httpx.ASGITransport(app=self.app)
        self._client = await self._stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://shard", timeout=None)
        )

    @property
    def log_superseded(self) -> Exception | None:
        """Why the app's log refuses every change because a newer epoch owns its stream (a standby
        was promoted in this incarnation's place), or None."""
        return self._log_state("superseded")

    @property
    def log_broken(self) -> OSError | None:
        """Why the app's log refuses every change (a connection lost during an append), or None."""
        return self._log_state("broken")

    def ask_epoch(self) -> None:
        """Ask the database now whether a newer epoch owns the app's log stream: a PostgreSQL log's
        ``last_seq`` sets ``log_superseded`` if so, and ``log_broken`` if its connection is gone
        (other errors, a cancelled statement say, tell nothing: logged as a warning); nothing for a log that
        cannot tell."""
        log = self._log()
        if log is None or not hasattr(log, "superseded") or log.superseded is not None:
            return
        try:
            log.last_seq()
        except Exception as error:  # fenced or broken: the answer, kept in the log's state and read by the shard
            if log.superseded is None and getattr(log, "broken", None) is None:  # neither: it told nothing, said
                logger.warning("shard %d: asking the database for its log's epoch failed: %r", self.index, error)

    def _log(self) -> Any:
        """The app's log (None before it opened)."""
        return getattr(getattr(self.app.state, "durability", None), "log", None)

    def _log_state(self, name: str) -> Any:
        """The app's log's ``name`` (``broken``, ``superseded``; only a PostgreSQL log has them), or None."""
        return getattr(self._log(), name, None)

    def enter(self) -> bool:
        """Let a call in (any thread), or False once the app is closing: the call must not run here.
        Each call let in is answered before ``close`` closes the app, and ends with ``leave``."""
        with self._calls_lock:
            if self._closing:
                return False
            self._calls += 1
            return True

    def leave(self) -> None:
        with self._calls_lock:
            self._calls -= 1

    async def handle_all(self, key: str, requests: list[ForwardedRequest]) -> list[ForwardedResponse]:
        return list(await asyncio.gather(*(self._handle_one(f"{key}/{i}", r) for i, r in enumerate(requests))))

    async def _handle_one(self, key: str, request: ForwardedRequest) -> ForwardedResponse:
        assert self._client is not None
        headers = request.headers
        if not any(name.lower() == IDEMPOTENCY_KEY for name, _ in headers):  # the client's own key wins
            headers = [*headers, (IDEMPOTENCY_KEY, key)]
        hosts = None if request.browser_hosts is None else frozenset(request.browser_hosts)
        token = FRONT_HOSTS.set(hosts)  # (this call's own context: gather runs each request in a task of its own)
        try:
            response = await self._client.request(request.method, request.path, headers=headers, content=request.body)
        finally:
            FRONT_HOSTS.reset(token)
        return ForwardedResponse(response.status_code, list(response.headers.multi_items()), response.content)

    async def close(self) -> None:
        """Let no call in, wait for the calls let in to be answered, then close the app. Before, a call
        that had taken the app just as the shard retired it ran on a closed client (an unhandled
        ``RuntimeError``: the front's 500)."""
        with self._calls_lock:
            self._closing = True
        while True:
            with self._calls_lock:
                if self._calls == 0:
                    break
            await asyncio.sleep(0.01)  # the calls run on this loop: they finish meanwhile
        await self._stack.aclose()
