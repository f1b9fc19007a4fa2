"""A series' cadence from its timestamps: one-step differences, gaps, irregular streams (hand cases)."""

from __future__ import annotations

import itertools
import random

from tbptt_service.host.cadence import KNOWN_AFTER, UNKNOWN, Cadence, fill_times, shortened


def learned(differences: list[float]) -> Cadence:
    cadence = UNKNOWN
    for d in differences:
        cadence = cadence.after(d)
    return cadence


def test_the_cadence_is_known_after_eight_one_step_differences_in_a_row() -> None:
    assert KNOWN_AFTER == 8
    seven, eight = learned([60.0] * 7), learned([60.0] * 8)
    assert not seven.known and seven.missing(300.0) == 0  # nothing is filled before it is known
    assert eight.known and eight.missing(300.0) == 4


def test_jitter_averages_into_the_step() -> None:
    # running mean, weight 1 / min(run, 20): 60 -> (60 + 62) / 2 = 61 -> 61 + (58 - 61) / 3 = 60
    assert learned([60.0, 62.0, 58.0]) == Cadence(60.0, 3)
    cadence = learned([60.0, 62.0, 58.0, 61.0, 59.0, 60.5, 59.5, 60.0])
    assert cadence.known and abs(cadence.step - 60.0) < 0.5
    # 1.5 steps and more is a gap of floor(d / step + 1/2) steps, 1 of them missing at 1.5 and 2.49
    assert [learned([10.0] * 8).missing(d) for d in (14.9, 15.0, 24.9, 25.0, 1000.0)] == [0, 1, 1, 2, 99]


def test_a_gap_keeps_the_cadence_and_anything_else_relearns_it() -> None:
    known = learned([10.0] * 8)
    assert known.after(1000.0) == known  # a gap: the steps around it are the cadence's
    assert learned([10.0] * 5 + [1000.0]) == Cadence(1000.0, 1)  # a long one before it is known
    assert learned([10.0] * 5 + [5.0]) == Cadence(5.0, 1)  # faster, before it is known: learned afresh


def test_a_known_cadence_keeps_its_step_through_differences_off_its_grid() -> None:
    # fix (a new user's, session 54): 1.3 steps, or an extra reading, relearned the cadence at once, so hourly
    # readings jittered by +-10 minutes lost it every few days and their dropped hours went unfilled
    known = learned([10.0] * 8)
    assert known.after(13.0) == Cadence(10.0, 9, 1) and known.after(5.0) == Cadence(10.0, 9, 1)  # a step, off grid
    assert learned([10.0] * 8 + [13.0, 5.0, 13.0, 10.0, 13.0]) == Cadence(10.0, 13, 1)  # one on the grid: back to 0
    assert learned([10.0] * 8 + [13.0, 5.0] * 3 + [13.0]).known  # seven off the grid in a row: still known
    assert learned([10.0] * 8 + [13.0, 5.0] * 4) == Cadence(5.0, 1)  # eight (OFF_GRID_RUN): the cadence changed


def test_jittered_hourly_readings_have_every_dropped_hour_filled() -> None:
    rng = random.Random(3)
    times = [3600.0 * k + rng.uniform(-600.0, 600.0) for k in range(24 * 60)]  # +-10 minutes, 60 days
    dropped = set(rng.sample(range(10, len(times) - 1), 40))
    kept = [t for k, t in enumerate(times) if k not in dropped and k - 1 not in dropped]  # (no two in a row)
    cadence, filled = UNKNOWN, 0
    for last, now in itertools.pairwise(kept):
        filled += cadence.missing(now - last)
        cadence = cadence.after(now - last)
    assert cadence.known and abs(cadence.step - 3600.0) < 180.0  # (the mean of the last ~20 jittered differences)
    assert filled == len(times) - len(kept)  # (before the fix: 61 of 78)


def test_a_shop_closed_on_sundays_learns_its_daily_cadence() -> None:
    # fix (a new user's, session 54): a two-day difference each week restarted the learning, and six one-day
    # ones in a row never made eight: no cadence, no Sunday filled, the weekly season off by a day each week
    day = 86_400.0
    week = [day] * 6 + [2 * day]
    cadence = learned(week * 2)
    assert cadence.known and cadence.step == day
    assert cadence.missing(2 * day) == 1  # the next Sunday is filled
    assert learned([day, 2 * day, 3 * day, day, 2 * day] * 4).known  # a daily grid with days absent: its days count
    assert not learned([2 * day, 3 * day, 4 * day] * 4).known  # whole steps alone neither confirm nor restart
    assert learned([day] * 3 + [day, 2 * day]) == Cadence(day, 4, 1)  # (counted off the grid, until a step)
    # a stream whose step doubled while it was learned: 8 of them in a row learn it afresh, then it is learned
    assert learned([day] * 3 + [2 * day] * 8) == Cadence(2 * day, 1)
    assert learned([day] * 3 + [2 * day] * 15).known


def test_the_filled_steps_sit_on_the_grid_just_before_the_value() -> None:
    assert fill_times(100.0, 160.0, missing=5, inserted=5) == [110.0, 120.0, 130.0, 140.0, 150.0]
    assert fill_times(100.0, 160.0, missing=5, inserted=2) == [140.0, 150.0]
    assert fill_times(100.0, 160.0, missing=5, inserted=0) == []


def test_a_gap_over_the_allowance_is_shortened_by_whole_seasons() -> None:
    assert shortened(missing=30, allowance=30, seasons=[24]) == 30
    assert shortened(missing=1000, allowance=200, seasons=[24, 168]) == 1000 % 168  # lcm(24, 168) = 168: 160
    assert shortened(missing=1000, allowance=100, seasons=[12, 7]) == 1000 % 84
    assert shortened(missing=1000, allowance=100, seasons=[336, 48]) == 0  # 1000 % 336 = 328 > 100: no phase kept
    assert shortened(missing=1000, allowance=100, seasons=[]) == 0  # no season: no phase to keep


def test_an_irregular_stream_is_never_padded() -> None:
    rng = random.Random(7)
    cadence, padded = UNKNOWN, 0
    for _ in range(20_000):  # events at exponential intervals, mean 60 s
        d = rng.expovariate(1 / 60)
        padded += cadence.missing(d)
        cadence = cadence.after(d)
    assert padded == 0


def test_a_difference_past_a_floats_range_teaches_nothing_and_fills_nothing() -> None:
    # 1e308 - (-1e308) is inf; a step of 1e-300 makes a gap of 1e10 s inf steps (math.floor raised OverflowError)
    assert UNKNOWN.after(float("inf")) == UNKNOWN and learned([60.0] * 8).after(float("inf")) == UNKNOWN
    assert learned([60.0] * 8).missing(float("inf")) == 0 and learned([1e-300] * 8).missing(1e10) == 0
    assert learned([60.0] * 8).after(0.0) == UNKNOWN  # two moments rounding made equal: no step of 0 s
