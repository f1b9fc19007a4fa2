"""Typed results of the client: frozen dataclasses built from the service's JSON.

Values follow the service's convention: a float for a model with one feature, a
list of floats for several, ``None`` where missing. Unknown JSON fields are
ignored, so a newer server does not break an older client.

>>> r = ObservationResult.from_json({"series": "cpu", "step": 3, "timestamp": 1700000060.0, "value": 0.5,
...     "forecast_made": {"mean": 0.4, "lower": 0.1, "upper": 0.7},
...     "forecast_next": {"mean": 0.5, "lower": 0.2, "upper": 0.8}, "updated": False, "update_count": 7})
>>> r.step, r.forecast_made.mean, r.forecast_made.contains(r.value), r.outlier  # no "outlier" (an older server)
(3, 0.4, True, False)
>>> spike = {"series": "cpu", "step": 4, "value": 90.0, "forecast_made": {"mean": 0.5, "lower": 0.2, "upper": 0.8},
...     "forecast_next": {"mean": 0.6, "lower": 0.3, "upper": 0.9}, "update_count": 7, "outlier": True}
>>> ObservationResult.from_json(spike).outlier  # far outside: learned from at the interval's bound
True
>>> ObservationResult.from_json({**spike, "value": 0.6, "outlier": False, "held": True}).held  # a stuck repeat
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

Row = Any  # float | None | list[float | None]


@dataclass(frozen=True)
class Interval:
    """A forecast's mean with its central interval ``[lower, upper]``."""

    mean: Row
    lower: Row
    upper: Row

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Interval:
        return cls(data["mean"], data["lower"], data["upper"])

    def contains(self, value: Row) -> bool | None:
        """Whether a one-feature ``value`` lies inside the interval (None if either is missing)."""
        if value is None or self.lower is None or self.upper is None or isinstance(value, list):
            return None
        return self.lower <= value <= self.upper


@dataclass(frozen=True)
class ObservationResult:
    """What the service answered for one observation."""

    series: str
    step: int  # the series' step count after this value
    timestamp: float | None  # unix seconds, as the server stored it
    value: Row
    forecast_made: Interval  # the one-step forecast that had been made for this value
    forecast_next: Interval  # the new one-step forecast, made after it
    updated: bool  # whether an update of the weights ran at this step
    update_count: int  # the model's updates so far
    outlier: bool = False  # far outside its interval: the model learned from it at the interval's bound
    held: bool = False  # a stuck value's repeat, held back as missing: neither learned from nor scored

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ObservationResult:
        return cls(
            series=data["series"],
            step=data["step"],
            timestamp=data.get("timestamp"),
            value=data.get("value"),
            forecast_made=Interval.from_json(data["forecast_made"]),
            forecast_next=Interval.from_json(data["forecast_next"]),
            updated=bool(data.get("updated", False)),
            update_count=data["update_count"],
            outlier=bool(data.get("outlier", False)),
            held=bool(data.get("held", False)),
        )


@dataclass(frozen=True)
class ForecastStep:
    step: int  # 1 = the next value
    mean: Row
    lower: Row
    upper: Row
    timestamp: float | None = None  # when it is due (the series' cadence known), else None


@dataclass(frozen=True)
class Forecast:
    """A multi-step forecast with its interval at ``level``."""

    model: str
    series: str
    horizon: int
    level: float
    step: int  # the series' step count the forecast was made from
    update_count: int  # the model's update counter the forecast was made from
    steps: list[ForecastStep]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Forecast:
        steps = [
            ForecastStep(s["step"], s["mean"], s["lower"], s["upper"], s.get("timestamp")) for s in data["forecast"]
        ]
        fields = ("model", "series", "horizon", "level", "step", "update_count")
        return cls(steps=steps, **{name: data[name] for name in fields})

    @property
    def mean(self) -> list[Row]:
        return [s.mean for s in self.steps]

    @property
    def lower(self) -> list[Row]:
        return [s.lower for s in self.steps]

    @property
    def upper(self) -> list[Row]:
        return [s.upper for s in self.steps]


@dataclass(frozen=True)
class UpdateStats:
    """Counters over a model's weight updates."""

    updates: int
    skipped: int
    last_loss: float | None
    last_grad_norm: float | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UpdateStats:
        return cls(data["updates"], data["skipped"], data.get("last_loss"), data.get("last_grad_norm"))


@dataclass(frozen=True)
class ModelInfo:
    name: str
    config: dict[str, Any]
    series_count: int
    observations: int
    updates: UpdateStats

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelInfo:
        updates = UpdateStats.from_json(data["updates"])
        return cls(data["name"], dict(data["config"]), data["series_count"], data["observations"], updates)


