"""ForecastLanes: one forecast thread per model, so that one model's costly forecasts hold up only its own.

Each model gets its own :class:`~tbptt_service.host.forecast_runner.ForecastRunner` (a *lane*),
made on its first forecast and stopped when the model is deleted (``retire``, which does not wait:
the forecasts the lane was already asked are answered first, its thread then ends). Within a lane
the runner batches the forecasts of one view as before; across lanes the threads run side by side
(torch and the compiled kernels release the GIL). The compiled kernels' thread pool is the
process's, shared by every thread that runs them; torch's OpenMP team is each calling thread's own,
so with ``TBPTT_TORCH_THREADS`` n above 1 every lane that has forecast holds up to n - 1 OpenMP
threads besides its own (a review: 20 models on 4 torch threads, 89 threads against 13 with one
model); at the default of 1, one thread a model.

Why: with one thread for every model's forecasts (until session 48), a model whose forecasts are
costly held every other model's: a hostile test's network of 8 layers of 1,024 units took 12.6 s
for one forecast at h = 1,000, and another model's 12-step forecast waited up to 25.3 s; a model
of 1,024 features, 8 such requests at once, another model's one-step forecast 13.0 s. A model's
own forecasts still wait for each other (README, Limits: one long horizon among batched forecasts).

>>> import asyncio
>>> from tbptt_online import Forecaster, ForecasterConfig
>>> lanes = ForecastLanes()
>>> f = Forecaster(ForecasterConfig(hidden_size=4))
>>> _ = f.observe("a", 1.0)
>>> len(asyncio.run(lanes.forecast("m", f.view(), "a", 3)).mean), lanes.names()
(3, ['m'])
>>> lanes.retire("m"); lanes.names()
[]
>>> lanes.stop()
>>> asyncio.run(lanes.forecast("m", f.view(), "a", 3))
Traceback (most recent call last):
...
tbptt_service.errors.NotReady: the service is stopping; retry shortly
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tbptt_online import Forecast, ForecasterView
from tbptt_online.view import ForecastRequest
from tbptt_service.errors import NotFound, NotReady
from tbptt_service.host.forecast_runner import ForecastRunner

Refusal = Callable[[], str | None]  # why a model takes no more requests, None while it takes them


class ForecastLanes:
    """A ``ForecastRunner`` per model name: ``await forecast(model, view, ...)``, ``retire(model)``
    when the model is deleted, ``stop()`` at shutdown (every lane's queued forecasts answered)."""

    def __init__(self, max_drain: int = 64) -> None:
        self.max_drain = max_drain
        self._lanes: dict[str, ForecastRunner] = {}
        self._retired: list[ForecastRunner] = []  # stopped without waiting: joined at ``stop``
        self._lock = threading.Lock()  # lanes are made, retired and stopped by several threads
        self._closed = False

    def names(self) -> list[str]:
        """The models that have a lane now."""
        with self._lock:
            return sorted(self._lanes)

    def _lane(self, model: str, refused: Refusal | None) -> ForecastRunner:
        with self._lock:
            if self._closed:
                raise NotReady("the service is stopping; retry shortly")
            # checked under the lock that ``retire`` pops under: a model deleted after its route found it is
            # refused here, or its lane is made before ``retire`` and popped by it (a review, session 57: a lane
            # made after ``retire`` had a thread nothing ended)
            why = None if refused is None else refused()
            if why is not None:
                raise NotFound(why)
            lane = self._lanes.get(model)
            if lane is None:
                lane = self._lanes[model] = ForecastRunner(self.max_drain, name=f"forecasts {model}")
                lane.start()
            return lane

    async def forecast(
        self,
        model: str,
        view: ForecasterView,
        series: str,
        horizon: int,
        level: float | None = None,
        refused: Refusal | None = None,
    ) -> Forecast:
        """``view.forecast(series, horizon, level)`` on ``model``'s lane (``ForecastRunner.forecast``);
        404 with ``refused()``'s reason where it gives one (the model's: ``ModelWorker.refused``)."""
        return await self._lane(model, refused).forecast(view, series, horizon, level)

    async def forecast_many(
        self, model: str, view: ForecasterView, requests: list[ForecastRequest], refused: Refusal | None = None
    ) -> list[Forecast | ValueError]:
        """``view.forecast_many(requests)`` on ``model``'s lane, as one computation (a page of forecasts)."""
        return await self._lane(model, refused).run(view.forecast_many, requests)

    def retire(self, model: str) -> None:
        """Stop ``model``'s lane, if it has one: a deleted model's (a model made again under the name gets
        a new lane). Returns at once; the forecasts already asked of it are answered, then its thread ends
        (it waited for them, and a DELETE took 2.7 s behind forecasts of 1.5 s: a review's)."""
        with self._lock:
            lane = self._lanes.pop(model, None)
            if lane is not None:
                self._retired = [old for old in self._retired if old.running()] + [lane]
        if lane is not None:
            lane.stop(wait=False)

    def stop(self) -> None:
        """Refuse new forecasts (503), answer those queued, end every lane's thread, the retired ones'
        too (idempotent)."""
        with self._lock:
            self._closed = True
            lanes, self._lanes = [*self._lanes.values(), *self._retired], {}
            self._retired = []
        for lane in lanes:
            lane.stop()
