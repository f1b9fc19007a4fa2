"""Outliers (``outliers.py``): a value far outside its served interval is learned from at the
interval's bound; a run of them (a level shift, or a change of spread) is learned from as it came."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from tbptt_online import Forecaster, ForecasterConfig, hybrid, outliers
from tbptt_online.intervals import z_value
from tests.tbptt_online.streams import ar1_stream

Z = z_value(0.9)


def judge(value: float, **kwargs) -> tuple[float, int, int, float]:
    """One value through ``outliers.clean``: (taken, run, count, largest) after it (``judged``)."""
    return judged(value, **kwargs)[:4]


def shifted_by(value: float, **kwargs) -> bool:
    """Whether ``value`` (``judge``'s arguments) makes its run a level shift."""
    return judged(value, **kwargs)[4]


def judged(
    value: float,
    *,
    mean: float = 10.0,
    half: float = 1.0,
    step: int = 30,
    run: int = 0,
    largest: float = 0.0,
    observed: bool = True,
    sigmas: float = 6.0,
    shift_run: int = 2,
    shifts: int = 0,
    last: float = math.nan,
    seasons: tuple[int, int] = (0, 0),
    recent: np.ndarray | None = None,
    recent_values: np.ndarray | None = None,
) -> tuple[float, int, int, float, bool]:
    """One value through ``outliers.clean``: (taken, run, count, largest, shifted) after it
    (``shifts``: the level shifts before it, ``last`` the value before it as it came, ``seasons``
    the held ones, ``recent`` the steps of the last values beyond their bounds and ``recent_values``
    those values, [RECENT] each, updated in place); its flag says whether it was taken at the bound
    (the count grew)."""
    state = [np.array([[run]], np.int64), np.array([[0]], np.int64), np.array([[largest]])]
    recent = np.zeros(outliers.RECENT, np.int64) if recent is None else recent
    recent_values = np.zeros(outliers.RECENT) if recent_values is None else recent_values
    state += [np.array([[shifts]], np.int64), recent.reshape(1, 1, -1), recent_values.reshape(1, 1, -1)]
    state += [np.zeros((1, 1), np.int64)]  # o_shift_at: no change found before
    taken, flagged, shifted = np.empty((1, 1)), np.empty((1, 1), bool), np.empty((1, 1), bool)
    outliers.clean(
        np.array([step]),
        np.array([[value]]),
        np.array([[observed]]),
        np.array([[mean]]),
        np.array([[mean + half]]),
        np.array([[last]]),
        np.array([[seasons]], np.int64),
        Z,
        sigmas,
        shift_run,
        *state,
        taken,
        flagged,
        shifted,
    )
    assert bool(flagged[0, 0]) == (int(state[1][0, 0]) == 1)
    # a level shift (where the trend members' level starts again) is a change that added a shift
    assert not shifted[0, 0] or int(state[3][0, 0]) == shifts + 1
    # a change found (of the level or the spread) is recorded at its step, where the seasons' re-checks stitch
    assert int(state[6][0, 0]) == (step if int(state[3][0, 0]) == shifts + 1 else 0)
    run_after, count, largest_after = (a[0, 0] for a in state[:3])
    return float(taken[0, 0]), int(run_after), int(count), float(largest_after), bool(shifted[0, 0])


def test_a_value_within_the_bound_is_taken_as_it_came_and_ends_a_run():
    # bound: 6 * 1.0 / z(0.9) = 3.648 from the mean; the largest error taken fades by 0.999
    assert judge(13.0, run=1, largest=2.0) == (13.0, 0, 0, 3.0)
    assert judge(9.5, largest=2.0) == (9.5, 0, 0, 0.999 * 2.0)


def first_taken(distance: float, bound: float = 6.0 / Z, half: float = 1.0) -> float:
    """How far from its forecast a run's first outlier ``distance`` from it is taken, by hand (``judge``'s
    defaults): its bound up to twice the bound, the interval's edge from three times, linear between."""
    reach = distance / bound
    return bound if reach <= 2.0 else half if reach >= 3.0 else bound + (reach - 2.0) * (half - bound)


def test_a_run_first_outlier_is_taken_at_its_bound_or_past_three_bounds_at_the_intervals_edge():
    # since session 60 (a new user's, ``test_the_value_after_one_spike_...``): at its bound (10 + 6 / z here), a
    # spike far past it moved the members that follow the last value (the naive, the ARs, the fast levels) most of
    # the bound toward it, and the next, ordinary value fell outside its interval
    bound = 6.0 / Z
    assert judge(10.0 + 1.5 * bound) == (10.0 + bound, 1, 1, 0.0)
    assert judge(10.0 + 2.0 * bound) == (10.0 + bound, 1, 1, 0.0)
    assert judge(10.0 + 2.5 * bound) == pytest.approx((10.0 + (bound + 1.0) / 2, 1, 1, 0.0), abs=1e-12)
    assert judge(10.0 - 3.0 * bound) == (10.0 - 1.0, -1, 1, 0.0)
    assert judge(10.0 + 50.0 * bound) == (11.0, 1, 1, 0.0)


def test_a_value_far_past_the_bound_is_taken_at_the_intervals_edge_on_its_side():
    edge = 1.0  # the served half-width
    assert judge(1e15) == (10.0 + edge, 1, 1, 0.0)
    assert judge(-50.0) == (10.0 - edge, -1, 1, 0.0)
    assert judge(-50.0, run=1) == (10.0 - edge, -2, 1, 0.0)  # the other side right after one: at its edge too
    assert judge(-50.0, run=3) == (10.0 - edge, -1, 1, 0.0)  # the other side of a change: a new run
    assert judge(-50.0, run=-3, shift_run=5) == (10.0 - edge, -4, 1, 0.0)  # within a run on one side: at the edge


def test_a_value_past_its_bound_a_season_and_two_after_like_ones_is_taken_as_it_came():
    recent, values = np.zeros(outliers.RECENT, np.int64), np.zeros(outliers.RECENT)
    kept = {"seasons": (24, 0), "recent": recent, "recent_values": values}
    assert judge(110.0, step=30, **kept)[:3] == (11.0, 1, 1)  # beyond its bound: at the interval's edge
    assert recent.tolist().count(30) == 1 and values.tolist().count(110.0) == 1  # remembered, signed by its side
    # a season later, like it: still at the edge (one like value a season before may be chance: a second
    # test's two spikes a season apart had the model forecast a third)
    assert judge(111.0, step=54, **kept)[:3] == (11.0, 1, 1)
    # two seasons later, like both: recurring, taken as it came, the largest error as it was; it starts a run
    # on its side (a level shift a season after a spike is found at its next value) or keeps one there
    assert judge(112.0, step=78, largest=2.0, **{**kept, "recent": recent.copy(), "recent_values": values.copy()}) == (
        112.0,
        1,
        0,
        2.0,
    )
    assert judge(112.0, step=78, run=1, largest=2.0, **kept) == (112.0, 1, 0, 2.0)
    # ... but within a change on the other side it leaves the run as it is (a review: a recurring peak during
    # a change below broke it up, the next value was taken at its bound and a spurious change counted)
    within_change = {**kept, "recent": recent.copy(), "recent_values": values.copy()}
    assert judge(112.0, step=78, run=-3, **within_change)[:3] == (112.0, -3, 0)
    assert sorted(recent.tolist())[-3:] == [30, 54, 78] and sorted(values.tolist())[-3:] == [110.0, 111.0, 112.0]

    def fresh():
        return {"seasons": (24, 0), "recent": recent.copy(), "recent_values": values.copy()}

    # two seasons after the last two but below, or above but not like them (a review: 1e9 after a flagged 20 went
    # through), or above at another distance, or with the season not held: each taken at the edge, flagged
    assert judge(-90.0, step=102, **fresh())[2] == 1
    assert judge(1e9, step=102, **fresh())[2] == 1
    assert judge(112.0, step=103, **fresh())[2] == 1
    assert judge(112.0, step=102, **{**fresh(), "seasons": (0, 0)})[2] == 1
    # the second season counts as the first; the oldest step is the one written over
    both = np.array([-5, 31, 32, 33, 34, -173, 36, 37], np.int64)
    both_values = np.array([-90.0, 0.0, 0.0, 0.0, 0.0, -91.0, 0.0, 0.0])
    assert judge(-90.0, step=168 * 2 + 5, seasons=(24, 168), recent=both, recent_values=both_values)[0] == -90.0
    assert both.tolist() == [-341, 31, 32, 33, 34, -173, 36, 37] and both_values[0] == -90.0


def test_a_weekly_value_recurs_beside_a_daily_outlier_in_the_values_kept():
    # a review: with 8 values kept, a daily outlier pushed the weekly value's entries out before its third week
    def third_week_taken(kept: int) -> float:
        recent, values = np.zeros(kept, np.int64), np.zeros(kept)
        arrays = {"seasons": (24, 168), "recent": recent, "recent_values": values}
        for day in range(15):
            judge(110.0, step=1000 + 24 * day + 3, **arrays)  # a daily one, recorded (recurring from day 2)
            taken = judge(-90.0, step=1000 + 24 * day + 10, **arrays)[0] if day % 7 == 0 else None
        return taken

    assert third_week_taken(outliers.RECENT) == -90.0  # recurring: taken as it came
    assert third_week_taken(8) == 10.0 - 1.0  # its entries pushed out: at the interval's edge


def test_a_value_like_the_one_before_it_is_no_outlier_after_a_value_within_its_bound():
    # the naive forecast would have had it (within the bound, 3.648, of the value before as it came): a served
    # forecast far from an ordinary value no longer takes it at its bound toward itself (a hostile test)
    assert judge(20.0, run=0, last=19.0, largest=2.0) == (20.0, 0, 0, 2.0)
    assert judge(20.0, run=0, last=10.2)[:3] == (10.0 + first_taken(10.0), 1, 1)  # unlike the one before: an outlier
    # ... only where the served mean (10) left the value before by more than the bound: after a high value
    # within its bound (13), a moderate spike (16) is one (a review: it was taken as it came)
    assert judge(16.0, run=0, last=13.0)[:3] == (10.0 + 6.0 / Z, 1, 1)  # within twice its bound: at it
    assert judge(20.0, run=1, last=19.0)[:2] == (20.0, 3)  # after an outlier, the run's own rule (a change)


def test_two_spikes_a_season_apart_by_chance_are_not_forecast_again_and_a_shift_after_one_is_found():
    # a second hostile test (session 39): with one like value a season before enough, two +30 spikes 24 apart
    # had the model forecast a third, and the ordinary value that came was taken at its bound toward it (12
    # such pairs: one-step MAE 1.30 against 0.92 before the rule); and a level shift of +50 a season after a
    # spike of +50 was found a value late, the served forecast cut to 0 where 59 came (MAE over the 100 values
    # from the shift 2.76 against 1.37)
    def daily(n: int, rng: np.random.Generator) -> np.ndarray:
        t = np.arange(n)
        return 10 + np.sin(2 * np.pi * t / 24) + 0.3 * rng.standard_normal(n)

    rng = np.random.default_rng(5)
    values = daily(1200, rng)
    starts = rng.choice(np.arange(100, 1150), 12, replace=False)
    for t0 in starts:
        values[t0] += 30
        values[t0 + 24] += 30
    model = Forecaster(ForecasterConfig())
    served = np.array([model.observe("p", float(v)).forecast_made.mean or 0.0 for v in values])
    assert all(abs(served[t0 + 48] - values[t0 + 48]) < 5 for t0 in starts if t0 + 48 not in set(starts + 24))
    shifted = daily(600, np.random.default_rng(24))
    shifted[400] += 50
    shifted[424:] += 50
    model = Forecaster(ForecasterConfig(outlier_run=2))  # the rule of a shift at its second value (default 3 since
    # session 50: found at 426, the forecasts after it no lower than 9.2 in 4 seeds, MAE over the 100 values 1.9-2.2)
    made = [model.observe("s", float(v)).forecast_made for v in shifted]
    assert min(made[t].mean for t in range(426, 440)) > 45  # found at 425: never cut toward 0 after it
    assert np.mean([abs(made[t].mean - shifted[t]) for t in range(424, 524)]) < 2.0


@pytest.mark.parametrize(("step", "value"), [(48, 0.0), (40, 110.0)])
def test_no_value_recurs_before_its_season_has_passed(step, value):
    # a review: at t = m the empty entries (step 0, value 0) matched, and at t < m the sign of t - m turned a
    # dip at step 48 - 40 = 8 into a match for a value above at 40 (a configured season is held from the
    # first value)
    recent, values = np.zeros(outliers.RECENT, np.int64), np.zeros(outliers.RECENT)
    recent[0], values[0] = -8, 110.0
    assert judge(value, step=step, seasons=(48, 0), recent=recent, recent_values=values)[2] == 1


def test_a_spike_at_the_same_hour_every_day_is_learned_and_never_runs_away():
    # a nightly job's one reading on an hourly series: until session 39 every spike of 1e6 was taken at its
    # bound (one-step MAE 38,600 times the seasonal naive's), and spikes of 1e4 ran the spike hour's
    # forecast away to 1.95e9 (a hostile test: seed 7 among others)
    for spike in (1e4, 1e6):
        rng = np.random.default_rng(7)
        values = rng.normal(10.0, 1.0, 24 * 60)
        values[5::24] = spike
        model = Forecaster(ForecasterConfig(season_length=24))
        served, flagged = [], []
        for value in values:
            result = model.observe("s", float(value))
            served.append(result.forecast_made.mean)
            flagged.append(result.outlier)
        served = np.array([math.nan if x is None else x for x in served])
        last_days = slice(24 * 50, None)
        error = np.abs(served[last_days] - values[last_days]).mean()
        seasonal_naive = np.abs(values[last_days] - values[24 * 49 : -24]).mean()
        assert error < 2.0 * seasonal_naive, (spike, error, seasonal_naive)
        assert np.nanmax(np.abs(served)) < 2 * spike
        assert sum(flagged[24 * 10 :]) == 0  # recurring from the second day on: none taken at its bound


def test_a_value_inside_its_served_interval_is_never_an_outlier():
    # sigmas 1 with a 90 % interval: 1 spread is 1 / z(0.9) = 0.61 of the half-width, yet the
    # half-width itself bounds (the reviewer's case: 10.8 inside 10 +- 1 was clipped to 10.39)
    assert judge(10.8, sigmas=1.0) == (10.8, 0, 0, 10.8 - 10.0)
    assert judge(11.5, sigmas=1.0) == (11.0, 1, 1, 0.0)


def test_the_bound_is_twice_the_largest_error_taken_when_that_is_wider():
    # a series whose errors have been large (bursts, shifts) is not clipped by its interval alone
    assert judge(17.0, largest=4.0) == (17.0, 0, 0, 7.0)
    assert judge(19.0, largest=4.0) == (18.0, 1, 1, 4.0)  # past 2 M = 8, within twice it: at its bound


def test_a_value_far_past_its_sigmas_is_flagged_though_past_errors_let_it_be_taken_as_it_came():
    # M is the learning's (a flow's bursts taken as they came), not the alert's: past FLAG_REACH times the
    # sigmas' bound (3 x 6 / z = 10.94 here) a value is flagged and counted, and still taken as it came
    assert judge(22.0, largest=10.0) == (22.0, 0, 1, 12.0)
    assert judge(20.0, largest=10.0) == (20.0, 0, 0, 10.0)  # within: taken as it came, as before


def test_spikes_after_a_sustained_incident_are_still_flagged():
    # A new user (session 55): hourly latency, a 6-hour incident at three times the level, then single
    # spikes of three times: the incident's return (a second shift) put its error in M, twice M covered every
    # later spike, and none of 22 over 60 days was flagged (the same spikes without the incident all were).
    # Now each one past FLAG_REACH times its sigmas' bound, from the interval served for it, is flagged.
    rng = np.random.default_rng(4)
    level = [120 + 40 * max(0.0, math.sin(math.pi * (i % 24 - 6) / 16)) ** 1.5 + rng.normal(0, 6) for i in range(700)]
    spikes = (400, 437, 481, 530, 566, 611, 659)  # irregular: none recurs a season or two later
    f = Forecaster(ForecasterConfig(season_length=24))
    far, flagged = [], []
    for i, value in enumerate(level):
        factor = 3.0 if 300 <= i < 306 or i in spikes else 1.0
        result = f.observe("lat", value * factor)
        if i in spikes:
            made = result.forecast_made
            half = made.upper - made.mean
            bound = max(5.0 * half / Z, half)  # outlier_sigmas 5 (the default) over z(0.9)
            far.append(abs(value * factor - made.mean) > outliers.FLAG_REACH * bound)
            flagged.append(result.outlier)
        if i in (300, 301):
            assert result.outlier  # the incident's start, taken at its bounds
    assert sum(far) >= 5  # most spikes lie that far (the test can fail)
    assert all(flag for flag, beyond in zip(flagged, far, strict=True) if beyond), (flagged, far)


def test_a_run_on_one_side_is_a_level_shift_taken_as_it_came():
    # (a run that is a change is kept at outlier_run + 1 or more: the next value knows it)
    assert judge(60.0, run=1, shifts=1) == (60.0, 3, 0, 50.0)  # a second shift: its error joins M
    assert judge(60.0, run=2, shift_run=3, shifts=1) == (60.0, 4, 0, 50.0)


def test_a_level_shift_is_flagged_at_the_value_that_makes_it_and_a_change_of_spread_is_not():
    # the flag restarts the trend members' level there (``expert_kernels.advance``): a shift is not a trend
    assert shifted_by(60.0, run=1) and shifted_by(-40.0, run=-1)  # the second on one side: a level shift
    assert not shifted_by(60.0)  # the first: taken at its bound, a spike yet
    assert not shifted_by(70.0, run=3, shifts=1)  # the same shift going on: flagged once
    assert not shifted_by(-50.0, run=2)  # the third in a row on alternating sides: a change of spread
    assert not shifted_by(10.5, run=1)  # within the bound: the run ends
    assert shifted_by(60.0, run=2, shift_run=3) and not shifted_by(60.0, run=1, shift_run=3)
    # a change whose run crossed sides is one of spread, even where its last two are on one side
    # (a review: + - - at the default and + + - - with outlier_run 3 restarted the trends' level)
    assert not shifted_by(-50.0, run=-2) and not shifted_by(-50.0, run=-3, shift_run=3)


def test_a_series_first_level_shift_does_not_widen_the_bound():
    # M only fades: one shift says little of the next value (a spike after it is still clipped)
    assert judge(60.0, run=1, largest=2.0) == (60.0, 3, 0, 0.999 * 2.0)
    assert judge(70.0, run=3, largest=2.0, shifts=1) == (70.0, 4, 0, 0.999 * 2.0)  # the same run goes on


def test_a_run_on_alternating_sides_is_a_change_of_spread_taken_as_it_came():
    # An idle series that starts to alternate +-1 had every value taken at its bound (each one the
    # first of a run on its side), learned from its own clipped values, and its forecasts ran away
    # (-2e39 after 150 values): outlier_run + 1 in a row, on either sides, are a change.
    assert judge(-50.0, run=2) == (-50.0, -3, 0, 0.0)
    assert judge(70.0, run=-2, shifts=1) == (70.0, 3, 0, 60.0)  # a change: it counts as a shift
    # outlier_run = 3: the third in a row is a change when it is on the side of the one before it,
    # else at the interval's edge; the fourth is one whatever the sides
    assert judge(-60.0, run=-2, shift_run=3) == (-60.0, -4, 0, 0.0)
    assert judge(60.0, run=-2, shift_run=3) == (11.0, 3, 1, 0.0)
    assert judge(-60.0, run=3, shift_run=3) == (-60.0, -4, 0, 0.0)


def test_a_value_near_the_outlier_before_it_goes_on_with_its_run_whatever_its_side():
    # A regime change (a cycle 0..6, then 1.0 for good): the first 1.0 is an outlier below its forecast
    # (6), the second one above its own (-0.1), and the fourth was within its bound by chance, which ended
    # the run: on alternating sides, no change was found for 12 values, and 5 of them were taken at
    # their bounds (a hostile test). A value within the bound (3.648) of the outlier before it, as it
    # came, is on that one's side: the series stays where it went.
    # (the value before, 14.5, was an outlier below its own forecast; this one's is 10)
    assert judge(15.0, run=-1, last=14.5) == (15.0, 3, 0, 0.0)  # near 14.5: a change, taken as it came
    assert judge(20.0, run=-1, last=14.5) == (10.0 + first_taken(10.0), 2, 1, 0.0)  # 5.5 from it: an outlier
    assert judge(15.0, run=-3, last=14.5, shifts=1) == (15.0, 4, 0, 0.0)  # within a change: it goes on
    assert judge(20.0, run=0, last=12.0) == (10.0 + first_taken(10.0), 1, 1, 0.0)  # no outlier before: a run starts
    assert judge(15.0, run=-1, last=14.5, shift_run=3) == (11.0, 2, 1, 0.0)  # outlier_run 3: at the edge


def test_after_a_regime_change_few_values_are_taken_at_their_bound_and_coverage_recovers():
    f = Forecaster(ForecasterConfig(outlier_run=2))  # (the default 3 since session 50: 2 taken, 25 covered)
    for k in range(300):
        f.observe("s", float(k % 7))
    covered, flagged = 0, 0
    for _ in range(40):
        forecast = f.forecast("s")
        covered += forecast.lower[0] <= 1.0 <= forecast.upper[0]
        result = f.observe("s", 1.0)  # taken at its bound (or the edge): flagged and in a run
        flagged += result.outlier and int(f.store.tensors["o_run"][f.store.slot_of("s"), 0]) != 0
    # before the fix: 5 taken at their bound, coverage 0.575 (0.75 with outliers off); after: 2 and 0.675
    # (counted by their run: since session 55 a value taken as it came is flagged too where it lay far past its
    # interval, "What is flagged"). 25 since session 56: this noise-free cycle's 7 is found at value 16 (a clock
    # period at 2 cycles), not 24, and after 284 exact fits its intervals are narrower (1e-5 wide at value 300, not
    # 1e-2); with noise of sd 0.01 on the cycle, 30 -> 32 covered, at 0.1 32 both
    assert flagged <= 2 and covered >= 25, (flagged, covered)


def test_within_a_run_shorter_than_outlier_run_a_value_is_taken_at_the_intervals_edge():
    # At their bounds, a run of 99 (outlier_run = 100) was a run of misses: each widened the
    # interval, so the bound, by exp(0.36), and the members learned an exponential ramp (a step
    # from 0 to 100: forecasts of 3e7). At the edge the calibration counts it covered.
    assert judge(60.0, run=1, shift_run=3) == (10.0 + 1.0, 2, 1, 0.0)
    assert judge(-60.0, run=-1, shift_run=3) == (10.0 - 1.0, -2, 1, 0.0)
    assert judge(60.0, run=0, shift_run=3) == (10.0 + 1.0, 1, 1, 0.0)  # the first too (since session 60)


@pytest.mark.parametrize(
    ("values", "config"),
    [
        ([0.0] * 150 + [(-1.0, 1.0)[t % 2] for t in range(151)], {}),
        ([5.0] * 150 + [(4.0, 6.0)[t % 2] for t in range(151)], {"outlier_sigmas": 3.0}),
        ([0.0] * 150 + [100.0] * 251, {"outlier_run": 100}),
    ],
    ids=["idle-then-alternating", "flat-then-alternating-sigmas-3", "step-with-outlier-run-100"],
)
def test_a_change_of_spread_or_a_long_run_does_not_run_the_forecasts_away(values, config):
    f = Forecaster(ForecasterConfig(**config))
    low, high = min(values), max(values)
    for v in values[:-1]:
        served = f.observe("s", v).forecast_next
        assert low - (high - low) <= served.mean <= high + (high - low)  # ran to 1e39, 1e54 and 3e7
    assert abs(served.mean - values[-1]) < 0.1 * (high - low)  # the next value, learned


def test_young_series_missing_values_and_values_without_an_interval_are_not_judged():
    assert judge(1e6, step=24) == (1e6, 0, 0, 0.0)  # the first 24 values: the interval is a guess yet
    assert judge(1e6, step=25)[2] == 1
    taken, run, count, largest = judge(math.nan, observed=False, run=1)  # missing: nothing changes
    assert math.isnan(taken) and (run, count, largest) == (1, 0, 0.0)
    assert judge(1e6, half=math.nan, run=1) == (1e6, 0, 0, 0.0)  # no interval served: nothing to judge by


def seasonal(i: int, rng: random.Random) -> float:
    return 10.0 + math.sin(2 * math.pi * i / 12) + rng.gauss(0.0, 0.1)


def after_spike_error(spike: float | None, **config) -> tuple[float, Forecaster]:
    """MAE of the one-step forecasts of the 60 values after a spike at value 200 of a
    seasonal stream (level 10, amplitude 1, noise 0.1)."""
    f = Forecaster(ForecasterConfig(season_length=12, **config))
    rng = random.Random(0)
    errors = []
    for i in range(261):
        v = seasonal(i, rng)
        if i > 200:
            errors.append(abs(f.forecast("s").mean[0] - v))
        f.observe("s", spike if i == 200 and spike is not None else v)
    return sum(errors) / len(errors), f


@pytest.mark.parametrize("spike", [110.0, 1e15, -1e15])
def test_one_spike_no_longer_spoils_the_forecasts_after_it(spike):
    clean, _ = after_spike_error(None)
    after, f = after_spike_error(spike)
    assert after < 1.2 * clean  # 0.109 against 0.107 for 110
    assert f.series_stats("s").outliers == 1
    # what it was before (the test's ground truth that the defect is real): 2.9 for 110, 8.7e12 for 1e15
    # (0.65 for 110 since a season later the excursions repair the ring: see excursions.py)
    spoiled, g = after_spike_error(spike, outlier_sigmas=None)
    assert spoiled > 5 * clean and g.series_stats("s").outliers == 0


def test_the_spike_is_still_scored_and_reported_as_it_came():
    f = Forecaster(ForecasterConfig(season_length=12))
    rng = random.Random(0)
    assert not any(f.observe("s", seasonal(i, rng)).outlier for i in range(100))
    before = f.series_stats("s")
    result = f.observe("s", 1e6)
    assert result.value == 1e6 and result.outlier  # flagged: learned from at its bound
    after = f.series_stats("s")
    made = result.forecast_made.mean
    scored = after.mae * (after.count - 1) - before.mae * (before.count - 1)  # the first value is not scored
    assert scored == pytest.approx(abs(1e6 - made), rel=1e-3)  # its error counts in full in the statistics


def test_a_level_shift_is_followed_from_its_second_value():
    f = Forecaster(ForecasterConfig(season_length=12, outlier_run=2))  # (the default since session 50: 3)
    rng = random.Random(0)
    for i in range(200):
        f.observe("s", seasonal(i, rng))
    errors = []
    for i in range(200, 210):
        v = seasonal(i, rng) + 100.0  # a new level, 1,000 noise deviations up
        errors.append(abs(f.forecast("s").mean[0] - v))
        f.observe("s", v)
    # the first is taken as a spike, so the second is missed too; the second is learned from as it
    # came, and the shift is followed one value later than without outliers (errors 100, 100, 72, 14,
    # 1.1, 0.4 against 100, 73, 10, 1.1, 0.04, 0.2). Weakened in session 20 from errors[3] < 0.1
    # errors[0] (it read 8.8): the combiners' weights now sharpen with the evidence of their mean
    # losses (combination.EVIDENCE), and the slow one, 200 values into a calm series, leans on its
    # long-run leader one value longer. Over seeds 0-7 the 30 errors after the shift sum to 2,687
    # against 2,692 before; a seed may overshoot a few values later (seed 1: 9.4 and 17.2 at the
    # 5th and 6th, against 3.9 and 0.3) as another overshot before (seed 2: 36, now 26).
    assert errors[0] > 90 and errors[1] > 90
    assert errors[2] < 0.8 * errors[1] and errors[3] < 0.15 * errors[0] and max(errors[5:]) < 0.5
    assert f.series_stats("s").outliers == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(outlier_sigmas=0.5), r"outlier_sigmas=0.5 is invalid: must be >= 1.0"),
        (dict(outlier_sigmas=math.inf), r"outlier_sigmas=inf is invalid: must be a finite number"),
        (dict(outlier_run=1), r"outlier_run=1 is invalid: must be an integer in \[2, 1000\]"),
    ],
)
def test_bad_outlier_settings_are_refused_naming_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ForecasterConfig(**kwargs)


