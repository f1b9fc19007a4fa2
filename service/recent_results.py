"""RecentResults: the last few observations of each series with the forecast made for each.

The dashboard draws them: each value next to the one-step forecast (and interval)
that the model had served for it before it arrived. A model's worker records every
applied batch here (``record``, on the worker thread) and forgets a deleted series;
routes read it from the event loop (``read``). One short lock guards the rings: a
reader copies at most ``capacity`` small tuples and never waits for a forward step
or an update, only for another copy. Nothing here is durable: after a restart the
rings refill from the journal replay (which goes through the same ``apply``).

>>> from service.observation import Observation
>>> from tbptt_online import Forecaster, ForecasterConfig
>>> f = Forecaster(ForecasterConfig(hidden_size=4))
>>> obs = [Observation("a", 1.0, 60.0), Observation("a", 2.0, 120.0), Observation("a", 3.0, 180.0)]
>>> recent = RecentResults(capacity=2)
>>> recent.record(obs, f.observe_many([(o.series, o.value) for o in obs]))
>>> [(p.step, p.timestamp, p.value) for p in recent.read("a", limit=10)]
[(2, 120.0, 2.0), (3, 180.0, 3.0)]
>>> recent.forget("a"); recent.read("a", limit=10)
[]
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, islice, repeat
from typing import Any

from service.observation import Observation
from tbptt_online import StepResult
from tbptt_online.results import Prediction, StepResults

DEFAULT_CAPACITY = 500


@dataclass(frozen=True)
class RecentPoint:
    step: int
    timestamp: float | None
    value: Any  # as the library formats it: float, list, or None (missing)
    forecast_made: Prediction  # served for this value before it arrived


class RecentResults:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity={capacity!r} is invalid: must be an integer >= 1")
        self.capacity = capacity
        # Per series, its last values as plain tuples (step, timestamp, value, mean, lower, upper):
        # cheap to record for every observation; RecentPoints are built only for what is read.
        self._rings: dict[str, deque[tuple[Any, ...]]] = {}
        self._lock = threading.Lock()

    def record(self, observations: Sequence[Observation], results: Sequence[StepResult]) -> None:
        """Append one applied batch (``results[i]`` is the result of ``observations[i]``)."""
        if len(observations) != len(results):
            raise ValueError(f"{len(observations)} observations but {len(results)} results")
        points = _points(observations, results)
        with self._lock:
            rings, capacity = self._rings, self.capacity
            for series, point in points:
                ring = rings.get(series)
                if ring is None:
                    ring = rings[series] = deque(maxlen=capacity)
                ring.append(point)

    def forget(self, series: str) -> None:
        with self._lock:
            self._rings.pop(series, None)

    def read(self, series: str, limit: int) -> list[RecentPoint]:
        """The last ``limit`` points of ``series``, oldest first ([] for an unknown series)."""
        with self._lock:
            ring = self._rings.get(series)
            if ring is None:
                return []
            rows = list(islice(ring, max(len(ring) - limit, 0), None))
        return [
            RecentPoint(step, timestamp, value, Prediction(mean, lower, upper))
            for step, timestamp, value, mean, lower, upper in rows
        ]


def _points(observations: Sequence[Observation], results: Sequence[StepResult]) -> Iterable[tuple[str, tuple]]:
    """(series, point tuple) per observation, each series' in its order. From a batch's
    ``StepResults``: straight from each tick's lists (a series' k-th value is in tick k),
    no ``StepResult`` built."""
    if not isinstance(results, StepResults):
        made = [r.forecast_made for r in results]
        return [
            (obs.series, (r.step, obs.timestamp, r.value, m.mean, m.lower, m.upper))
            for obs, r, m in zip(observations, results, made, strict=True)
        ]
    stamps: dict[int, list[float | None]] = {}  # id(tick) -> its rows' timestamps, when any was given
    for i, obs in enumerate(observations):
        if obs.timestamp is not None:
            tick, row = results.locate(i)
            stamps.setdefault(id(tick), [None] * len(tick.names))[row] = obs.timestamp
    return chain.from_iterable(
        zip(
            c.names,
            zip(
                c.steps,
                stamps.get(id(tick)) or repeat(None),
                c.values,
                c.made_mean,
                c.made_lower,
                c.made_upper,
                strict=False,  # repeat(None) is endless; the lists are one tick's rows each
            ),
            strict=True,
        )
        for tick, c in ((tick, tick.lists()) for tick in results.ticks)
    )
