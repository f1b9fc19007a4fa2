"""What the library hands back: plain, immutable records (no tensors, JSON-ready).

Values follow the input convention (see ``values.format_row``): a float when the
model has one feature, a list of floats otherwise, ``None`` where missing. A forecast's
``lower`` and ``upper`` are ``None`` while its series has no interval yet (the hybrid: one
value seen, so no scale), and its ``mean`` too while nothing has been observed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, overload

import numpy as np
import torch

from tbptt_online.values import format_row

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
    updated: bool  # an update ran at this step (a non-finite one is skipped: see UpdateStats.skipped)
    update_count: int  # the model's updates so far, after this step
    outlier: bool = False  # far outside its interval: learned from clipped, or flagged past its bound (outliers.py)
    held: bool = False  # a stuck value's repeat, held back as missing: neither learned from nor scored (flat_runs.py)


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
class MemberStats:
    """One member of the hybrid's combination: its one-step MAE so far and its weight now."""

    name: str
    mae: float | None
    weight: float


@dataclass(frozen=True)
class HorizonCoverage:
    """The coverage of a series' interval at the tracked level at one horizon: of the ``scored`` forecasts made
    that many steps before their value with a width of that horizon's own (its first ones, served a shorter
    horizon's, are not counted), the share whose value fell within it (None: none scored yet), over the whole
    life and over about the last 100 (``recent``: each earlier one weighs ``hybrid_kernels.RECENT_COVERAGE``
    times the next)."""

    horizon: int
    coverage: float | None
    scored: int
    recent: float | None


@dataclass(frozen=True)
class SeriesStats:
    """Prequential accuracy of one series (None until something was scored). With the hybrid:
    the season lengths in use (first feature; [] = none), whether the log (multiplicative)
    members are on, whether every value so far was >= 0 (nothing served below 0), each
    member's one-step MAE and weight (these four: the first feature's), how many values
    were flagged outliers (``outliers.py``; all features), and the coverage at each horizon 1 ..
    ``calibrated_horizon`` and at the far horizons (``calibration.far_horizons``; all features,
    over the series' whole life, its restarts included, as ``coverage`` is)."""

    series: str
    count: int
    mae: float | None
    rmse: float | None
    naive_mae: float | None
    naive_rmse: float | None
    coverage: float | None
    interval_level: float
    seasons: list[int] = field(default_factory=list)
    multiplicative: bool | None = None
    never_negative: bool | None = None
    members: list[MemberStats] = field(default_factory=list)
    outliers: int | None = None
    restarts: int = 0  # times its state was restarted: its forecast blown up, or its first value a glitch (forecaster)
    coverage_by_horizon: list[HorizonCoverage] = field(default_factory=list)
    # the MAE and the naive's over about the last 100 values (each earlier one weighs ``scoring.RECENT`` times the
    # next; of the values scored against both)
    recent_mae: float | None = None
    recent_naive_mae: float | None = None
    # the values in a row equal to the one before, now (any feature's longest), and the values held back as missing
    # as a stuck value's repeats so far (all features; ``flat_runs.hold_flat_runs``)
    flat_run: int = 0
    held: int = 0


@dataclass(frozen=True)
class UpdateRecord:
    """One update of the weights: its loss, gradient norm (before clipping) and fate."""

    index: int  # 1-based count of update attempts
    loss: float
    grad_norm: float
    n_windows: int
    skipped: bool  # a non-finite loss, gradient or result: the weights were left as they were
    window: int = 0  # K_t: the length of the replayed windows (k2, or the adaptive choice)


@dataclass(frozen=True)
class UpdateStats:
    """Counters over all updates of a model."""

    updates: int
    skipped: int
    last_loss: float | None
    last_grad_norm: float | None
    last_window: int | None = None  # K_t of the last update
    lr: float | None = None  # the learning rate in force (the guards may have backed it off)
    explosions: int = 0  # gradients clipped harder (far above their running median)
    divergences: int = 0  # loss trends up: rolled back
    blowups: int = 0  # forecasts beyond a sane multiple of the targets: rolled back
    rollbacks: int = 0  # weights restored to the last good copy (divergences + blow-ups)


class TickLists(NamedTuple):
    """One tick's results as plain lists (row ``i`` is one series), JSON-ready: what a
    caller that turns many results into its own records reads instead of ``StepResult`` s."""

    names: list[str]
    steps: list[int]
    updated: list[bool]
    values: list[Row]  # as received, NaN -> None (format_row)
    made_mean: list[Row]  # forecast_made: what had been forecast for the value
    made_lower: list[Row]
    made_upper: list[Row]
    next_mean: list[Row]  # forecast_next: the new one-step forecast
    next_lower: list[Row]
    next_upper: list[Row]
    update_count: int
    outlier: list[bool]  # far outside its interval: learned from clipped, or flagged past its bound (outliers.py)
    held: list[bool]  # a stuck value's repeat, held back as missing (flat_runs.py)