def test_each_result_says_whether_its_value_was_taken_at_its_bound():
    """``StepResult.outlier``, from one tick's lists as from a batch spread over ticks; a
    model with outliers off, or a network-only one, flags nothing."""
    rng = random.Random(1)
    warm = [(name, seasonal(i, rng)) for i in range(60) for name in ("a", "b")]
    f = Forecaster(ForecasterConfig(season_length=12, outlier_run=2))  # (a shift at its second value)
    f.observe_many(warm)
    one_tick = f.observe_many([("a", 500.0), ("b", 10.0)])
    assert [r.outlier for r in one_tick] == [True, False]
    assert one_tick.ticks[0].lists().outlier == [True, False]
    spread = f.observe_many([("a", 10.0), ("b", -400.0), ("b", 10.0)])  # b twice: two ticks
    assert [r.outlier for r in spread] == [False, True, False]
    for config in (ForecasterConfig(season_length=12, outlier_sigmas=None), ForecasterConfig(hybrid=False)):
        g = Forecaster(config)
        g.observe_many(warm)
        assert [r.outlier for r in g.observe_many([("a", 500.0), ("b", -400.0)])] == [False, False]


def shift_then_spike(spike: float) -> tuple[bool, float]:
    """A level shift of +10 (100 noise deviations) at value 200 of the seasonal stream, then
    ``spike`` added to value 400: whether value 400 was flagged, and the MAE of the one-step
    forecasts of the 60 values after it."""
    f = Forecaster(ForecasterConfig(season_length=12))
    rng = random.Random(0)
    flagged, errors = False, []
    for i in range(461):
        v = seasonal(i, rng) + (10.0 if i >= 200 else 0.0)
        if i > 400:
            errors.append(abs(f.forecast("s").mean[0] - v))
        result = f.observe("s", v + (spike if i == 400 else 0.0))
        flagged = flagged or (i == 400 and result.outlier)
    return flagged, sum(errors) / len(errors)


