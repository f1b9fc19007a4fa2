"""What the library hands back: plain, immutable records (no tensors, JSON-ready).

Values follow the input convention (see ``values.format_row``): a float when the
model has one feature, a list of floats otherwise, ``None`` where missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Row = Any  # float | None | list[float | None]


@dataclass(frozen=True)
class Prediction:
    """A one-step forecast with its central interval at ``level``."""

    mean: Row
    lower: Row
    upper: Row


@dataclass(frozen=True)
class StepResult:
    """The outcome of observing one value of one series."""

    series: str
    step: int  # this series' step count t after the value
    value: Row  # as received (None where missing)
    forecast_made: Prediction  # what had been forecast for this value, before it arrived
    forecast_next: Prediction  # the new one-step forecast, made after any update
    updated: bool  # whether an update of the weights ran at this step
    update_count: int  # the model's updates so far, after this step


@dataclass(frozen=True)
class Forecast:
    """A multi-step forecast: ``mean``, ``lower`` and ``upper`` have one entry per step."""

    series: str
    horizon: int
    level: float
    mean: list[Row]
    lower: list[Row]
    upper: list[Row]
    step: int  # the series' step count the forecast was made from
    update_count: int  # the model's update counter the forecast was made from


@dataclass(frozen=True)
class SeriesStats:
    """Prequential accuracy of one series (None until something was scored)."""

    series: str
    count: int
    mae: float | None
    rmse: float | None
    naive_mae: float | None
    naive_rmse: float | None
    coverage: float | None
    interval_level: float


@dataclass(frozen=True)
class UpdateRecord:
    """One update of the weights: its loss, gradient norm (before clipping) and fate."""

    index: int  # 1-based count of update attempts
    loss: float
    grad_norm: float
    n_windows: int
    skipped: bool  # a non-finite loss, gradient or result: the weights were left as they were


@dataclass(frozen=True)
class UpdateStats:
    """Counters over all updates of a model."""

    updates: int
    skipped: int
    last_loss: float | None
    last_grad_norm: float | None
