"""ShardHost: one shard of a cluster, the unit a Ray actor holds (the same class runs in-process).

A shard owns the models whose names hash to it (:func:`shard_of`, a stable hash: the same
on every node and in every process). It runs today's service as is (``create_app``: registry,
workers, micro-batching, durability) on an event loop of its own, with its log stream
``shard-{index}`` in PostgreSQL and its checkpoints in ``{state_dir}/shard-{index}``, and
recovers in its constructor: once it returns, the shard is ready (or raised why not).

Requests come in batches (``handle``): the front coalesces what arrives for a shard within a few
milliseconds into one call, and the shard runs them concurrently through the app, so they meet
in its micro-batches as they would in one process: the same answers, status codes and error
bodies. Each call carries an idempotency key: a call retried with a key already answered (a
front that lost the reply, Ray re-executing a task) gets the first answers back and applies
nothing twice. Keys are remembered in memory, so this holds within an incarnation; across a
restart, timestamped observations are recognised by the service's own idempotency (a repeated
``(series, timestamp, value)`` answers its first result).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from service.settings import Settings

KEYS_REMEMBERED = 10_000
logger = logging.getLogger("service.host.shard")


def shard_of(model: str, shards: int) -> int:
    """The shard that owns ``model``: a stable hash (sha256), never Python's per-process ``hash``.

    >>> [shard_of(name, 4) for name in ("default", "m1", "m2", "m3")]
    [1, 1, 1, 3]
    """
    return int.from_bytes(hashlib.sha256(model.encode()).digest()[:8], "big") % shards


class ForwardedRequest(NamedTuple):
    method: str
    path: str  # with the query string, if any
    headers: list[tuple[str, str]]
    body: bytes


class ForwardedResponse(NamedTuple):
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def shard_settings(base: Settings, index: int, shards: int) -> Settings:
    """The settings of shard ``index``: its own log stream and checkpoint directory, and the model
    ``default`` created only by the shard that owns the name."""
    return base.model_copy(
        update={
            "log_stream": f"shard-{index}",
            "state_dir": Path(base.state_dir) / f"shard-{index}",
            "create_default_model": base.create_default_model and shard_of("default", shards) == index,
        }
    )


class ShardHost:
    """Shard ``index`` of ``shards``, built from ``settings`` (a dict of Settings fields: it crosses
    process boundaries). Blocks until recovered; ``RuntimeError`` when the state cannot be loaded."""

    def __init__(self, index: int, shards: int, settings: dict[str, Any]) -> None:
        from service.api.app import create_app  # the app is what a shard runs; imported where it starts

        self.index, self.shards = index, shards
        self.settings = shard_settings(Settings(**settings), index, shards)
        self.app = create_app(self.settings)
        self._answers: OrderedDict[str, Future[list[ForwardedResponse]]] = OrderedDict()
        self._answers_lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"shard-{index}-loop", daemon=True)
        self._thread.start()
        self._stack = AsyncExitStack()
        self._client: httpx.AsyncClient | None = None
        self._run(self._start())

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _start(self) -> None:
        await self._stack.enter_async_context(self.app.router.lifespan_context(self.app))
        await self.app.state.loading  # recovery: the newest checkpoint, then the log stream after it
        if not getattr(self.app.state, "ready", False):
            error = getattr(self.app.state, "load_error", "not ready")
            await self._stack.aclose()
            raise RuntimeError(f"shard {self.index}: {error}")
        transport = httpx.ASGITransport(app=self.app)
        self._client = await self._stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://shard", timeout=None)
        )

    def ready(self) -> bool:
        return bool(getattr(self.app.state, "ready", False))

    def pid(self) -> int:
        """The process the shard runs in (a fault test kills it)."""
        return os.getpid()

    def handle(self, key: str, requests: list[ForwardedRequest]) -> list[ForwardedResponse]:
        """Answer ``requests`` (run concurrently through the app), or the answers already given to
        ``key``. Thread-safe: calls from several fronts run at once."""
        with self._answers_lock:
            answer = self._answers.get(key)
            owner = answer is None
            if owner:
                answer = self._answers[key] = Future()
                while len(self._answers) > KEYS_REMEMBERED:
                    self._answers.popitem(last=False)
        assert answer is not None
        if owner:
            try:
                answer.set_result(self._run(self._handle_all(requests)))
            except BaseException as error:
                with self._answers_lock:
                    self._answers.pop(key, None)  # nothing answered: a retry runs it
                answer.set_exception(error)
            self._exit_if_log_broken()
        return answer.result()

    def _exit_if_log_broken(self) -> None:
        """A log connection lost during an append leaves it unknown whether the record committed, and
        the log refuses every later change: only a restart (a new epoch, recovery) mends that, so
        the process ends itself once this answer is out (Ray restarts the actor)."""
        durability = getattr(self.app.state, "durability", None)
        broken = getattr(getattr(durability, "log", None), "broken", None)
        if broken is not None:
            logger.error("shard %d: %s; exiting for a restart", self.index, broken)
            threading.Timer(0.2, os._exit, args=(1,)).start()

    async def _handle_all(self, requests: list[ForwardedRequest]) -> list[ForwardedResponse]:
        return list(await asyncio.gather(*(self._handle_one(request) for request in requests)))

    async def _handle_one(self, request: ForwardedRequest) -> ForwardedResponse:
        assert self._client is not None
        response = await self._client.request(
            request.method, request.path, headers=request.headers, content=request.body
        )
        return ForwardedResponse(response.status_code, list(response.headers.multi_items()), response.content)

    def close(self) -> None:
        """Drain and stop the app (the final checkpoint), then the loop."""
        try:
            self._run(self._stack.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
