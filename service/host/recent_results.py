"""RecentResults: the last few observations of each series with the forecast made for each.

The dashboard draws them: each value next to the one-step forecast (and interval)
that the model had served for it before it arrived. A model's worker records every
applied batch here (``record``, on the worker thread) and forgets a deleted series;
routes read it from the event loop (``read``). One short lock guards the rings: a
reader copies at most ``capacity`` rows and never waits for a forward step or an
update, only for another copy. Nothing here is durable: after a restart the rings
refill from the journal's recovery (which goes through the same ``apply``).

Each series' ring is one ``array('d')`` of rows (step, timestamp, value, forecast
mean, lower, upper, then a flag: 1.0 where the value was an outlier, 2.0 where it was held
back as a stuck value's repeat, 0.0 otherwise; NaN where a timestamp or a value is absent),
not a Python object
per value: with 10,000 series the rings hold millions of values, and a garbage
collector pass that visited each of them took 50 ms and more, several times a
second, on every thread's time.

>>> from tbptt_service.storage.observation import Observation
>>> from tbptt_online import Forecaster, ForecasterConfig
>>> f = Forecaster(ForecasterConfig(hidden_size=4))
>>> obs = [Observation("a", 1.0, 60.0), Observation("a", 2.0, 120.0), Observation("a", 3.0, 180.0)]
>>> recent = RecentResults(capacity=2)
>>> recent.record(obs, f.observe_many([(o.series, o.value) for o in obs]))
>>> [(p.step, p.timestamp, p.value, p.outlier) for p in recent.read("a", limit=10)]
[(2, 120.0, 2.0, False), (3, 180.0, 3.0, False)]
>>> again = RecentResults.restored(recent.saved(), capacity=2)
>>> again.read("a", limit=10) == recent.read("a", limit=10)
True
>>> recent.forget("a"); recent.read("a", limit=10), recent.saved()
([], None)
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any

from tbptt_online import StepResult
from tbptt_online.results import Prediction, StepResults, TickLists
from tbptt_service.storage.observation import Observation

DEFAULT_CAPACITY = 500
_NAN = math.nan
OUTLIER, HELD = 1.0, 2.0  # a row's flag (0.0: neither; a held value is taken as missing, so never an outlier)


@dataclass(frozen=True)
class SavedRings:
    """The rings as a checkpoint keeps them: each series' rows oldest first, the series one after
    another (``counts[i]`` rows of ``series[i]``), every row ``3 + 4 * features`` floats."""

    features: int
    series: tuple[str, ...]
    counts: tuple[int, ...]
    rows: array  # array('d'): sum(counts) rows, one after another

    @property
    def width(self) -> int:
        return _width(self.features)


@dataclass(frozen=True)
class RecentPoint:
    step: int
    timestamp: float | None
    value: Any  # as the library formats it: float, list, or None (missing)
    forecast_made: Prediction  # served for this value before it arrived
    outlier: bool = False  # the model learned from the value at its interval's bound (StepResult.outlier)
    held: bool = False  # a stuck value's repeat, held back as missing (StepResult.held)


class _Ring:
    """One series' last values: up to ``capacity`` rows of floats, the oldest at row ``start``."""

    __slots__ = ("count", "rows", "start")

    def __init__(self) -> None:
        self.rows = array("d")
        self.start = 0
        self.count = 0


