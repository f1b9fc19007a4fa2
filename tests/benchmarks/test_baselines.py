"""The benchmarks' own parts against ground truth: the naive baseline and the wall streams."""

from __future__ import annotations

import torch

from benchmarks.naive_tbptt import NaiveSeriesModel
from benchmarks.wall_streams import best_and_ignorant, delayed_echo, seasonal_ar, seasonal_random_walk
from tbptt_online import Forecaster, ForecasterConfig


def test_naive_baseline_computes_what_the_library_computes_on_one_series():
    # Same weights, no normalisation: the per-series loop and the batched library must give the
    # same forecasts step by step, updates included, so the speed ratio compares like with like.
    config = ForecasterConfig(  # the network-only forecaster with the level head, as the naive loop
        hidden_size=16,
        k1=3,
        k2=7,
        normalize=False,
        residual=False,
        seed=3,
        hybrid=False,
        warmup_updates=0,
        loss="gaussian",
    )
    forecaster = Forecaster(config)
    naive = NaiveSeriesModel(hidden_size=16, k1=3, k2=7, lr=config.lr)
    naive.cell.load_state_dict(forecaster.network.cells[0].state_dict())
    naive.head.load_state_dict(forecaster.network.head.state_dict())
    values = torch.randn(40, generator=torch.Generator().manual_seed(0), dtype=torch.float64).tolist()
    for value in values:
        ours = forecaster.observe("s", value).forecast_next.mean
        theirs = naive.observe(value)
        assert abs(ours - theirs) < 1e-5
    assert naive.updates == forecaster.update_stats().updates == 40 // 3


def test_seasonal_random_walk_steps_one_season_by_its_noise():
    x = seasonal_random_walk(ticks=103, n_series=2, period=10, seed=7)  # not a multiple of the period
    noise = torch.randn(103, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert torch.allclose(x[:10, :, 0], noise[:10])
    assert torch.allclose(x[10:, :, 0] - x[:-10, :, 0], noise[10:])


def test_delayed_echo_feature_two_is_feature_one_p_ticks_back():
    x = delayed_echo(ticks=50, n_series=3, period=6, seed=1)
    assert tuple(x.shape) == (50, 3, 2)
    assert torch.equal(x[6:, :, 1], x[:-6, :, 0])


def test_best_predictor_errors_are_the_noise_and_zero():
    walk = seasonal_random_walk(ticks=60, n_series=1, period=5, seed=2)
    best, ignorant = best_and_ignorant("seasonal_random_walk", walk, 5)
    assert torch.allclose(walk[5:, 0, 0] - best[5:, 0], walk[5:, 0, 0] - walk[:-5, 0, 0])
    assert torch.equal(ignorant[1:, 0], walk[:-1, 0, 0])
    echo = delayed_echo(ticks=60, n_series=2, period=5, seed=2)
    best, ignorant = best_and_ignorant("delayed_echo", echo, 5)
    assert torch.equal(best[5:], echo[5:, :, 1])  # exact: feature 2 is known P ticks ahead
    assert torch.allclose(ignorant[3], echo[:3, :, 1].mean(dim=0))  # the mean of what was seen before t


def test_seasonal_ar_steps_one_season_by_phi_and_its_noise():
    x = seasonal_ar(ticks=103, n_series=2, period=10, seed=7, phi=0.9)  # not a multiple of the period
    noise = torch.randn(103, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert torch.allclose(x[:10, :, 0], noise[:10] / (1 - 0.81) ** 0.5)  # started from the stationary law
    assert torch.allclose(x[10:, :, 0] - 0.9 * x[:-10, :, 0], noise[10:])


def test_seasonal_ar_baselines_are_phi_times_the_lag_and_the_running_mean():
    x = seasonal_ar(ticks=30, n_series=2, period=5, seed=3, phi=0.5)
    best, ignorant = best_and_ignorant("seasonal_ar", x, period=5, phi=0.5)
    assert best[:5].isnan().all() and torch.allclose(best[5:], 0.5 * x[:-5, :, 0])
    assert ignorant[0].isnan().all()
    assert torch.allclose(ignorant[12], x[:12, :, 0].mean(dim=0))
