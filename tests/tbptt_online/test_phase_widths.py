"""Per-phase interval widths (session 54, ``calibration.phase_factor``): a seasonal series whose noise grows with
its level is served a wider interval at its peak than at night, learned from its errors; the factors follow a
change of season, survive a state's round trip and start from the values ring for an older checkpoint."""

from __future__ import annotations

import math

import numpy as np
import torch

from tbptt_online import Forecaster, ForecasterConfig, calibration, experts, hybrid
from tbptt_online.state_format import FORMAT_VERSION, current_state
from tests.tbptt_online.old_formats import as_format_23

SEASON = 24


def level_at(t: int) -> float:
    """Hourly traffic: 10 at night (hour 2), 100 at the peak (hour 14)."""
    return 10.0 + 90.0 * (1.0 - math.cos(2.0 * math.pi * (t - 2) / SEASON)) / 2.0


def poisson(n: int, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(v) for v in rng.poisson([level_at(t) for t in range(n)])]


def fed(values: list[float], **config) -> Forecaster:
    forecaster = Forecaster(ForecasterConfig(**config))
    for value in values:
        forecaster.observe("y", value)
    return forecaster


def phase_factors(forecaster: Forecaster, m: int = SEASON) -> np.ndarray:
    """[m] the factors that series "y" serves at phases 0 .. m - 1 (1 where none)."""
    slot = forecaster.store.slot_of("y")
    stats = forecaster.store.tensors["c_phase"][slot : slot + 1].numpy()
    mean, weight = calibration.phase_norm(stats, 0, 0, m)
    return np.array([calibration.phase_factor(stats, 0, 0, m, p, mean, weight) for p in range(m)])


def peak_and_night(factors: np.ndarray) -> tuple[float, float]:
    """The mean factor of the 7 peak hours (11 .. 17) and of the 7 night hours (23 .. 5): hour t's value is
    step t + 1 (phase (t + 1) % 24)."""
    peak = [(hour + 1) % SEASON for hour in range(11, 18)]
    night = [(hour + 1) % SEASON for hour in range(-1, 6)]
    return float(factors[peak].mean()), float(factors[night].mean())


def test_the_peak_hours_of_noise_that_grows_with_the_level_are_covered_near_90_percent():
    """Poisson counts of mean 10 at night and 100 at the peak: with widths per horizon only (session 53's code)
    the one-step 90 % interval covered the 7 peak hours (mean over 85) 84 % of the time on seed 0 here
    (``benchmarks.phase_widths``, 3 seeds of 2,000 values: 80-84 % at the peak, 98-99 % at night); served with
    its phase's factor, within 5 points of 90 at both, against the values themselves."""
    n, scored_from = 1400, 500
    for seed in (0, 1):
        values = poisson(n, seed)
        forecaster = Forecaster(ForecasterConfig(season_length=SEASON))
        peak, night = [], []
        for t, value in enumerate(values):
            if t >= scored_from:
                forecast = forecaster.forecast("y", 1, 0.9)
                inside = forecast.lower[0] <= value <= forecast.upper[0]
                if level_at(t) > 85.0:
                    peak.append(inside)
                elif level_at(t) < 25.0:
                    night.append(inside)
            forecaster.observe("y", value)
        assert abs(np.mean(peak) - 0.9) < 0.05, (seed, np.mean(peak))
        assert abs(np.mean(night) - 0.9) < 0.05, (seed, np.mean(night))


def test_noise_of_one_size_at_every_phase_keeps_factors_of_1_and_a_growing_one_gets_its_profile():
    rng = np.random.default_rng(3)
    constant = fed([level_at(t) + 6.0 * float(rng.standard_normal()) for t in range(600)], season_length=SEASON)
    assert np.abs(phase_factors(constant) - 1.0).max() < 0.15
    growing = phase_factors(fed(poisson(600), season_length=SEASON))
    peak, night = peak_and_night(growing)
    assert peak > 1.15 and night < 0.75  # the peak's noise is 3 times the night's
    assert abs(growing.mean() - 1.0) < 0.02