def test_a_spike_after_one_level_shift_is_still_taken_at_its_bound():
    # the review's case: when the first shift's error widened the bound (to 2 x 10), a spike of 15
    # 200 values later was taken as it came, and the next 60 errors were 5 times the usual (0.546)
    _, usual = shift_then_spike(0.0)  # 0.109
    flagged, after = shift_then_spike(15.0)
    assert flagged and after < 2.5 * usual  # 0.207


def test_after_a_level_shift_the_long_forecasts_do_not_run_on_past_the_new_level():
    # a hostile test: N(10, 1) for 150 values, then N(1,000, 10). Smoothed, the shift became the
    # trend members' trend (the multiplicative one's 12-step forecast ran to 20 times the new level):
    # the served 12-step mean reached 2,447, 2,355 and 2,397 on these seeds; now at most 1,016
    for seed in (1, 2, 3):
        rng = random.Random(seed)
        f = Forecaster(ForecasterConfig())
        for t in range(180):
            f.observe("s", rng.gauss(10.0, 1.0) if t < 150 else rng.gauss(1000.0, 10.0))
            if t >= 150:
                assert f.forecast("s", 12).mean[11] < 1300.0, (seed, t)


def test_after_a_drop_by_a_million_the_forecasts_follow_the_new_level_within_200_values():
    # a change of units: a daily series 10 + 3 sin + N(0, 1) times 1e6 for 600 values, then as it is. The
    # long AR on the levels kept its mean at the old level (forgetting 0.995 a value) and a weight of 5e-4
    # to 1e-3: the served one-step MAE over values 200-400 after the drop was 1,683 times the naive's (a
    # hostile test, session 39, seed 1); its mean and its fit's own mean now start again at such a change,
    # also where the old scale's outlier bound let the values after the drop through (seeds 2 and 4, a review)
    for seed in range(1, 7):
        rng = np.random.default_rng(seed)
        t = np.arange(1000)
        base = 10 + 3 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, t.size)
        values = np.where(t < 600, base * 1e6, base)
        model = Forecaster(ForecasterConfig())
        made = [model.observe("s", float(v)).forecast_made.mean for v in values]
        served = np.array([math.nan if mean is None else mean for mean in made])
        after = slice(800, 1000)
        naive = np.abs(values[after] - values[799:999]).mean()
        assert np.abs(served[after] - values[after]).mean() < naive, seed


