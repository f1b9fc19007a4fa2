"""The service's bound on a value's magnitude (``values.MAX_ABS_VALUE``) keeps every config finite.

A series fed values of opposite sign at the bound, many times, then ordinary values again still
forecasts finite means and intervals in every cell, loss and input convention (the network fed
raw values in float32 included: hybrid=False, normalize=False), and its state passes
``check_state``, so its checkpoint imports. Beyond the bound this did not hold: 1e308 then -1e308
left a hybrid series serving null forever, and 1e100 a raw float32 network.
"""

from __future__ import annotations

import math

import pytest

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_online.state_check import check_state
from tbptt_online.values import MAX_ABS_VALUE


def _flat(rows: list) -> list[float | None]:
    return [x for row in rows for x in (row if isinstance(row, list) else [row])]


@pytest.mark.parametrize(
    "config",
    [
        {},  # the hybrid
        {"hybrid": False},
        {"hybrid": False, "normalize": False},
        {"hybrid": False, "normalize": False, "loss": "mse", "cell": "lstm"},
        {"hybrid": False, "normalize": False, "loss": "gaussian", "cell": "rnn", "n_features": 4},
        {"hybrid": False, "loss": "gaussian", "residual": False, "n_features": 4},
    ],
    ids=["hybrid", "network", "raw", "raw-lstm-mse", "raw-rnn-gaussian-4", "gaussian-level-4"],
)
def test_values_at_the_bound_leave_every_forecast_finite(config) -> None:
    f = Forecaster(ForecasterConfig(hidden_size=8, k1=2, k2=4, **config))
    d = f.config.n_features
    row = (lambda x: x) if d == 1 else (lambda x: [x * (-1) ** j for j in range(d)])  # mixed signs across features
    for i in range(20):
        f.observe("a", row(math.sin(i / 3)))
    for k in range(60):
        f.observe("a", row(MAX_ABS_VALUE * (-1) ** k))
    for i in range(30):
        f.observe("a", row(math.sin(i / 3)))
    forecast = f.forecast("a", horizon=3)
    numbers = _flat(forecast.mean) + _flat(forecast.lower) + _flat(forecast.upper)
    assert all(x is not None and math.isfinite(x) for x in numbers), numbers
    check_state(f.state_dict())  # raises naming the field were a NaN stored where none may be
