"""The long AR on the changes (ar_changes.py): it learns an exact linear recursion of the
changes with a drift, and its path is that recursion rolled forward by hand."""

from __future__ import annotations

import math

import pytest
import torch

from tbptt_online import ar_changes, experts
from tests.tbptt_online.test_experts import blank, feed

LONG_AR = experts.NAMES.index("ar_changes")


def oscillating_changes(n: int, season_length: float = 11.0, drift: float = 0.5) -> list[float]:
    """Values whose changes are a sine of season length ``season_length`` around ``drift``: c_t = 2 cos(w) c_{t-1}
    - c_{t-2} + drift (2 - 2 cos(w)), an exact recursion of order 2 with a constant."""
    w = 2 * math.pi / season_length
    changes = [drift + 3.0 * math.sin(w * t) for t in range(n)]
    values = [100.0]
    for c in changes[1:]:
        values.append(values[-1] + c)
    return values


def hand_path(values: list[float], theta: list[float], scale: float, horizon: int) -> list[float]:
    """theta . (1, c_{t-1} / s, ..., c_{t-ORDER} / s) * s, within PATH_BOUND times the largest of
    the last ORDER changes (at least the drift theta[0] * s), rolled forward."""
    changes = [values[i] - values[i - 1] for i in range(1, len(values))][-ar_changes.ORDER :][::-1]  # newest first
    changes += [0.0] * (ar_changes.ORDER - len(changes))  # a young series: the changes not yet formed count 0
    bound = max(ar_changes.PATH_BOUND * max(abs(ch) for ch in changes), abs(theta[0]) * scale)  # at least the drift
    last, out = values[-1], []
    for _ in range(horizon):
        c = theta[0] * scale + sum(k * ch for k, ch in zip(theta[1:], changes, strict=True))
        c = min(max(c, -bound), bound)
        last += c
        out.append(last)
        changes = [c, *changes[:-1]]
    return out


def test_the_constants_are_the_documented_ones():
    assert ar_changes.K == ar_changes.ORDER + 1 == 13  # a constant and 12 lags
    rows = ar_changes.fields(2, 1)
    assert torch.equal(rows["x_arc_p"][1, 0], ar_changes.PRIOR * torch.eye(13, dtype=torch.float64))
    assert rows["x_arc"].abs().max() == 0


def test_it_learns_an_oscillation_of_the_changes_with_a_drift_and_rolls_it_forward():
    values = oscillating_changes(600)
    rows = blank(ring=64)
    feed(rows, values)
    theta = rows["x_arc"][0, 0].tolist()
    scale = experts.local_scale(rows)[0, 0].item()
    path = experts.paths(rows, torch.tensor([len(values)]), 12)[0, :, LONG_AR, 0].tolist()
    assert path == pytest.approx(hand_path(values, theta, scale, 12), rel=1e-12)
    truth = oscillating_changes(600 + 12)[600:]
    # 13 collinear inputs (a sine's lags) for a recursion of order 2: the ridge keeps a small bias
    assert path == pytest.approx(truth, abs=0.1 * 3.0)  # the changes' amplitude is 3
    naive_error = sum(abs(t - values[-1]) for t in truth) / 12
    error = sum(abs(p - t) for p, t in zip(path, truth, strict=True)) / 12
    assert error < 0.05 * naive_error, (error, naive_error)


def test_a_missing_value_teaches_nothing_and_a_young_series_forecasts_its_last_value():
    rows = blank(ring=64)
    feed(rows, [5.0])
    assert experts.paths(rows, torch.tensor([1]), 3)[0, :, LONG_AR, 0].tolist() == [5.0] * 3  # theta = 0
    feed(rows, [6.0, 7.5, 7.0], first_step=2)
    before = rows["x_arc"].clone()
    feed(rows, [None], first_step=5)
    assert torch.equal(rows["x_arc"], before)


def test_an_explosive_fit_runs_its_changes_up_to_the_bound_not_off():
    # a young series' 13 coefficients on a few dozen values can make the recursion explosive: the
    # path of c_t = 2 c_{t-1} doubled its change 12 times (strikes, 62 values: the long AR's MAE at
    # h=1..12 was 4.9 times the naive's); each forecast change now stays within PATH_BOUND times the
    # largest of the last ORDER changes
    values = oscillating_changes(60)
    rows = blank(ring=64)
    feed(rows, values)
    theta = [0.0, 2.0] + [0.0] * (ar_changes.ORDER - 1)
    rows["x_arc"][0, 0] = torch.tensor(theta, dtype=torch.float64)
    scale = experts.local_scale(rows)[0, 0].item()
    path = experts.paths(rows, torch.tensor([len(values)]), 12)[0, :, LONG_AR, 0].tolist()
    assert path == pytest.approx(hand_path(values, theta, scale, 12), rel=1e-12)
    recent = [abs(values[i] - values[i - 1]) for i in range(len(values) - ar_changes.ORDER, len(values))]
    steps = [b - a for a, b in zip([values[-1], *path[:-1]], path, strict=True)]
    assert max(abs(s) for s in steps) == pytest.approx(ar_changes.PATH_BOUND * max(recent), rel=1e-12)
    unbounded = abs(values[-1] - values[-2]) * 2**12  # what the recursion alone reaches at h = 12
    reach = 12 * ar_changes.PATH_BOUND * max(recent)  # every change at the bound
    assert abs(path[-1] - values[-1]) <= reach * (1 + 1e-12) and reach < unbounded / 100


