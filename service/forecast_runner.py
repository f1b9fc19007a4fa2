"""ForecastRunner: the thread that computes forecasts, so that the event loop runs no torch work.

A forecast route hands its computation (``view.forecast``) to ``run`` and awaits it. One
thread takes the computations in arrival order, runs every one already waiting, and
settles their futures with one wake-up of each event loop. That costs the loop less
than a hop through the threadpool per request (anyio's worker-thread handshake), which
under load took more of the loop's time than the forecasts themselves.

>>> import asyncio
>>> runner = ForecastRunner()
>>> runner.start()
>>> asyncio.run(runner.run(sum, [1, 2, 3]))
6
>>> runner.stop()
>>> asyncio.run(runner.run(sum, [1]))
Traceback (most recent call last):
...
service.errors.NotReady: the service is stopping; retry shortly
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from service.errors import NotReady

T = TypeVar("T")
_STOP = object()
_Task = tuple[Callable[..., Any], tuple[Any, ...], asyncio.AbstractEventLoop, asyncio.Future[Any]]
_Settlement = tuple[asyncio.Future[Any], Any, BaseException | None]


class ForecastRunner:
    """One thread for forecasts: ``start()``, ``await run(fn, *args)`` on an event loop, ``stop()``.

    ``max_drain``: how many waiting computations one turn runs before it settles them.
    """

    def __init__(self, max_drain: int = 64) -> None:
        if isinstance(max_drain, bool) or not isinstance(max_drain, int) or max_drain < 1:
            raise ValueError(f"max_drain={max_drain!r} is invalid: must be an integer >= 1")
        self.max_drain = max_drain
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._submit_lock = threading.Lock()  # nothing enters the queue after _STOP
        self._thread = threading.Thread(target=self._serve, name="forecasts", daemon=True)

    def start(self) -> None:
        self._thread.start()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the runner's thread; its result, or its exception raised here.
        ``NotReady`` (503) once the runner is stopping."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._submit_lock:
            if self._closed:
                raise NotReady("the service is stopping; retry shortly")
            self._queue.put((fn, args, loop, future))
        return await future

    def stop(self) -> None:
        """Refuse new computations, finish those queued, end the thread (idempotent)."""
        with self._submit_lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)
        if self._thread.is_alive():
            self._thread.join()

    def _serve(self) -> None:
        torch.set_num_threads(torch.get_num_threads())  # OpenMP's count is per thread: take the process's
        while True:
            tasks = [self._queue.get()]
            while len(tasks) < self.max_drain:
                try:
                    tasks.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            by_loop: dict[asyncio.AbstractEventLoop, list[_Settlement]] = {}
            stopping = False
            for task in tasks:
                if task is _STOP:
                    stopping = True
                    continue
                fn, args, loop, future = task
                try:
                    settlement: _Settlement = (future, fn(*args), None)
                except Exception as error:  # the requester gets it, raised where it awaits
                    settlement = (future, None, error)
                by_loop.setdefault(loop, []).append(settlement)
            for loop, group in by_loop.items():
                if not loop.is_closed():
                    loop.call_soon_threadsafe(_settle, group)
            if stopping:
                return


def _settle(group: list[_Settlement]) -> None:
    for future, result, error in group:
        if future.done():  # the requester went away (cancelled)
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
