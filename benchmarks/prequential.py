"""Prequential (forecast, then learn) scoring of a forecaster over one series.

Before value ``t`` (0-based) arrives, the model has learnt ``y[0..t-1]``; it forecasts
``horizon`` steps, ``F[h-1]`` being its forecast of ``y[t-1+h]``. Then it learns ``y[t]``.
Nothing is scored during the warm-up (the first ``warmup`` values).

- one step: ``F[0]`` against ``y[t]``, for every ``t >= warmup``
- horizons 1..H: ``F[h-1]`` against ``y[t+h-1]``, for the origins ``t >= warmup`` whose
  H values all exist (``t + H <= n``), so that every horizon is averaged over the same
  origins; the reported figure is the MAE averaged over h = 1..H.
- coverage at horizon h (when a ``level`` is asked of a model that gives intervals): over
  those same origins, the fraction of targets ``y[t+h-1]`` inside ``[lower[h-1], upper[h-1]]``
  (bounds included) of the interval forecast made at origin ``t``, i.e. h steps before.

The alignment, checked by hand: on ``y = 0, 1, 2, ...`` the last-value forecast is off by
exactly ``h`` at horizon ``h`` (one step MAE 1, mean over h = 1..12 of h = 6.5).

>>> evaluate(LastValue(), [float(v) for v in range(30)], warmup=3, horizon=4)["horizon_mae"]
[1.0, 2.0, 3.0, 4.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol


class OnlineForecaster(Protocol):
    """river's streaming contract: ``learn_one`` changes the model, ``forecast`` does not."""

    def learn_one(self, y: float) -> None: ...

    def forecast(self, horizon: int) -> list[float]: ...


class IntervalForecaster(OnlineForecaster, Protocol):
    """A forecaster that also gives central intervals: ``(mean, lower, upper)``, one entry per step."""

    def forecast_interval(self, horizon: int, level: float) -> tuple[list[float], list[float], list[float]]: ...


class LastValue:
    """Forecasts the last value seen at every horizon."""

    def __init__(self) -> None:
        self.last: float | None = None

    def learn_one(self, y: float) -> None:
        self.last = y

    def forecast(self, horizon: int) -> list[float]:
        if self.last is None:
            raise ValueError("LastValue has seen no value yet")
        return [self.last] * horizon


def evaluate(
    model: OnlineForecaster,
    values: list[float],
    warmup: int,
    horizon: int,
    level: float | None = None,
    coverage_horizons: Sequence[int] = (),
) -> dict[str, Any]:
    """Score ``model`` on ``values`` (see the module docstring for the alignment).

    With ``level``, ``model`` must be an :class:`IntervalForecaster`: it is asked for
    ``forecast_interval(horizon, level)`` instead of ``forecast(horizon)`` and the result
    has ``coverage``, one fraction per entry of ``coverage_horizons``.
    """
    n = len(values)
    if not 0 < warmup < n:
        raise ValueError(f"warmup={warmup} is invalid: must be in [1, {n - 1}] for {n} values")
    if level is not None and not all(1 <= h <= horizon for h in coverage_horizons):
        raise ValueError(f"coverage_horizons={list(coverage_horizons)} is invalid: each must be in [1, {horizon}]")
    abs_one, sq_one = 0.0, 0.0
    abs_h = [0.0] * horizon
    inside = [0] * len(coverage_horizons)
    origins = 0
    for t, y in enumerate(values):
        if t >= warmup:
            if level is None:
                forecast = [float(v) for v in model.forecast(horizon)]  # F[h-1] is the forecast of values[t-1+h]
                lower = upper = forecast
            else:
                mean, low, high = model.forecast_interval(horizon, level)  # type: ignore[attr-defined]
                forecast, lower, upper = [float(v) for v in mean], [float(v) for v in low], [float(v) for v in high]
            error = y - forecast[0]
            abs_one += abs(error)
            sq_one += error * error
            if t + horizon <= n:
                origins += 1
                for h in range(1, horizon + 1):
                    abs_h[h - 1] += abs(values[t + h - 1] - forecast[h - 1])
                for i, h in enumerate(coverage_horizons):
                    inside[i] += lower[h - 1] <= values[t + h - 1] <= upper[h - 1]
        model.learn_one(y)
    scored = n - warmup
    per_horizon = [s / origins for s in abs_h] if origins else []
    return {
        "one_step_mae": abs_one / scored,
        "one_step_rmse": math.sqrt(sq_one / scored),
        "one_step_count": scored,
        "horizon_mae": per_horizon,
        "mean_horizon_mae": sum(per_horizon) / len(per_horizon) if per_horizon else None,
        "horizon_origins": origins,
        "coverage": [k / origins for k in inside] if level is not None and origins else None,
    }
