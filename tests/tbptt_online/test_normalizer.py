"""The running normaliser against a direct mean / std, and the prequential scores
against a hand computation."""

from __future__ import annotations

import math
import random
from statistics import NormalDist

import pytest
import torch

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_online.normalizer import std, welford_update
from tests.tbptt_online.oracle import direct_scale

Z90 = NormalDist().inv_cdf(0.95)  # 1.6449: the 90 % interval


def test_welford_matches_a_direct_mean_and_std_with_missing_values():
    rng = random.Random(7)
    b, d, n = 3, 2, 40
    count, mean, m2 = (torch.zeros(b, d, dtype=torch.float64) for _ in range(3))
    seen: list[list[list[float]]] = [[[] for _ in range(d)] for _ in range(b)]
    for step in range(n):
        x = torch.tensor([[rng.gauss(5.0 * r, 1.0 + f) for f in range(d)] for r in range(b)], dtype=torch.float64)
        mask = torch.tensor([[rng.random() > 0.3 for _ in range(d)] for _ in range(b)])
        x = torch.where(mask, x, torch.full_like(x, math.nan))  # a missing value is NaN here
        count, mean, m2 = welford_update(count, mean, m2, x, mask)
        sd = std(count, m2)
        for r in range(b):
            for f in range(d):
                if mask[r, f]:
                    seen[r][f].append(float(x[r, f]))
                centre, scale = direct_scale(seen[r][f])
                assert int(count[r, f]) == len(seen[r][f])
                assert abs(float(mean[r, f]) - centre) <= 1e-12 * max(1.0, abs(centre)), step
                assert abs(float(sd[r, f]) - scale) <= 1e-12 * scale, step
    assert all(len(seen[r][f]) > 20 for r in range(b) for f in range(d))


def test_std_is_one_until_the_scale_is_known():
    one = torch.ones(1, 1, dtype=torch.float64)
    c, m, s = (torch.zeros(1, 1, dtype=torch.float64) for _ in range(3))
    c, m, s = welford_update(c, m, s, 3.0 * one, one.bool())
    assert float(std(c, s)) == 1.0  # one value
    c, m, s = welford_update(c, m, s, 3.0 * one, one.bool())
    assert float(std(c, s)) == 1.0 and float(m) == 3.0  # two equal values: no scale yet
    c, m, s = welford_update(c, m, s, 6.0 * one, one.bool())
    assert float(std(c, s)) == pytest.approx(math.sqrt(3.0), rel=1e-15)


def test_forecaster_stores_inputs_normalised_with_the_statistics_including_them():
    f = Forecaster(ForecasterConfig(hidden_size=4, k1=3, k2=8, dtype="float64", normalize=True, hybrid=False))
    values = [10.0, 12.0, None, 9.0, 15.0, 11.0]
    observed = []
    for t, v in enumerate(values, start=1):
        r = f.observe("a", v)
        if v is None:
            continue
        observed.append(v)
        centre, scale = direct_scale(observed)
        stored = float(f.store.tensors["hist_x"][0, t - 1, 0])
        assert abs(stored - (v - centre) / scale) <= 1e-12
        assert abs(stored) <= math.sqrt(len(observed))  # bounded: a jump cannot blow up the input
        assert r.value == v


def constant_forecaster(loss: str, normalize: bool) -> Forecaster:
    """Zero weights, lr = 0, no residual head: every state stays 0, so every normalised
    forecast is the head's bias: mean 1.0 and (gaussian) variance softplus(raw) + 1e-6 = 1."""
    config = ForecasterConfig(
        hidden_size=3, k1=2, k2=3, loss=loss, normalize=normalize, optimizer="sgd", lr=0.0, clip_norm=None,
        dtype="float64", interval_level=0.9, residual=False, hybrid=False,
    )  # fmt: skip
    f = Forecaster(config)
    with torch.no_grad():
        for p in f.network.parameters():
            p.zero_()
        f.network.head.bias[0] = 1.0
        if loss == "gaussian":
            f.network.head.bias[1] = math.log(math.expm1(1.0 - 1e-6))  # softplus^-1(1 - 1e-6)
    return f


STREAM = [2.0, 0.0, None, 4.0, 1.5, -0.7]


