"""benchmarks.timestamp_gaps: its outages and its three ways of feeding them, checked by hand."""

from __future__ import annotations

import math

from benchmarks import timestamp_gaps
from benchmarks.accuracy import warmup_of
from benchmarks.real_series import RealSeries
from tbptt_online import Forecaster, ForecasterConfig

SINE = RealSeries("sine", [20 + 3 * math.sin(2 * math.pi * t / 12) + (t % 5) / 10 for t in range(120)], 12, "test")


def test_outages_start_after_the_warm_up_last_at_most_a_season_and_are_followed_by_a_value():
    sent = timestamp_gaps.outages(SINE, rate=0.2, seed=1)
    assert all(sent[: warmup_of(SINE)]) and sent.count(False) > 0
    runs, run = [], 0
    for kept in sent:
        if kept and run:
            runs.append(run)
        run = 0 if kept else run + 1
    assert max(runs) <= 12 and sum(runs) + run == sent.count(False)


def test_the_three_ways_feed_what_they_say():
    sent = timestamp_gaps.outages(SINE, rate=0.2, seed=1)
    model, errors, naive, last = Forecaster(ForecasterConfig()), [], [], None
    for t, (y, kept) in enumerate(zip(SINE.values, sent, strict=True)):
        result = model.observe("sine", y if kept else None)  # gaps filled: None for each missing value
        if kept:
            if t >= warmup_of(SINE) and last is not None:
                errors.append(abs(y - result.forecast_made.mean))
                naive.append(abs(y - last))
            last = y
    assert timestamp_gaps.score(SINE, sent, "gaps filled") == sum(errors) / sum(naive)
    everything = [True] * len(SINE.values)
    assert len({timestamp_gaps.score(SINE, everything, way) for way in timestamp_gaps.WAYS}) == 1  # no outage
