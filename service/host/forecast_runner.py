"""ForecastRunner: a thread that computes forecasts, so that the event loop runs no torch work (the
service runs one per model: ``forecast_lanes``).

A forecast route hands its request to ``forecast(view, series, horizon, level)`` (any other
computation to ``run(fn, *args)``) and awaits it. One thread takes the work in arrival
order: each turn it drains everything already waiting, answers all the forecasts asked
of one view with ONE ``view.forecast_many`` (one batched rollout instead of one per
request: a forecast of 16 waiting requests costs about what 1 to 2 lone ones did), runs
the other computations one by one, and settles every future with one wake-up of each
event loop. That costs the loop less than a hop through the threadpool per request
(anyio's worker-thread handshake), which under load took more of the loop's time than
the forecasts themselves. A bad forecast request (the library's ``ValueError``) fails
alone: its error is raised where it is awaited, the others of its batch are answered.

>>> import asyncio
>>> from tbptt_online import Forecaster, ForecasterConfig
>>> runner = ForecastRunner()
>>> runner.start()
>>> asyncio.run(runner.run(sum, [1, 2, 3]))
6
>>> f = Forecaster(ForecasterConfig(hidden_size=4))
>>> _ = f.observe("a", 1.0)
>>> len(asyncio.run(runner.forecast(f.view(), "a", 3)).mean)
3
>>> runner.stop()
>>> asyncio.run(runner.run(sum, [1]))
Traceback (most recent call last):
...
tbptt_service.errors.NotReady: the service is stopping; retry shortly
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import torch

from tbptt_online import Forecast, ForecasterView
from tbptt_service.errors import NotReady

T = TypeVar("T")
_STOP = object()
_Settlement = tuple[asyncio.Future[Any], Any, BaseException | None]


class _Call(NamedTuple):
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class _ForecastRequest(NamedTuple):
    view: ForecasterView
    request: tuple[str, int, float | None]  # (series, horizon, level) as forecast_many takes it
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Forecast]


class ForecastRunner:
    """One thread for forecasts: ``start()``, ``await forecast(view, ...)`` or ``await run(fn, *args)``
    on an event loop, ``stop()``.

    ``max_drain``: how many waiting requests one turn takes before it settles them; ``name``: its
    thread's (a model's lane is ``forecasts <model>``, ``forecast_lanes``).
    """

    def __init__(self, max_drain: int = 64, name: str = "forecasts") -> None:
        if isinstance(max_drain, bool) or not isinstance(max_drain, int) or max_drain < 1:
            raise ValueError(f"max_drain={max_drain!r} is invalid: must be an integer >= 1")
        self.max_drain = max_drain
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._submit_lock = threading.Lock()  # nothing enters the queue after _STOP
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def running(self) -> bool:
        """Whether its thread is still alive (a stopped runner's ends once its queue is answered)."""
        return self._thread.is_alive()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the runner's thread; its result, or its exception raised here.
        ``NotReady`` (503) once the runner is stopping."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._submit(_Call(fn, args, loop, future))
        return await future

    async def forecast(self, view: ForecasterView, series: str, horizon: int, level: float | None = None) -> Forecast:
        """``view.forecast(series, horizon, level)``, computed in one batch with the other forecasts
        of ``view`` waiting at the same time; its ``ValueError`` is raised here. ``NotReady`` (503)
        once the runner is stopping."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Forecast] = loop.create_future()
        self._submit(_ForecastRequest(view, (series, horizon, level), loop, future))
        return await future

    def _submit(self, task: _Call | _ForecastRequest) -> None:
        with self._submit_lock:
            if self._closed:
                raise NotReady("the service is stopping; retry shortly")
            self._queue.put(task)

    def stop(self, wait: bool = True) -> None:
        """Refuse new computations, finish those queued, end the thread (idempotent); with ``wait``
        False, return at once (the thread ends once the queued ones are answered)."""
        with self._submit_lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)
        if wait and self._thread.is_alive():
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
            by_view: dict[int, list[_ForecastRequest]] = {}  # by identity: a view is read-only, never equal to another
            stopping = False
            for task in tasks:
                if task is _STOP:
                    stopping = True
                elif isinstance(task, _ForecastRequest):
                    by_view.setdefault(id(task.view), []).append(task)
                else:
                    by_loop.setdefault(task.loop, []).append(_call(task))
            for group in by_view.values():
                for task, settlement in zip(group, _forecast_all(group), strict=True):
                    by_loop.setdefault(task.loop, []).append(settlement)
            for loop, settlements in by_loop.items():
                if not loop.is_closed():
                    loop.call_soon_threadsafe(_settle, settlements)
            if stopping:
                return


def _call(task: _Call) -> _Settlement:
    try:
        return task.future, task.fn(*task.args), None
    except Exception as error:  # the requester gets it, raised where it awaits
        return task.future, None, error


def _forecast_all(group: list[_ForecastRequest]) -> list[_Settlement]:
    """One ``forecast_many`` for a view's requests: each request's forecast, or its own error."""
    try:
        answers = group[0].view.forecast_many([task.request for task in group])
    except Exception as error:  # not a request's fault (a bug): every requester gets it, none hangs
        return [(task.future, None, error) for task in group]
    return [
        (task.future, None, answer) if isinstance(answer, Exception) else (task.future, answer, None)
        for task, answer in zip(group, answers, strict=True)
    ]


def _settle(group: list[_Settlement]) -> None:
    for future, result, error in group:
        if future.done():  # the requester went away (cancelled)
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
