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


def test_seasonal_naive_is_exact_on_a_repeating_shape_beyond_one_period():
    shape = [3.0, -1.0, 4.0, 1.5]
    values = shape * 12
    scores = evaluate(SeasonalNaive(period=4), values, warmup=4, horizon=12)  # horizons 5..12 reach back 2-3 periods
    assert scores["one_step_mae"] == 0.0
    assert scores["horizon_mae"] == [0.0] * 12


def test_warmup_must_leave_values_to_score():
    with pytest.raises(ValueError, match="warmup=5"):
        evaluate(LastValue(), [1.0] * 5, warmup=5, horizon=1)
