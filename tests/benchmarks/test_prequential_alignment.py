"""The prequential scorer's alignment, checked against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from benchmarks.contenders import SeasonalNaive
from benchmarks.prequential import LastValue, evaluate


class Oracle:
    """Knows the whole series and forecasts the true next values: zero error iff aligned."""

    def __init__(self, values: list[float]) -> None:
        self.values = values
        self.seen = 0

    def learn_one(self, y: float) -> None:
        assert y == self.values[self.seen]
        self.seen += 1

    def forecast(self, horizon: int) -> list[float]:
        return self.values[self.seen : self.seen + horizon] + [math.nan] * max(
            0, self.seen + horizon - len(self.values)
        )


def test_hand_computed_last_value_scores():
    # t=1: F=[1,1] vs 3 (one step 2), origin: |3-1|, |2-1|; t=2: F=[3,3] vs 2 (1), origin: |2-3|, |5-3|;
    # t=3: F=[2,2] vs 5 (3), no origin (5 has no successor).
    scores = evaluate(LastValue(), [1.0, 3.0, 2.0, 5.0], warmup=1, horizon=2)
    assert scores["one_step_mae"] == 2.0
    assert scores["one_step_rmse"] == pytest.approx(math.sqrt(14 / 3))
    assert scores["one_step_count"] == 3
    assert scores["horizon_mae"] == [1.5, 1.5]
    assert scores["horizon_origins"] == 2


def test_last_value_on_a_ramp_is_off_by_h_at_horizon_h():
    scores = evaluate(LastValue(), [float(v) for v in range(30)], warmup=3, horizon=12)
    assert scores["one_step_mae"] == 1.0
    assert scores["horizon_mae"] == [float(h) for h in range(1, 13)]
    assert scores["mean_horizon_mae"] == 6.5
    assert scores["horizon_origins"] == 30 - 3 - 12 + 1


def test_an_oracle_of_the_future_scores_zero():
    values = [float(v * v % 7) for v in range(40)]
    scores = evaluate(Oracle(values), values, warmup=4, horizon=12)
    assert scores["one_step_mae"] == 0.0
    assert scores["mean_horizon_mae"] == 0.0


def test_seasonal_naive_is_exact_on_a_repeating_shape_beyond_one_season():
    shape = [3.0, -1.0, 4.0, 1.5]
    values = shape * 12
    scores = evaluate(SeasonalNaive(period=4), values, warmup=4, horizon=12)  # horizons 5..12 reach back 2-3 periods
    assert scores["one_step_mae"] == 0.0
    assert scores["horizon_mae"] == [0.0] * 12


def test_warmup_must_leave_values_to_score():
    with pytest.raises(ValueError, match="warmup=5"):
        evaluate(LastValue(), [1.0] * 5, warmup=5, horizon=1)


class Band:
    """The last value with the fixed interval [last - 1, last + 1] at every horizon."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.levels: list[float] = []

    def learn_one(self, y: float) -> None:
        self.last = y

    def forecast(self, horizon: int) -> list[float]:
        raise AssertionError("a level was asked: forecast_interval must be called instead")

    def forecast_interval(self, horizon: int, level: float) -> tuple[list[float], list[float], list[float]]:
        self.levels.append(level)
        assert self.last is not None
        return [self.last] * horizon, [self.last - 1.0] * horizon, [self.last + 1.0] * horizon


class FixedInterval(LastValue):
    """Any mean, and the interval [2, 4] whatever it has seen."""

    def forecast_interval(self, horizon: int, level: float) -> tuple[list[float], list[float], list[float]]:
        return self.forecast(horizon), [2.0] * horizon, [4.0] * horizon


def test_hand_computed_coverage_of_a_band_around_the_last_value():
    # Origins t = 1..5 (t + 2 <= 7). h=1: |y[t] - y[t-1]| <= 1 at t = 1 (1, a bound), 3 (0), 5 (0.5): 3 of 5.
    # h=2: |y[t+1] - y[t-1]| = 3, 2, 3, 3.5, 1: only t = 5: 1 of 5.
    band, values = Band(), [0.0, 1.0, 3.0, 3.0, 6.0, 6.5, 7.0]
    scores = evaluate(band, values, warmup=1, horizon=2, level=0.8, coverage_horizons=(1, 2))
    assert scores["horizon_origins"] == 5
    assert scores["coverage"] == [3 / 5, 1 / 5]
    assert band.levels == [0.8] * 6  # asked at every scored value t = 1..6, with the level given
    assert scores["one_step_mae"] == pytest.approx((1 + 2 + 0 + 3 + 0.5 + 0.5) / 6)  # the interval's mean is scored


def test_coverage_of_a_fixed_interval_is_the_share_of_targets_inside_it():
    values = [0.0, 2.0, 5.0, 3.0, 4.0, 1.0, 2.5, 9.0, 3.5, 4.0]
    scores = evaluate(FixedInterval(), values, warmup=2, horizon=3, level=0.9, coverage_horizons=(1, 3))
    # Origins t = 2..7. h=1 targets y[2..7] = 5, 3, 4, 1, 2.5, 9: 3 inside [2, 4];
    # h=3 targets y[4..9] = 4, 1, 2.5, 9, 3.5, 4: 4 inside.
    assert scores["horizon_origins"] == 6
    assert scores["coverage"] == [3 / 6, 4 / 6]


def test_no_level_no_coverage_and_horizons_beyond_the_forecast_are_refused():
    assert evaluate(LastValue(), [1.0, 2.0, 3.0], warmup=1, horizon=1)["coverage"] is None
    with pytest.raises(ValueError, match=r"coverage_horizons=\[1, 13\]"):
        evaluate(FixedInterval(), [1.0] * 20, warmup=1, horizon=12, level=0.9, coverage_horizons=(1, 13))


def test_seasonal_naive_of_season_one_is_the_naive_last_value():
    values = [float(v * v % 11) for v in range(30)]
    assert evaluate(SeasonalNaive(period=1), values, 3, 12) == evaluate(LastValue(), values, 3, 12)