@pytest.mark.parametrize("season", [None, 24])
def test_a_sensors_burst_of_two_wrong_values_leaves_the_forecasts_as_without_it(season):
    """A new user (session 50): 4294967295 sent twice, on N(20, 3 / 1.645) and on a daily 20 + 3 sin + N(0, 0.5).
    With a shift at the second value (``outlier_run=2``, the default until then) the burst was a level shift
    and its return another: the next forecasts were off by 10^6 to 10^9, and more than 6 off at 14 and 182 of
    the next 600 values. With the default 3 both values are taken at their bounds."""
    rng = np.random.default_rng(2)
    t = np.arange(1200)
    y = (
        20 + rng.normal(0, 3, t.size) / 1.645
        if season is None
        else 20 + 3 * np.sin(2 * np.pi * t / season) + rng.normal(0, 0.5, t.size)
    )
    errors = {}
    for burst in (False, True):
        f = Forecaster(ForecasterConfig())
        made = [
            f.observe("s", 4294967295.0 if burst and k in (600, 601) else float(v)).forecast_made.mean
            for k, v in enumerate(y)
        ]
        errors[burst] = np.abs(np.array(made[602:]) - y[602:])
    assert errors[True].max() < 6 and errors[True].mean() < 1.1 * errors[False].mean()


