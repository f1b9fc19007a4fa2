"""The random-walk check: its autocorrelation and its refitted forecasters, against hand cases."""

from __future__ import annotations

import numpy as np

from benchmarks import random_walk_check as check


def test_changes_that_alternate_have_an_autocorrelation_of_almost_minus_one_at_lag_one() -> None:
    values = np.cumsum([0.0] + [1.0, -1.0] * 10)  # 20 changes, +1 and -1 in turn, mean 0
    r = check.change_autocorrelation(values, lags=2)
    assert r[0] == -19 / 20 and r[1] == 18 / 20


def test_an_ar_of_the_changes_is_found_exactly_and_forecasts_every_value() -> None:
    changes = [1.0, 2.0]
    for _ in range(40):
        changes.append(0.5 * changes[-1] - 0.3 * changes[-2])  # an exact AR(2) of the changes
    values = np.cumsum([10.0, *changes])
    forecasts = check.ar_forecasts(values, p=2, start=10)
    np.testing.assert_allclose(forecasts, values[10:], rtol=0, atol=1e-9)
    first = check.ar_forecasts(values, p=2, start=3)  # values[3]: 2 changes known, fewer than 2p
    assert first[0] == values[2]


def test_the_drift_forecast_adds_the_median_of_the_changes_before() -> None:
    values = np.array([0.0, 1.0, 3.0, 4.0, 10.0])  # changes 1, 2, 1, 6
    assert check.drift_forecasts(values, 3, np.median).tolist() == [3.0 + 1.5, 4.0 + 1.0]