def test_a_flat_window_does_not_freeze_the_drift():
    # a series that steps up by 1 every 15 values: its last 12 changes can all be 0, which bounded
    # every forecast change at 0 (a review's staircase: the long AR at h=1..12 0.910 -> 0.985 of the
    # naive's MAE); the drift (theta's constant) is the bound's floor
    values = [float(t // 15) for t in range(600)]
    values = values[: 600 - 600 % 15 + 13]  # end 12 values into a flat step: the last 12 changes are 0
    rows = blank(ring=64)
    feed(rows, values)
    theta = rows["x_arc"][0, 0].tolist()
    scale = experts.local_scale(rows)[0, 0].item()
    assert theta[0] * scale > 0.01  # it learnt a drift up
    path = experts.paths(rows, torch.tensor([len(values)]), 12)[0, :, LONG_AR, 0].tolist()
    assert path == pytest.approx(hand_path(values, theta, scale, 12), rel=1e-12)
    assert path[-1] - values[-1] > 0.4  # it still climbs (the staircase's 12 / 15 = 0.8; frozen: 0)


@pytest.mark.parametrize("n", [3, 6, 10])
def test_a_young_series_path_is_bounded_by_the_changes_it_has(n):
    # fewer than ORDER changes formed: the missing ones are 0 in the recursion and in the bound
    values = oscillating_changes(n)
    rows = blank(ring=64)
    feed(rows, values)
    theta = [0.1, 2.0] + [0.0] * (ar_changes.ORDER - 1)  # explosive, with a drift
    rows["x_arc"][0, 0] = torch.tensor(theta, dtype=torch.float64)
    scale = experts.local_scale(rows)[0, 0].item()
    path = experts.paths(rows, torch.tensor([len(values)]), 12)[0, :, LONG_AR, 0].tolist()
    assert path == pytest.approx(hand_path(values, theta, scale, 12), rel=1e-12)


def ramp_stepped_down(n: int, at: int, step: float) -> tuple[dict[str, torch.Tensor], list[float]]:
    """The experts' rows fed a ramp of 10 a value with noise 0.5, stepped by ``step`` at value ``at``, which
    ``outliers`` found a level shift (``shifted`` there, its step in ``o_shift_at``, as a tick sets both)."""
    import random

    rng = random.Random(0)
    values = [100.0 + 10.0 * t + rng.gauss(0.0, 0.5) + (step if t >= at else 0.0) for t in range(1, n + 1)]
    rows = blank(ring=64)
    rows["o_shift_at"] = torch.zeros(1, 1, dtype=torch.int64)
    feed(rows, values[: at - 1])
    rows["o_shift_at"][0, 0] = at
    feed(rows, [values[at - 1]], first_step=at, shifted=True)
    feed(rows, values[at:], first_step=at + 1)
    return rows, values


@pytest.mark.parametrize("after", [0, 3])  # at the shift, and 3 values after it
def test_after_a_level_shift_the_ars_on_the_changes_go_on_from_the_new_level_at_the_slope(after):
    # a counter's reset read as a change of -297,000 among changes of 1,000 was carried on by both for 12
    # steps (ar_changes to -442,527, its path bound) and the served mean, weighted 0.95 on them, cut to 0
    # where 3,903 came (a new user's, session 55): the change across a level shift reads as the one before it
    at = 200
    rows, values = ramp_stepped_down(at + after, at, -500.0)
    path = experts.paths(rows, torch.tensor([len(values)]), 12)[0, :, :, 0]
    for member in ("ar_changes", "ar"):
        forecast = path[:, experts.NAMES.index(member)].tolist()
        steps = [b - a for a, b in zip([values[-1], *forecast[:-1]], forecast, strict=True)]
        assert all(8.0 < s < 12.0 for s in steps), (member, steps)


def test_a_level_shift_does_not_grow_the_local_scale():
    # the scale took the shift's change (15 times its size after the counter's reset): the changes' AR's
    # drift, in units of the scale, then forecast 6 times the slope (10,330 for 3,903 after 2,938)
    rows, _ = ramp_stepped_down(200, 200, -500.0)
    assert float(rows["x_scale"][0, 0]) < 12.0
