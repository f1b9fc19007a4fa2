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
    assert known.after(13.0) == Cadence(13.0, 1)  # 1.3 steps: neither one step nor a gap
    assert known.after(5.0) == Cadence(5.0, 1)  # faster: learned afresh
    assert learned([10.0] * 5 + [1000.0]) == Cadence(1000.0, 1)  # a long one before it is known


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
    assert learned([day] * 3 + [190_080.0]) == Cadence(190_080.0, 1)  # 2.2 days: past an eighth of a step, afresh
    # a stream whose step doubled while it was learned: 8 of them in a row learn it afresh, then it is learned
    assert learned([day] * 3 + [2 * day] * 8) == Cadence(2 * day, 1)
    assert learned([day] * 3 + [2 * day] * 15).known


def folded(times: list[float]) -> tuple[Cadence, int]:
    """The cadence and the steps inserted over ``times`` as admission folds them: each gap's filled steps one by one."""
    cadence, inserted = UNKNOWN, 0
    for last, now in itertools.pairwise(times):
        missing = cadence.missing(now - last)
        inserted += missing
        for moment in fill_times(last, now, missing, missing):
            cadence, last = cadence.after(moment - last), moment
        cadence = cadence.after(now - last)
    return cadence, inserted


def test_irregular_and_jittered_streams_are_hardly_padded() -> None:
    # (a review, session 54: a first version, which kept a known cadence through differences off its grid, inserted
    # 130 steps on average into 2,000 differences uniform on 30-90 s; the rule of before 0.13, this one 0.3)
    for seed in range(10):
        rng = random.Random(seed)
        assert folded(list(itertools.accumulate(rng.uniform(30, 90) for _ in range(2000))))[1] <= 3
        assert folded([3600.0 * k + rng.uniform(-1200, 1200) for k in range(5000)])[1] <= 10


def test_a_tiny_step_while_learning_is_no_error() -> None:
    # fix (a review, session 54): timestamps 0.0 and 5e-324 made a step of 5e-324, and the next difference's number
    # of whole steps was infinite: OverflowError, and every later value of the series refused
    assert UNKNOWN.after(5e-324).after(1.0) == Cadence(1.0, 1)
    assert learned([5e-324] * 3 + [1e9]) == Cadence(1e9, 1)
