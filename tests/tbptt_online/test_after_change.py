"""After a change of a series: members that have not caught up, and the widths (``after_change``, ``calibration``)."""

from __future__ import annotations

import numpy as np
import pytest

from tbptt_online import Forecaster, ForecasterConfig, after_change, combination
from tests.tbptt_online.streams import ar1_stream

# -- the rule by hand ---------------------------------------------------------------------------------------


def _origins(members: int, horizons: int, made: dict[tuple[int, int], list[float]], half: float):
    """A store of one row: c_origin [1, Hc, Hc, E + 4, 1] with the members' forecasts ``made[(origin, h)]`` and
    the half-width ``half`` served with each, c_origin_ref 0."""
    origin = np.zeros((1, horizons, horizons, members + 4, 1), dtype=np.float32)
    for (o, h), forecasts in made.items():
        origin[0, o % horizons, h - 1, :members, 0] = forecasts
        origin[0, o % horizons, h - 1, members + 1, 0] = half
    return origin, np.zeros((1, horizons, 1))


def test_a_member_whose_forecasts_since_the_change_missed_by_more_than_their_widths_lags():
    # a change at step 10, seen at step 12: the forecasts made at 10 (of 11 and 12) and 11 (of 12) are scored;
    # the values 11 and 12 are 100 and 102. Member 0 forecast 99, 103 and 101 (errors 1, 1, 1: within the
    # width 2), member 1 forecast 50 each time (errors 50, 52, 52), member 2 forecast 103, 99, 105 (3, 3, 3:
    # on average 1.5 widths off)
    members, horizons = 3, 4
    made = {(10, 1): [99.0, 50.0, 103.0], (10, 2): [103.0, 50.0, 99.0], (11, 1): [101.0, 50.0, 105.0]}
    origin, ref = _origins(members, horizons, made, half=2.0)
    ring = np.zeros((1, 16, 1))
    ring[0, 10, 0], ring[0, 11, 0] = 100.0, 102.0  # steps 11 and 12 (step t at ring index t - 1)
    lags = np.empty(members, dtype=np.bool_)
    assert after_change.lagging(origin, ref, ring, 0, 0, 12, 10, members, lags) == 2
    assert lags.tolist() == [False, True, True]
    # no change, the change's own step, and Hc values after it: no rule
    assert after_change.lagging(origin, ref, ring, 0, 0, 12, 0, members, lags) == 0
    assert after_change.lagging(origin, ref, ring, 0, 0, 10, 10, members, lags) == 0
    assert after_change.lagging(origin, ref, ring, 0, 0, 14, 10, members, lags) == 0
    # every member lags: none is left out
    made = {(10, 1): [50.0] * 3, (10, 2): [50.0] * 3, (11, 1): [50.0] * 3}
    origin, ref = _origins(members, horizons, made, half=2.0)
    assert after_change.lagging(origin, ref, ring, 0, 0, 12, 10, members, lags) == 0


def test_lagging_members_take_no_weight_at_the_horizons_not_yet_scored_since_the_change():
    horizons, members = 3, 3
    combiners = np.zeros((combination.COMBINERS + 1, horizons * members))  # ``combination.scratch``'s layout
    fast = [[0.5, 0.3, 0.2], [0.4, 0.4, 0.2], [0.2, 0.6, 0.2]]
    slow = [[0.2, 0.2, 0.6], [0.1, 0.5, 0.4], [0.0, 0.5, 0.5]]
    mu = [[0.7, 0.3], [0.6, 0.4], [0.5, 0.5]]
    for h in range(horizons):
        combiners[0, h * members : (h + 1) * members] = fast[h]
        combiners[1, h * members : (h + 1) * members] = slow[h]
        combiners[combination.MIXTURE, h * combination.COMBINERS : h * combination.COMBINERS + 2] = mu[h]
    weights = np.array(
        [[m[0] * f + m[1] * s for f, s in zip(fh, sh, strict=True)] for fh, sh, m in zip(fast, slow, mu, strict=True)]
    )
    before = weights.copy()
    after_change.dropped(weights, combiners, np.array([False, True, False]), 1)  # one value seen since it
    assert weights[0].tolist() == before[0].tolist()  # h = 1: scored since the change, as it was
    # h = 2: fast (0.4, 0, 0.2) / 0.6, slow (0.1, 0, 0.4) / 0.5, mixed 0.6 / 0.4
    assert weights[1] == pytest.approx([0.6 * 0.4 / 0.6 + 0.4 * 0.1 / 0.5, 0.0, 0.6 * 0.2 / 0.6 + 0.4 * 0.4 / 0.5])
    # h = 3: the slow combiner's kept members (0, 0.5) / 0.5; the fast one's (0.2, 0.2) / 0.4
    assert weights[2] == pytest.approx([0.5 * 0.5, 0.0, 0.5 * 0.5 + 0.5 * 1.0])
    assert weights.sum(axis=1) == pytest.approx([1.0, 1.0, 1.0])


