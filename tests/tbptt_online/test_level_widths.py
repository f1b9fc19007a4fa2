"""Widths that follow a positive series' level where its spread grows with it (``level_widths``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tbptt_online import Forecaster, ForecasterConfig, level_widths

# -- the elasticity by hand ---------------------------------------------------------------------------------


def _ring(values: dict[int, float], size: int = 64) -> np.ndarray:
    """A values ring [1, size, 1] holding ``values[step]`` at step ``step`` (1-based: index step - 1)."""
    ring = np.zeros((1, size, 1))
    for step, value in values.items():
        ring[0, (step - 1) % size, 0] = value
    return ring


def _two_levels(new_level: float, new_swing: float, season: int = 1) -> dict[int, float]:
    """Steps 1 .. 40: 10 +- 1 (the sign alternating every ``season`` values), then from step 21 on ``new_level``
    +- ``new_swing``."""
    values = {}
    for step in range(1, 41):
        sign = 1.0 if (step // season) % 2 == 0 else -1.0
        values[step] = (10.0 + sign) if step <= 20 else (new_level + sign * new_swing)
    return values


def _by_hand(values: dict[int, float], t: int, lag: int) -> float:
    """``level_widths.elasticity`` computed here: windows of 10 values, the older one as old as held (ending at
    lag + 11 at t = 40: its changes of changes read the lag + 1 values before it; with a season, at t's phase),
    the newer the last 10; the spread the mean of |(y_i - y_{i-lag}) - (y_{i-1} - y_{i-1-lag})|."""

    def window(last: int) -> tuple[float, float]:
        steps = range(last - 9, last + 1)
        spread = [abs((values[i] - values[i - lag]) - (values[i - 1] - values[i - 1 - lag])) for i in steps]
        return float(np.mean([values[i] for i in steps])), float(np.mean(spread))

    first = lag + 1 + 10  # the older window's earliest end (at t = 40 the whole 40 values are held) ...
    first += (t - first) % lag if lag >= 2 else 0  # ... moved to t's phase of the season
    (old_level, old_spread), (new_level, new_spread) = window(first), window(t)
    moved = math.log(new_level / old_level)
    if abs(moved) < math.log(1.5):
        return 0.0
    return min(max(math.log(new_spread / old_spread) / moved, 0.0), 1.0)


@pytest.mark.parametrize(
    ("new_level", "new_swing", "expected"),
    [
        (20.0, 2.0, 1.0),  # level x2, |change of change| 4 -> 8: the spread grows with the level
        (20.0, 1.0, 0.0),  # level x2, the same spread: additive noise
        (20.0, math.sqrt(2.0), 0.5),  # the spread x sqrt(2) for a level x2: half
        (40.0, 0.5, 0.0),  # the spread fell while the level grew: within [0, 1]
        (14.0, 1.4, 0.0),  # the level moved less than LEVEL_MOVE (x1.4 < x1.5): not measured
    ],
)
def test_the_elasticity_is_the_log_ratio_of_the_spreads_over_that_of_the_levels(new_level, new_swing, expected):
    assert level_widths.WINDOW == 10
    assert abs(level_widths.LEVEL_MOVE - math.log(1.5)) < 1e-15  # (``_by_hand`` assumes them)
    values = _two_levels(new_level, new_swing)
    # old window: steps 3 .. 12 (mean 10: five 11s and five 9s), its changes of changes 4 each; new window:
    # steps 31 .. 40 (mean new_level), 4 new_swing each
    assert _by_hand(values, 40, 1) == pytest.approx(expected, abs=1e-12)
    assert level_widths.elasticity(_ring(values), 0, 0, 40, 0) == pytest.approx(expected, abs=1e-12)


def test_the_elasticity_needs_two_windows_and_reads_the_changes_over_the_season():
    ring = _ring(_two_levels(20.0, 2.0))
    assert level_widths.elasticity(ring, 0, 0, 21, 0) == 0.0  # 21 values: two windows and a change, no more
    # a season of 4: 10 +- 1 in runs of 4, then 20 +- 2 (the changes over 4 values of the changes)
    values = _two_levels(20.0, 2.0, season=4)
    expected = _by_hand(values, 40, 4)
    assert expected > 0.0
    assert level_widths.elasticity(_ring(values), 0, 0, 40, 4) == pytest.approx(expected, abs=1e-12)
    # a linear trend with constant noise: the changes of changes do not grow with it (the changes would)
    trend = {step: 10.0 + 2.0 * step + (1.0 if step % 2 else -1.0) for step in range(1, 41)}
    assert level_widths.elasticity(_ring(trend), 0, 0, 40, 0) == 0.0


def test_grown_multiplies_the_widths_and_scales_kept_in_units_alone():
    q, far_q = np.full((2, 3, 1), 2.0), np.full((2, 2, 1), 5.0)
    spread = np.tile(np.array([4.0, 3.0, 1.1]).reshape(1, 1, 3, 1), (2, 3, 1, 1))  # S, N, m
    far_spread = spread[:, :2].copy()
    level_widths.grown(q, spread, far_q, far_spread, 1, 0, 1.25)
    assert q[1, :, 0].tolist() == [2.5] * 3 and far_q[1, :, 0].tolist() == [6.25] * 2
    assert spread[1, :, 0, 0].tolist() == [5.0] * 3 and far_spread[1, :, 0, 0].tolist() == [5.0] * 2
    assert spread[1, :, 1:, 0].tolist() == [[3.0, 1.1]] * 3  # the count and the multiplier as they were
    assert q[0, :, 0].tolist() == [2.0] * 3 and spread[0, :, 0, 0].tolist() == [4.0] * 3  # the other row untouched
    level_widths.grown(q, spread, far_q, far_spread, 1, 0, 100.0)  # within GROWTH_BOUNDS
    assert q[1, 0, 0] == 2.5 * level_widths.GROWTH_BOUNDS[1]


# -- a multiplicative series that grows ---------------------------------------------------------------------


def _coverage(values: np.ndarray) -> dict[int, tuple[float, int]]:
    forecaster = Forecaster(ForecasterConfig())
    for value in values:
        forecaster.observe("y", float(value))
    return {c.horizon: (c.coverage, c.scored) for c in forecaster.series_stats("y").coverage_by_horizon}


def test_the_widths_of_a_series_growing_4_percent_a_value_under_lognormal_noise_cover_90_percent():
    # 10 exp(0.04 t + e), e ~ N(0, 0.05^2), 120 values, 3 seeds: the errors grow with the level (4 % a value).
    # Widths kept in units lagged it: before session 62 the 90 % intervals held 78.5 / 83.3 / 73.6 % of the
    # values at h = 1 / 6 / 12 (the first 20 or so, before the elasticity is measured, included)
    covered = {1: [0.0, 0], 6: [0.0, 0], 12: [0.0, 0]}
    for seed in range(3):
        rng = np.random.default_rng(seed)
        t = np.arange(120)
        got = _coverage(10.0 * np.exp(0.04 * t + rng.normal(0.0, 0.05, t.size)))
        for h in covered:
            share, scored = got[h]
            covered[h][0] += share * scored
            covered[h][1] += scored
    shares = {h: total / scored for h, (total, scored) in covered.items()}
    assert shares[1] >= 0.82 and shares[6] >= 0.87 and shares[12] >= 0.85, shares