class RecentResults:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity={capacity!r} is invalid: must be an integer >= 1")
        self.capacity = capacity
        self._rings: dict[str, _Ring] = {}
        self._features: int | None = None  # values per observation (the model's n_features), from the first batch
        self._lock = threading.Lock()

    def record(self, observations: Sequence[Observation], results: Sequence[StepResult]) -> None:
        """Append one applied batch (``results[i]`` is the result of ``observations[i]``)."""
        if len(observations) != len(results):
            raise ValueError(f"{len(observations)} observations but {len(results)} results")
        if not results:
            return
        features = _features_of(results)
        if self._features is None:
            self._features = features
        elif features != self._features:
            raise ValueError(f"results with {features} feature(s), expected {self._features}")
        rows = _rows(observations, results, features)
        width, capacity = _width(features), self.capacity
        with self._lock:
            rings = self._rings
            for series, row in rows:
                ring = rings.get(series)
                if ring is None:
                    ring = rings[series] = _Ring()
                if ring.count < capacity:
                    ring.rows.extend(row)
                    ring.count += 1
                else:  # full: the new row replaces the oldest
                    at = ring.start * width
                    ring.rows[at : at + width] = array("d", row)
                    ring.start = (ring.start + 1) % capacity

    def forget(self, series: str) -> None:
        with self._lock:
            self._rings.pop(series, None)

    def saved(self) -> SavedRings | None:
        """A copy of every ring, oldest row first (None: none holds a row), made under the lock
        in one array (one copy of the rings' floats: a checkpoint of 10,000 full rings holds 280 MB
        more while it is written, not twice that)."""
        rows = array("d")
        with self._lock:
            if self._features is None or not self._rings:
                return None
            width = _width(self._features)
            for ring in self._rings.values():
                at = ring.start * width
                rows.extend(ring.rows[at:])  # from the oldest row to the ring's end ...
                rows.extend(ring.rows[:at])  # ... then its start, up to the newest
            series, counts = tuple(self._rings), tuple(ring.count for ring in self._rings.values())
            return SavedRings(self._features, series, counts, rows)

    @classmethod
    def restored(cls, saved: SavedRings | None, capacity: int = DEFAULT_CAPACITY) -> RecentResults:
        """Rings holding ``saved`` (none: empty), each series' last ``capacity`` rows of it."""
        recent = cls(capacity)
        if saved is None:
            return recent
        recent._features, width, at = saved.features, saved.width, 0
        for series, count in zip(saved.series, saved.counts, strict=True):
            ring = recent._rings[series] = _Ring()
            kept = min(count, capacity)
            ring.rows = saved.rows[(at + count - kept) * width : (at + count) * width]  # a copy
            ring.count = kept
            at += count
        return recent

    def read(self, series: str, limit: int) -> list[RecentPoint]:
        """The last ``limit`` points of ``series``, oldest first ([] for an unknown series)."""
        with self._lock:
            ring = self._rings.get(series)
            if ring is None or self._features is None:
                return []
            d = self._features
            width = _width(d)
            at = ring.start * width
            ordered = ring.rows[at:] + ring.rows[:at]  # a copy, oldest first
        n = min(max(limit, 0), len(ordered) // width)
        points = []
        for offset in range(len(ordered) - n * width, len(ordered), width):
            row = ordered[offset : offset + width]
            timestamp = row[1]
            if d == 1:
                value, *made_parts = (None if math.isnan(x) else x for x in row[2:6])
                made = Prediction(*made_parts)  # None: no forecast was made (a series' first value)
            else:
                value = [None if math.isnan(x) else x for x in row[2 : 2 + d]]
                parts = [[None if math.isnan(x) else x for x in row[2 + k * d : 2 + (k + 1) * d]] for k in (1, 2, 3)]
                made = Prediction(*parts)
            stamp = None if math.isnan(timestamp) else timestamp
            flag = row[width - 1]
            points.append(RecentPoint(int(row[0]), stamp, value, made, flag == OUTLIER, flag == HELD))
        return points


def recent_bytes_per_series(d: int, capacity: int = DEFAULT_CAPACITY) -> int:
    """The most bytes a series' ring holds: ``capacity`` rows of ``_width(d)`` floats (a
    model's memory budget counts them, ``MemoryBudget.footprint``).

    >>> recent_bytes_per_series(1), recent_bytes_per_series(1024)
    (28000, 16396000)
    """
    return capacity * _width(d) * 8


def _width(d: int) -> int:
    """A row's floats: step, timestamp, value, mean, lower, upper (d each but the first two), the flag."""
    return 3 + 4 * d


def _features_of(results: Sequence[StepResult]) -> int:
    lists = results.ticks[0].lists() if isinstance(results, StepResults) else None
    mean = lists.made_mean[0] if lists is not None else results[0].forecast_made.mean
    return len(mean) if isinstance(mean, list) else 1


def _rows(observations: Sequence[Observation], results: Sequence[StepResult], d: int) -> Iterable[tuple[str, Any]]:
    """(series, row of floats) per observation, each series' in its order. From a batch's
    ``StepResults``: straight from each tick's lists (a series' k-th value is in tick k),
    no ``StepResult`` built."""
    if not isinstance(results, StepResults):
        return [
            (
                obs.series,
                _row(r.step, obs.timestamp, r.value, *_prediction(r.forecast_made), _flag(r.outlier, r.held), d),
            )
            for obs, r in zip(observations, results, strict=True)
        ]
    stamps: dict[int, list[float]] = {}  # id(tick) -> its rows' timestamps (NaN: none), when any was given
    for i, obs in enumerate(observations):
        if obs.timestamp is not None:
            tick, row = results.locate(i)
            stamps.setdefault(id(tick), [_NAN] * len(tick.names))[row] = obs.timestamp
    ticks = ((tick, tick.lists()) for tick in results.ticks)
    if d != 1:
        return chain.from_iterable(
            (
                (series, _row(step, timestamp, value, mean, lower, upper, flag, d))
                for series, step, timestamp, value, mean, lower, upper, flag in zip(
                    c.names,
                    c.steps,
                    stamps.get(id(tick)) or repeat(None),
                    c.values,
                    c.made_mean,
                    c.made_lower,
                    c.made_upper,
                    _flags(c),
                    strict=False,  # repeat(None) is endless; the lists are one tick's rows each
                )
            )
            for tick, c in ticks
        )
    return chain.from_iterable(
        zip(
            c.names,
            zip(
                c.steps,
                stamps.get(id(tick)) or repeat(_NAN),
                [_NAN if v is None else v for v in c.values],
                *(_floats(column) for column in (c.made_mean, c.made_lower, c.made_upper)),
                _flags(c),  # bools (the array stores 1.0 / 0.0), or floats where a value was held
                strict=False,  # repeat(_NAN) is endless; the lists are one tick's rows each
            ),
            strict=True,
        )
        for tick, c in ticks
    )


def _flag(outlier: bool, held: bool) -> float:
    return HELD if held else float(outlier)


def _flags(c: TickLists) -> list:
    """A tick's flags: its outlier column (bools), or floats where a value was held."""
    if not any(c.held):
        return c.outlier
    return list(map(_flag, c.outlier, c.held))


def _floats(column: list) -> list:
    """A d = 1 column with None (no forecast: a hybrid series' first value) as NaN."""
    return [_NAN if x is None else x for x in column] if None in column else column


def _prediction(p: Prediction) -> tuple[Any, Any, Any]:
    return p.mean, p.lower, p.upper


def _row(
    step: int, timestamp: float | None, value: Any, mean: Any, lower: Any, upper: Any, flag: float, d: int
) -> tuple:
    """One observation as floats: step, timestamp, then value, mean, lower, upper (d each; NaN:
    none), then the flag (``OUTLIER``, ``HELD`` or 0.0)."""
    stamp, flag = _NAN if timestamp is None else timestamp, float(flag)
    if d == 1:
        return (step, stamp, *(_NAN if x is None else x for x in (value, mean, lower, upper)), flag)
    values = [_NAN] * d if value is None else [_NAN if x is None else x for x in value]
    made = [_NAN if x is None else x for part in (mean, lower, upper) for x in part]
    return (step, stamp, *values, *made, flag)