# -- a series' first value as a glitch (``forecaster.GLITCH_AT``): judged at value 5, against the next changes --


def _noisy(n: int, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [100 + 10 * math.sin(2 * math.pi * t / 24) + rng.gauss(0, 1) for t in range(n)]


FROZEN = dict(k1=100_000, warmup_updates=0)  # no update: the shared network's weights never change


@pytest.mark.parametrize(("first", "missing"), [(0.0, 0), (1e4, 0), (-50.0, 0), (0.0, 3)])
def test_a_first_value_far_from_the_next_four_starts_the_series_again_from_its_second(first, missing):
    # Taken in full, a first value of 0 before values about 100 (noise 1) cost 0.54-0.69 of the naive MAE over
    # the next 470 values, 0.45-0.50 without it (session 53). Restarted from at value 5, the series' whole state
    # is that of a series whose first value was its second: with the weights frozen, every field of its row is
    # the same to the bit as a forecaster's fed the values from the second on, and so is every forecast served
    # (after missing values, a review's: the restart's step offset counts them too)
    values = _noisy(60)
    f, g = Forecaster(ForecasterConfig(**FROZEN)), Forecaster(ForecasterConfig(**FROZEN))
    steps = [f.observe("a", v).step for v in [math.nan] * missing + [first, *values[1:]]]
    for v in values[1:]:
        g.observe("a", v)
    assert steps == list(range(1, 61 + missing))  # its steps go on: the restart is not seen in them
    assert f.series_stats("a").restarts == 1 and g.series_stats("a").restarts == 0
    assert f.series_stats("a").count == 60 + missing  # every value counted once, the glitch too
    fa, ga = f.store.slots["a"], g.store.slots["a"]
    for name, tensor in f.store.tensors.items():  # (the statistics: f's count the glitch's, test_coverage_by_horizon)
        if name not in ("stats", "steps", *hybrid.COVERAGE):
            torch.testing.assert_close(tensor[fa], g.store.tensors[name][ga], rtol=0, atol=0, equal_nan=True, msg=name)
    assert f.store.tensors["steps"][fa] == g.store.tensors["steps"][ga] == 59  # the state's own steps
    made, served = f.forecast("a", 12), g.forecast("a", 12)
    assert (made.mean, made.lower, made.upper, made.step) == (served.mean, served.lower, served.upper, 60 + missing)
    assert f.observe("a", 100.0).step == 61 + missing == Forecaster.from_state_dict(f.state_dict()).forecast("a").step


def test_a_first_value_restarted_from_is_scored_as_it_was_served_and_the_state_round_trips():
    values = _noisy(5)
    f, g = Forecaster(ForecasterConfig(**FROZEN)), Forecaster(ForecasterConfig(**FROZEN))
    results = [f.observe("a", v) for v in [0.0, *values[1:]]]
    fresh = [g.observe("a", v) for v in values[1:]]
    # value 5 was served the forecast made with the glitch (its interval 0 to 293 about 106), and is scored
    # against it; its result's next forecast is the restarted state's, that of a series fed values 2 to 5
    made = results[-1].forecast_made
    assert made.upper - made.lower > 200 and f.series_stats("a").restarts == 1
    assert results[-1].forecast_next == fresh[-1].forecast_next
    assert f.series_stats("a").mae == sum(abs(r.value - r.forecast_made.mean) for r in results[1:]) / 4
    h = Forecaster.from_state_dict(f.state_dict())
    for v in _noisy(40, seed=1):
        assert f.observe("a", v) == h.observe("a", v)


@pytest.mark.parametrize(
    ("values", "restarts"),
    [
        ([0.0, 10.0, 11.0, 10.0, 11.0], 0),  # the first change exactly 10 times the largest next one: kept
        ([0.0, 10.5, 11.5, 10.5, 11.5], 1),  # just past it
        ([0.0, 100.0, 100.0, 100.0, 100.0], 0),  # the next changes all 0 (a count's 1, 0, 0, 0, 0): kept
        ([0.0, 100.0, math.nan, 100.0, 101.0], 0),  # a value missing among the first five: not judged
        ([1.0, 1.0 + 4e-16, 1.0 + 4e-16, 1.0 + 4e-16 + 2e-17, 1.0 + 4e-16], 0),  # rounding (1e-9 of |y|)
        ([100.0, 0.0, 100.0, 0.0, 100.0], 0),  # a first change like the next ones
    ],
)
def test_a_first_value_is_restarted_from_only_past_ten_times_the_largest_next_change(values, restarts):
    f = Forecaster(ForecasterConfig())
    for v in [*values, 100.0, 101.0]:
        f.observe("a", v)
    assert f.series_stats("a").restarts == restarts


def test_a_first_value_glitch_in_one_feature_restarts_the_row_and_the_network_only_model_keeps_it():
    f = Forecaster(ForecasterConfig(n_features=2, **FROZEN))
    g = Forecaster(ForecasterConfig(n_features=2, **FROZEN))
    values = list(zip(_noisy(30), _noisy(30, seed=2), strict=True))
    for v in [(values[0][0], 0.0), *values[1:]]:  # feature 2's first value a glitch
        f.observe("a", list(v))
    for v in values[1:]:
        g.observe("a", list(v))
    assert f.series_stats("a").restarts == 1
    assert f.forecast("a", 3).mean == g.forecast("a", 3).mean
    plain = Forecaster(ForecasterConfig(hybrid=False))  # no ring of values to restart from: left as before
    for v in [0.0, *_noisy(10)[1:]]:
        plain.observe("a", v)
    assert plain.series_stats("a").restarts == 0


@pytest.mark.parametrize("missing", [1, 30])
def test_a_series_whose_first_values_are_missing_starts_at_its_first_observed_one(missing):
    # a new user (session 53): the ticks of the missing values wrote the experts' ring as 0, which the season
    # detection read as a step from 0 to the values: 30 missing before a daily sine were a season of 23 for about
    # 2,000 values. With the weights frozen, the row is the same to the bit as a series' fed the values alone
    values = _noisy(80)
    f, g = Forecaster(ForecasterConfig(**FROZEN)), Forecaster(ForecasterConfig(**FROZEN))
    steps = [f.observe("a", v).step for v in [math.nan] * missing + values]
    for v in values:
        g.observe("a", v)
    assert steps == list(range(1, missing + 81))  # its steps count the missing values
    stats = f.series_stats("a")
    assert stats.restarts == 0 and stats.count == g.series_stats("a").count + missing
    fa, ga = f.store.slots["a"], g.store.slots["a"]
    for name, tensor in f.store.tensors.items():  # (the statistics: f's count the glitch's, test_coverage_by_horizon)
        if name not in ("stats", "steps", *hybrid.COVERAGE):
            torch.testing.assert_close(tensor[fa], g.store.tensors[name][ga], rtol=0, atol=0, equal_nan=True, msg=name)
    made, served = f.forecast("a", 12), g.forecast("a", 12)
    assert (made.mean, made.lower, made.upper, made.step) == (served.mean, served.lower, served.upper, missing + 80)
    h = Forecaster.from_state_dict(f.state_dict())
    assert h.observe("a", 100.0) == f.observe("a", 100.0)


def test_a_feature_missing_at_first_beside_an_observed_one_leaves_the_row_as_it_was():
    f = Forecaster(ForecasterConfig(n_features=2))
    f.observe("a", [10.0, math.nan])
    slot = f.store.slots["a"]
    before = f.store.tensors["x_raw"][slot].clone()
    f.observe("a", [11.0, 20.0])
    assert f.store.tensors["x_raw"][slot][0].tolist() == before[0].tolist()  # value 1 kept: the row had seen one


def test_a_blow_up_inside_a_glitch_restarts_private_ticks_keeps_its_count_and_the_step(monkeypatch):
    # a review (session 53): the glitch restart put back the statistics as its tick had left them, undoing the
    # count of a blow-up restart inside one of its private ticks, whose step offset the live model kept: steps 5
    # live, 3 reloaded from its state
    import tbptt_online.forecaster as forecaster

    calls, real_any, real_blown = [0], forecaster.any_blown_up, forecaster.blown_up

    def any_blown_up(*arrays):
        calls[0] += 1
        return True if calls[0] == 7 else real_any(*arrays)  # the second private tick (1 .. 5, then 6, 7)

    def blown_up(*arrays):
        if calls[0] == 7:
            arrays[-1][:] = True
        else:
            real_blown(*arrays)

    monkeypatch.setattr(forecaster, "any_blown_up", any_blown_up)
    monkeypatch.setattr(forecaster, "blown_up", blown_up)
    f = Forecaster(ForecasterConfig())
    steps = [f.observe("a", v).step for v in [0.0, 100.0, 101.0, 100.0, 101.0]]
    monkeypatch.setattr(forecaster, "any_blown_up", real_any)
    monkeypatch.setattr(forecaster, "blown_up", real_blown)
    assert steps == [1, 2, 3, 4, 5] and f.series_stats("a").restarts == 2  # the glitch's and the blow-up's
    g = Forecaster.from_state_dict(f.state_dict())
    assert f.step_of("a") == g.step_of("a") == 5
    assert f.observe("a", 100.0) == g.observe("a", 100.0)


def test_a_counter_reset_is_followed_from_its_new_level_and_its_next_values_are_not_flagged():
    # a cumulative counter growing about 1,000 a value that resets to 0 (a process restarted): its third
    # value after the reset makes a level shift; until session 55 the ARs on the changes carried the reset's
    # change of -297,000 on and the served mean was cut to 0 (interval [0, 181]) where 3,903 and 4,910
    # came, both flagged, and caught up 8 values later (a new user's, F4)
    rng = np.random.default_rng(1)
    f, total, at = Forecaster(ForecasterConfig()), 0.0, 150
    made, flagged, values = [], [], []
    for i in range(at + 20):
        total = 0.0 if i == at else total
        total += 1000.0 * (1 + 0.05 * rng.standard_normal())
        result = f.observe("c", total)
        made.append(result.forecast_made.mean)
        flagged.append(result.outlier)
        values.append(total)
    assert flagged[at : at + 3] == [True, True, False]  # the run's first two at their bounds, the third a shift
    assert not any(flagged[at + 3 :])
    after = slice(at + 3, at + 20)
    ratios = [m / v for m, v in zip(made[after], values[after], strict=True)]
    assert min(ratios) > 0.8 and max(ratios) < 1.25, ratios  # (0 at the first two before)
    errors = [abs(m - v) for m, v in zip(made[after], values[after], strict=True)]
    assert sum(errors) / len(errors) < 0.3 * 1000.0, errors  # the naive's error is the increment, 1,000


def test_the_value_after_one_spike_on_autocorrelated_noise_is_forecast_as_without_it():
    # A new user's (session 59): one spike of +40 on AR(1) noise was taken at its bound, max(5 sigma, q, 2 M),
    # 5-8 here, and the members that follow the last value (the naive, the ARs, the fast levels) moved the next
    # forecast 3.1-5.7 toward it (the innovations' sd is 1): the next value, ordinary, fell outside its interval
    # in 4 of 4 streams. Taken at the interval's edge (it lies past 3 bounds), the forecast moves by 0.05-1.6 and 3
    # of 4 are covered.
    at, moved, covered = 330, [], 0
    for seed, phi, season in [(0, 0.7, False), (1, 0.9, False), (2, 0.8, True), (3, 0.9, True)]:
        values = ar1_stream(seed, phi, season, at + 2)
        made = []
        for spike in (0.0, 40.0):
            f = Forecaster(ForecasterConfig())
            for t, v in enumerate(values[: at + 1]):
                f.observe("s", float(v) + (spike if t == at else 0.0))
            made.append(f.forecast("s"))
        assert f.series_stats("s").outliers >= 1  # the spike was one
        moved.append(abs(made[1].mean[0] - made[0].mean[0]))  # against the same model's forecast without the spike
        covered += made[1].lower[0] <= values[at + 1] <= made[1].upper[0]
    assert max(moved) < 2.0 and sum(moved) / len(moved) < 1.5, moved  # within 2 innovation sds (3.1-5.7 before)
    assert covered >= 3, covered  # 0 of 4 before