@dataclass(frozen=True)
class SeriesStats:
    """Prequential accuracy of one series: the model's one-step errors against the naive
    last-value forecast's, and how often values fell inside the served interval."""

    series: str
    count: int
    last_timestamp: float | None
    mae: float | None
    rmse: float | None
    naive_mae: float | None
    naive_rmse: float | None
    coverage: float | None
    interval_level: float
    seasons: tuple[int, ...] = ()  # the season lengths in use
    multiplicative: bool | None = None  # the log members on (every value so far > 0, an outlier as taken)
    never_negative: bool | None = None  # every value so far >= 0: no forecast or lower bound served below 0
    members: tuple[MemberStats, ...] = ()  # (name, one-step MAE, weight) per member
    outliers: int | None = None  # values learned from at their interval's bound (a spike each)
    cadence: float | None = None  # seconds between timestamped values, once known (gaps are filled)
    restarts: int = 0  # times its model state started again: its forecast blown up, or its first value a glitch
    coverage_by_horizon: tuple[HorizonCoverage, ...] = ()  # (horizon, coverage, scored, recent) per horizon
    recent_mae: float | None = None  # the MAE over about the last 100 values (weighed 0.99 each further back)
    recent_naive_mae: float | None = None  # the naive forecast's over the same
    flat_run: int = 0  # the values in a row now equal to the one before (any feature's longest; 0 makes none)
    held: int = 0  # the values held back as missing so far: a stuck value's repeats (all features)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SeriesStats:
        optional = ("last_timestamp", "mae", "rmse", "naive_mae", "naive_rmse", "coverage")
        optional += ("multiplicative", "never_negative", "outliers", "cadence", "recent_mae", "recent_naive_mae")
        return cls(
            series=data["series"],
            count=data["count"],
            interval_level=data["interval_level"],
            seasons=tuple(data.get("seasons") or ()),
            members=tuple(MemberStats(m["name"], m.get("mae"), m["weight"]) for m in data.get("members") or ()),
            restarts=int(data.get("restarts") or 0),
            flat_run=int(data.get("flat_run") or 0),
            held=int(data.get("held") or 0),
            coverage_by_horizon=tuple(
                HorizonCoverage(c["horizon"], c.get("coverage"), c["scored"], c.get("recent"))
                for c in data.get("coverage_by_horizon") or ()
            ),
            **{name: data.get(name) for name in optional},
        )

    @property
    def relative_mae(self) -> float | None:
        """MAE over the naive MAE: below 1 means the model beats "same as last value"."""
        if self.mae is None or not self.naive_mae:
            return None
        return self.mae / self.naive_mae

    @property
    def recent_relative_mae(self) -> float | None:
        """``relative_mae`` over about the last 100 values: how the model does now (a level shift or a meter
        replaced long ago weighs on ``relative_mae`` for good)."""
        if self.recent_mae is None or not self.recent_naive_mae:
            return None
        return self.recent_mae / self.recent_naive_mae


class MemberStats(NamedTuple):
    """One member of the hybrid's combination, as the library's ``MemberStats``: its one-step MAE so far and
    its weight now (a tuple too, as the client's members were until session 50: ``name, mae, weight = m``;
    a new user's ``stats.members[0].name`` raised ``AttributeError`` with the client, not with the library)."""

    name: str
    mae: float | None
    weight: float


class HorizonCoverage(NamedTuple):
    """The interval's coverage at one horizon, as the library's ``HorizonCoverage``: of the ``scored`` forecasts
    made that many steps before their value (with a width of the horizon's own), the share whose value fell
    within it (None: none scored yet), over the whole life and over about the last 100 (``recent``)."""

    horizon: int
    coverage: float | None
    scored: int
    recent: float | None


@dataclass(frozen=True)
class SeriesPage:
    """One page of a model's series names; ``next_offset`` and ``next_after`` are None on the
    last page."""

    series: list[str]
    total: int
    next_offset: int | None
    next_after: str | None = None  # the page's last name when more follow: the next page's ``after``

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SeriesPage:
        return cls(
            [_series_name(s) for s in data["series"]], data["total"], data.get("next_offset"), data.get("next_after")
        )


@dataclass(frozen=True)
class SeriesStatsPage:
    """One page of a model's series statistics, in sorted order; ``next_offset`` and ``next_after`` are None on the
    last page."""

    series: list[SeriesStats]
    total: int
    next_offset: int | None
    next_after: str | None = None  # the page's last name when more follow: the next page's ``after``

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SeriesStatsPage:
        return cls(
            [SeriesStats.from_json(s) for s in data["series"]],
            data["total"],
            data.get("next_offset"),
            data.get("next_after"),
        )


@dataclass(frozen=True)
class ForecastPage:
    """One page of a model's forecasts, in its series' sorted order; ``next_offset`` and ``next_after`` are None on the
    last page."""

    forecasts: list[Forecast]
    total: int
    next_offset: int | None
    next_after: str | None = None  # the page's last name when more follow: the next page's ``after``

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ForecastPage:
        return cls(
            [Forecast.from_json(f) for f in data["forecasts"]],
            data["total"],
            data.get("next_offset"),
            data.get("next_after"),
        )


def _series_name(item: Any) -> str:
    return item["series"] if isinstance(item, dict) else item