class TickColumns:
    """The results of one tick as columns (tensors), turned into lists on first read."""

    def __init__(
        self,
        names: list[str],
        steps: torch.Tensor,
        updated: torch.Tensor,
        update_count: int,
        columns: tuple[torch.Tensor, ...],
        outlier: torch.Tensor | None = None,
        held: torch.Tensor | None = None,
    ) -> None:
        self.names = names
        self._tensors = (steps, updated, *columns)  # columns: value, made (mean, lower, upper), next (x3)
        self._outlier = outlier  # [B] bool, None: none was
        self._held = held  # [B] bool, None: none was
        self._lists: TickLists | None = None
        self.update_count = update_count

    def lists(self) -> TickLists:
        """The columns as lists, built once (one C-level ``tolist`` per column)."""
        if self._lists is None:
            steps, updated = self._tensors[0].tolist(), self._tensors[1].tolist()
            # [7, B, d]: value, made and next (mean, lower, upper) (numpy: a tick's few rows, no torch overhead)
            floats = np.stack([column.numpy() for column in self._tensors[2:]])
            value, *preds = (floats[:, :, 0] if floats.shape[2] == 1 else floats).tolist()  # one C-level tolist
            values = [format_row(v) if isinstance(v, list) else (None if math.isnan(v) else v) for v in value]
            if np.isnan(floats[1:]).any():  # no forecast yet (a hybrid's first value)
                preds = [
                    [format_row(v) if isinstance(v, list) else (None if math.isnan(v) else v) for v in p] for p in preds
                ]
            flags = [False] * len(steps) if self._outlier is None else self._outlier.tolist()
            held = [False] * len(steps) if self._held is None else self._held.tolist()
            self._lists = TickLists(self.names, steps, updated, values, *preds, self.update_count, flags, held)
        return self._lists

    def row(self, i: int) -> StepResult:
        c = self.lists()
        return StepResult(
            series=c.names[i],
            step=c.steps[i],
            value=c.values[i],
            forecast_made=Prediction(c.made_mean[i], c.made_lower[i], c.made_upper[i]),
            forecast_next=Prediction(c.next_mean[i], c.next_lower[i], c.next_upper[i]),
            updated=c.updated[i],
            update_count=c.update_count,
            outlier=c.outlier[i],
            held=c.held[i],
        )


class StepResults(Sequence[StepResult]):
    """The results of ``observe_many`` in the order given, built lazily: a caller that
    reads none of them (a high-rate feeder) pays nothing for them. A caller that turns
    many of them into its own records reads the ticks' plain lists instead (``locate``).

    >>> from tbptt_online import Forecaster, ForecasterConfig
    >>> results = Forecaster(ForecasterConfig(hidden_size=4)).observe_many([("a", 1.0), ("b", None), ("a", 2.0)])
    >>> tick, row = results.locate(2)  # a's second value ran in the second tick
    >>> row, tick.lists().names[row], tick.lists().steps[row], results[2].step
    (0, 'a', 2, 2)
    >>> results.ticks[0].lists().values
    [1.0, None]
    """

    def __init__(self, ticks: list[TickColumns], positions: list[tuple[int, int]] | None = None) -> None:
        self._ticks = ticks
        self._positions = positions  # output index -> (tick, row); None: one tick, in order

    def __len__(self) -> int:
        if self._positions is None:
            return len(self._ticks[0].names) if self._ticks else 0
        return len(self._positions)

    @overload
    def __getitem__(self, index: int) -> StepResult: ...
    @overload
    def __getitem__(self, index: slice) -> list[StepResult]: ...
    def __getitem__(self, index: int | slice) -> StepResult | list[StepResult]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"result index {index} out of range")
        if self._positions is None:
            return self._ticks[0].row(index)
        tick, row = self._positions[index]
        return self._ticks[tick].row(row)

    @property
    def ticks(self) -> list[TickColumns]:
        """The ticks in the order they ran (a series' k-th value of the batch is in tick k)."""
        return self._ticks

    def locate(self, index: int) -> tuple[TickColumns, int]:
        """The tick holding result ``index`` (0 <= index < len) and its row there; builds no result."""
        if self._positions is None:
            return self._ticks[0], index
        tick, row = self._positions[index]
        return self._ticks[tick], row

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"StepResults({list(self)!r})"