def test_prequential_scores_of_a_gaussian_forecast_by_hand():
    f = constant_forecaster("gaussian", normalize=False)
    for t, v in enumerate(STREAM, start=1):
        r = f.observe("a", v)
        if t == 1:  # nothing was known of the series before its first value: no forecast, nothing scored
            assert (r.forecast_made.mean, r.forecast_made.lower, r.forecast_made.upper) == (None, None, None)
            continue
        assert r.forecast_made.mean == 1.0
        assert r.forecast_made.lower == pytest.approx(1.0 - Z90, abs=1e-12)
    s = f.series_stats("a")
    # forecasts: 1.0 ± 1.6449 for every value after the first; the None is not scored
    assert s.count == 6
    assert s.mae == pytest.approx((1.0 + 3.0 + 0.5 + 1.7) / 4, abs=1e-12)
    assert s.rmse == pytest.approx(math.sqrt((1.0 + 9.0 + 0.25 + 2.89) / 4), abs=1e-12)
    # naive: each observed value against the previous observed one (0 vs 2, 4 vs 0, 1.5 vs 4, -0.7 vs 1.5)
    assert s.naive_mae == pytest.approx((2.0 + 4.0 + 2.5 + 2.2) / 4, abs=1e-12)
    assert s.naive_rmse == pytest.approx(math.sqrt((4.0 + 16.0 + 6.25 + 4.84) / 4), abs=1e-12)
    # inside [-0.6449, 2.6449]: 0.0, 1.5; outside: 4.0, -0.7
    assert s.coverage == pytest.approx(2 / 4, abs=1e-12) and s.interval_level == 0.9


def test_prequential_scores_of_a_point_forecast_by_hand():
    f = constant_forecaster("mse", normalize=False)
    sds = []
    for v in STREAM:
        r = f.observe("a", v)
        if r.forecast_made.mean is not None:
            sds.append((r.forecast_made.upper - r.forecast_made.lower) / (2 * Z90))
    # the interval sd is the root mean squared residual so far (1 before any residual); the first
    # value has no forecast, the second's residual (0 - 1)^2 = 1, then (4 - 1)^2 = 9, (1.5 - 1)^2
    expected = [1.0, 1.0, 1.0, math.sqrt(10.0 / 2), math.sqrt(10.25 / 3)]
    assert sds == pytest.approx(expected, abs=1e-12)
    s = f.series_stats("a")
    assert s.mae == pytest.approx(6.2 / 4, abs=1e-12)
    # inside: 0.0 (1±1.64), 1.5 (1±3.68), -0.7 (1±3.04); outside: 4.0 (1±1.64)
    assert s.coverage == pytest.approx(3 / 4, abs=1e-12)
    fc = f.forecast("a", horizon=3)  # the random-walk widening: sd * sqrt(k)
    sd_now = math.sqrt((10.25 + 1.7**2) / 4)
    widths = [(hi - lo) / (2 * Z90) for lo, hi in zip(fc.lower, fc.upper, strict=True)]
    assert widths == pytest.approx([sd_now * math.sqrt(k) for k in (1, 2, 3)], abs=1e-12)


def test_prequential_scores_in_units_of_a_normalised_series():
    f = constant_forecaster("gaussian", normalize=True)
    observed, made = [], []
    for v in STREAM:
        r = f.observe("a", v)
        if not observed:  # the first value: nothing was known, no forecast
            assert (r.forecast_made.mean, r.forecast_made.lower, r.forecast_made.upper) == (None, None, None)
            observed.append(v)
            continue
        centre, scale = direct_scale(observed)  # the forecast was made before v arrived
        assert r.forecast_made.mean == pytest.approx(1.0 * scale + centre, abs=1e-12)
        assert r.forecast_made.upper - r.forecast_made.mean == pytest.approx(Z90 * scale, abs=1e-12)
        if v is not None:
            made.append((v, 1.0 * scale + centre, Z90 * scale))
            observed.append(v)
    s = f.series_stats("a")
    assert len(made) == 4  # the first value and the None are not scored
    assert s.mae == pytest.approx(sum(abs(v - m) for v, m, _ in made) / 4, abs=1e-12)
    assert s.rmse == pytest.approx(math.sqrt(sum((v - m) ** 2 for v, m, _ in made) / 4), abs=1e-12)
    assert s.coverage == pytest.approx(sum(abs(v - m) <= w for v, m, w in made) / 4, abs=1e-12)
