"""benchmarks.members reads each origin's forecasts from the model's ring with the
accuracy benchmark's alignment: its served column is what the forecaster serves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks import members
from benchmarks.accuracy import warmup_of
from benchmarks.contenders import OurForecaster
from benchmarks.prequential import LastValue, evaluate
from benchmarks.real_series import RealSeries
from tbptt_online import ForecasterConfig, hybrid


def test_the_served_column_and_the_naive_member_match_the_prequential_scorer():
    rng = np.random.default_rng(0)
    t = np.arange(80)
    values = (20 + 3 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.5, len(t))).tolist()
    series = RealSeries("sine", values, 12, "test")
    config = ForecasterConfig()
    warmup = warmup_of(series)
    ratios = members.scores(series, config)
    ours = evaluate(OurForecaster(config), values, warmup, members.HORIZON)
    naive = evaluate(LastValue(), values, warmup, members.HORIZON)
    # the ring holds float32: the ratios agree to float32's precision, not bit for bit
    assert ratios["one"][members.SERVED] == pytest.approx(ours["one_step_mae"] / naive["one_step_mae"], rel=1e-5)
    expected_many = ours["mean_horizon_mae"] / naive["mean_horizon_mae"]
    assert ratios["many"][members.SERVED] == pytest.approx(expected_many, rel=1e-5)
    naive_member = hybrid.MEMBERS.index("naive")
    assert ratios["one"][naive_member] == pytest.approx(1.0, rel=1e-5)  # the naive member is the last value
    assert ratios["many"][naive_member] == pytest.approx(1.0, rel=1e-5)
    assert all(math.isfinite(r) for r in ratios["one"][: hybrid.N_MEMBERS])