def test_the_pooled_combiner_keeps_its_half_of_the_one_step_weights_scored_since_the_change():
    # the pooled combiner weighs members by the mean of the fast one's weights at h and at h = 1
    # (``combination.POOLED``): its half at h leaves the lagging members out with the fast one's; its half at
    # h = 1 has scored the values seen since the change, so a lagging member keeps its share of it, as at h = 1
    horizons, members = 2, 3
    combiners = np.zeros((combination.COMBINERS + 1, horizons * members))  # ``combination.scratch``'s layout
    fast, slow = [[0.5, 0.3, 0.2], [0.4, 0.4, 0.2]], [[0.2, 0.2, 0.6], [0.1, 0.5, 0.4]]
    mu = [[0.5, 0.2, 0.3], [0.4, 0.2, 0.4]]  # fast, slow, pooled
    for h in range(horizons):
        combiners[0, h * members : (h + 1) * members] = fast[h]
        combiners[1, h * members : (h + 1) * members] = slow[h]
        combiners[combination.MIXTURE, h * combination.COMBINERS : (h + 1) * combination.COMBINERS] = mu[h]
    weights = np.array(
        [[m[0] * f + m[1] * s + m[2] * (f + o) / 2 for f, s, o in zip(fh, sh, fast[0], strict=True)] for fh, sh, m in
         zip(fast, slow, mu, strict=True)]
    )  # fmt: skip
    before = weights.copy()
    after_change.dropped(weights, combiners, np.array([False, True, False]), 1)
    assert weights[0].tolist() == before[0].tolist()
    # h = 2: fast (0.4, 0, 0.2) / 0.6, slow (0.1, 0, 0.4) / 0.5, pooled half the fast one's so, half (0.5, 0.3, 0.2)
    kept = [0.4 / 0.6, 0.0, 0.2 / 0.6]
    expected = [0.4 * f + 0.2 * s + 0.4 * (f + o) / 2 for f, s, o in zip(kept, [0.2, 0.0, 0.8], fast[0], strict=True)]
    assert weights[1] == pytest.approx(expected)
    assert weights[1, 1] == pytest.approx(0.4 * 0.3 / 2)  # the lagging member: its one-step share, in the pooled half
    assert weights[1].sum() == pytest.approx(1.0)


# -- a level shift on autocorrelated noise -------------------------------------------------------------------


def test_after_a_level_shift_the_12_step_forecasts_follow_the_new_level_and_the_widths_leave_the_old_one():
    # A new user's (session 59): level 50 + AR(1) noise, a level shift at value 330. From the value that makes
    # it a shift (the third) the 12-step forecasts of the next 20 origins missed by 9.1, 2.0 and 5.3 on
    # average (the median member at the old level, the long AR on the levels -39 to 137 for 110, the 12-step
    # weights those of before the change for 12 values), and their intervals were 34 to 74 wide each side
    # (the shift's own errors stepping the widths; 90-100 % of the values fell within them). Now the errors
    # are 1.3-2.8 and the half-widths 2.9-6.0, and 75 % of the values fall within them (90 % asked: the first
    # origins' widths are those before the change, and a 12-step error of AR(1) noise stays for many origins).
    at, errors, halves, covered = 330, [], [], []
    for seed, phi, season, shift in [(0, 0.7, False, 60.0), (1, 0.9, False, -30.0), (2, 0.8, True, 60.0)]:
        values = ar1_stream(seed, phi, season, at + 34)
        values[at:] += shift
        f = Forecaster(ForecasterConfig())
        error, half, inside = [], [], []
        for t, v in enumerate(values[: at + 22]):
            f.observe("s", float(v))
            if t >= at + 2:  # from the third value of the new level (the outlier rule's shift) on
                made, target = f.forecast("s", 12), values[t + 12]
                error.append(abs(made.mean[11] - target))
                half.append((made.upper[11] - made.lower[11]) / 2)
                inside.append(made.lower[11] <= target <= made.upper[11])
        errors.append(np.mean(error))
        halves.append(np.mean(half))
        covered += inside
    assert max(errors) < 3.0, errors  # (9.1, 2.0, 5.3 before)
    assert max(halves) < 10.0, halves  # (74, 34, 62 before)
    assert np.mean(covered) >= 0.7, np.mean(covered)  # (0.97 before, at widths 28-74)