def test_a_change_of_season_serves_factors_of_1_then_re_estimates_them_from_the_values_ring():
    values = poisson(400)
    forecaster = fed(values, season_length=SEASON)
    store, slot = forecaster.store, forecaster.store.slot_of("y")
    slots = torch.tensor([slot])
    assert store.tensors["c_phase_of"][slot, 0].item() == SEASON
    assert np.abs(phase_factors(forecaster) - 1.0).max() > 0.2
    rows = hybrid.rows_at(store.tensors, slots)
    step = store.get("steps", slots)
    hybrid.set_seasons(rows, step, torch.tensor([[[12, 0]]]), torch.tensor([True]))
    store.put(slots, **experts.own(rows))
    assert store.tensors["x_season_length"][slot, 0].tolist() == [12, 0]
    forecast = forecaster.forecast("y", 12, 0.9)
    plain = hybrid.half_widths(hybrid.rows_at(store.tensors, slots), 12)[0, :, 0]
    served = torch.tensor(forecast.upper, dtype=torch.float64) - torch.tensor(forecast.mean, dtype=torch.float64)
    torch.testing.assert_close(served, plain, rtol=1e-12, atol=1e-12)  # the season changed: no factor yet
    forecaster.observe("y", 50.0)  # value 401: re-estimated from the ring (values 1 .. 400), then learned from
    t = int(store.get("steps", slots)[0])
    assert t == 401 and store.tensors["c_phase_of"][slot, 0].item() == 12
    stats = store.tensors["c_phase"][slot, :, :, 0]  # [P, 2]
    ring = store.tensors["x_raw"].shape[1]
    total, count = np.zeros(12), np.zeros(12)
    for i in range(max(13, t - ring + 12), t):  # steps i and i - 12, both in the ring
        total[i % 12] += abs(values[i - 1] - values[i - 13])
        count[i % 12] += 1
    cap = 1.0 / (1.0 - calibration.PHASE_DISCOUNT)
    total, count = np.where(count > cap, total * cap / count, total), np.minimum(count, cap)
    for p in range(12):
        if p != t % 12:  # (value 401's phase has learned its one-step error too)
            assert stats[p, 0].item() == np.float64(total[p]) or math.isclose(stats[p, 0], total[p], rel_tol=1e-12)
            assert math.isclose(stats[p, 1], count[p], rel_tol=1e-12)
    assert not stats[12:].any()  # past the new season: cleared
    assert calibration.phase_norm(stats[None, :, :, None].numpy().copy(), 0, 0, 12)[1] > 0.0


def test_a_state_round_trip_keeps_the_phase_statistics_bit_for_bit_and_goes_on_identically():
    values = poisson(700)
    forecaster = fed(values[:500], season_length=SEASON)
    state = forecaster.state_dict()
    again = Forecaster.from_state_dict(state)
    mine, theirs = forecaster.store.slot_of("y"), again.store.slot_of("y")
    for name in ("c_phase", "c_phase_of", "c_phase_fit"):
        assert torch.equal(again.store.tensors[name][theirs], forecaster.store.tensors[name][mine])
        assert torch.equal(again.state_dict()["store"]["tensors"][name], state["store"]["tensors"][name])
    assert forecaster.store.tensors["c_phase_of"][mine, 0].item() == SEASON
    for value in values[500:]:
        forecaster.observe("y", value)
        again.observe("y", value)
    for name in ("c_phase", "c_phase_of", "c_phase_fit"):
        assert torch.equal(again.store.tensors[name][theirs], forecaster.store.tensors[name][mine])
    first, second = forecaster.forecast("y", 48, 0.8), again.forecast("y", 48, 0.8)
    assert (first.mean, first.lower, first.upper) == (second.mean, second.lower, second.upper)


def test_an_older_checkpoint_loads_with_factors_of_1_and_re_estimates_them_at_its_next_value():
    values = poisson(500)
    forecaster = fed(values[:480], season_length=SEASON)
    old = as_format_23(forecaster.state_dict())
    assert old["format"] == 23 and "c_phase" not in old["store"]["tensors"]
    migrated = current_state(old)
    assert migrated["format"] == FORMAT_VERSION == 24
    tensors = migrated["store"]["tensors"]
    assert not tensors["c_phase"].any() and not tensors["c_phase_of"].any() and not tensors["c_phase_fit"].any()
    names = list(tensors)
    assert names[names.index("c_shape") + 1 : names.index("c_shape") + 4] == ["c_phase", "c_phase_of", "c_phase_fit"]
    loaded = Forecaster.from_state_dict(old)
    slot = loaded.store.slot_of("y")
    forecast = loaded.forecast("y", 12, 0.9)
    plain = hybrid.half_widths(hybrid.rows_at(loaded.store.tensors, torch.tensor([slot])), 12)[0, :, 0]
    served = torch.tensor(forecast.upper, dtype=torch.float64) - torch.tensor(forecast.mean, dtype=torch.float64)
    torch.testing.assert_close(served, plain, rtol=1e-12, atol=1e-12)  # served as format 23 served it
    for value in values[480:]:
        loaded.observe("y", value)
    assert loaded.store.tensors["c_phase_of"][slot, 0].item() == SEASON
    peak, night = peak_and_night(phase_factors(loaded))
    assert peak > 1.15 and night < 0.75
