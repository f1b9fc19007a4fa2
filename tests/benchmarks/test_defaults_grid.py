"""benchmarks.defaults_grid scores ours as the accuracy benchmark does, per config."""

from __future__ import annotations

import math

from benchmarks import defaults_grid
from benchmarks.accuracy import HORIZON, warmup_of
from benchmarks.contenders import OurForecaster
from benchmarks.prequential import LastValue, evaluate
from benchmarks.real_series import RealSeries
from tbptt_online import ForecasterConfig


def test_each_config_is_scored_as_the_accuracy_benchmark_scores_ours():
    values = [20 + 3 * math.sin(2 * math.pi * t / 12) + (t % 5) / 10 for t in range(60)]
    series = RealSeries("sine", values, 12, "test")
    warmup = warmup_of(series)
    off = ForecasterConfig(outlier_sigmas=None)
    ours = evaluate(OurForecaster(off), values, warmup, HORIZON)
    naive = evaluate(LastValue(), values, warmup, HORIZON)
    expected = (ours["one_step_mae"] / naive["one_step_mae"], ours["mean_horizon_mae"] / naive["mean_horizon_mae"])
    assert defaults_grid.ratios(series, off) == expected
    text = defaults_grid.table({"a set": [series, series]}, [{"outlier_sigmas": None}, {}])
    lines = text.splitlines()
    assert lines[0].startswith('| stream | {"outlier_sigmas": null}: one step / h=1..12 | {}: one step')
    assert lines[2].startswith(f"| sine | {expected[0]:.4f} / {expected[1]:.4f} | ")
    assert lines[-1].startswith(f"| **a set: geometric mean** | {expected[0]:.4f} / {expected[1]:.4f} | ")
