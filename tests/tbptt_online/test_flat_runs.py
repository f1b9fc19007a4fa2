"""A stuck value's repeats are held back as missing (flat_runs.hold_flat_runs): the rule's counts by hand, a held
run served exactly as the same values sent missing, a second stuck run held too, a run held at most FLAT_HOLD_MAX,
the rule off with flat_improbable=None, legitimately repeating data left alone, format 25's states, the counts'
checks, the held values marked in results, a state saved inside a held run, the network alone (hybrid=False)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_online.flat_runs import FLAT_HOLD_MAX, hold_flat_runs
from tbptt_online.scoring import FLAT, STAT, STAT_FIELDS
from tbptt_online.state_check import check_state
from tbptt_online.state_format import FORMAT_VERSION, current_state
from tests.tbptt_online.old_formats import format_26_layout

f64 = torch.float64


def config_for(**overrides) -> ForecasterConfig:
    base = dict(hidden_size=4, dtype="float64", seed=3, k1=4, k2=8, lr=0.01, max_season_length=24)
    base.update(overrides)
    return ForecasterConfig(**base)


def row(last: float, run: float, longest: float, repeats: float, pairs: float) -> torch.Tensor:
    """One series' statistics [1, F, 1]: its last value and flat-run counts, the rest 0."""
    stats = torch.zeros(1, len(STAT_FIELDS), 1, dtype=f64)
    stats[0, STAT["last_value"], 0] = last
    stats[0, FLAT : FLAT + 4, 0] = torch.tensor([run, longest, repeats, pairs], dtype=f64)
    return stats


@pytest.mark.parametrize(("run", "held"), [(3, False), (4, True)])
def test_a_repeat_is_held_once_its_run_is_rarer_than_one_in_a_billion_at_the_series_repeat_rate(run, held):
    # no repeat in 98 values with one before: p = (0 + 1) / (98 + 2) = 0.01; a run of 4 has p^4 = 1e-8 (taken),
    # of 5 p^5 = 1e-10 (held)
    stats = row(last=5.0, run=run, longest=0.0, repeats=0.0, pairs=98.0)
    value = torch.tensor([[5.0]], dtype=f64)
    out, where = hold_flat_runs(stats, value, 1e-9)
    assert stats[0, FLAT, 0] == run + 1
    if held:
        assert where.tolist() == [[True]] and math.isnan(out[0, 0])
        assert stats[0, FLAT : FLAT + 5, 0].tolist() == [5.0, 0.0, 0.0, 98.0, 1.0]  # counts as they were, 1 held
    else:
        assert where is None and out is value
        assert stats[0, FLAT : FLAT + 5, 0].tolist() == [4.0, 0.0, 1.0, 99.0, 0.0]  # a repeat taken: R and N + 1


def test_a_run_no_longer_than_twice_the_longest_the_series_has_shown_is_not_held():
    # p = 0.01 as above; the series has shown a run of 3: a run of 6 (p^6 = 1e-12) is not past 2 * 3, 7 is
    for run, held in [(5, False), (6, True)]:
        stats = row(last=5.0, run=run, longest=3.0, repeats=0.0, pairs=98.0)
        _, where = hold_flat_runs(stats, torch.tensor([[5.0]], dtype=f64), 1e-9)
        assert (where is not None) == held


def test_a_zero_makes_no_run_and_is_never_held():
    stats = row(last=0.0, run=0.0, longest=0.0, repeats=0.0, pairs=1e6)  # p about 1e-6
    out, where = hold_flat_runs(stats, torch.tensor([[0.0]], dtype=f64), 1e-9)
    assert where is None and out[0, 0] == 0.0
    assert stats[0, FLAT : FLAT + 5, 0].tolist() == [0.0, 0.0, 1.0, 1e6 + 1, 0.0]  # a repeat counted, no run


def test_another_value_ends_a_run_and_the_longest_keeps_the_part_taken_as_it_came():
    stats = row(last=5.0, run=3.0, longest=1.0, repeats=3.0, pairs=10.0)  # p = 4 / 12: 3 repeats no rare run
    hold_flat_runs(stats, torch.tensor([[6.0]], dtype=f64), 1e-9)
    assert stats[0, FLAT : FLAT + 5, 0].tolist() == [0.0, 3.0, 3.0, 11.0, 0.0]
    stats = row(last=5.0, run=9.0, longest=2.0, repeats=0.0, pairs=98.0)  # a held run (p = 0.01, 0.01^9)
    hold_flat_runs(stats, torch.tensor([[6.0]], dtype=f64), 1e-9)
    # held from its 5th repeat (0.01^5 = 1e-10, 5 > 2 * 2): the series has taken a run of 4 as it came, not of 9
    # (a review, session 57: with the held run as the longest, a second stuck stretch as long was learned in full)
    assert stats[0, FLAT : FLAT + 5, 0].tolist() == [0.0, 4.0, 0.0, 99.0, 0.0]
    stats = row(last=5.0, run=4.0, longest=0.0, repeats=0.0, pairs=98.0)
    hold_flat_runs(stats, torch.tensor([[math.nan]], dtype=f64), 1e-9)  # a missing value leaves everything as it is
    assert stats[0, FLAT : FLAT + 5, 0].tolist() == [4.0, 0.0, 0.0, 98.0, 0.0]


def stuck_stream() -> tuple[list[float], list[int]]:
    """200 values of a noisy daily cycle read to 0.01, no two alike in a row, 40 of 21.37, then 60 more; and the
    positions the rule
    holds, by hand: at the first repeat p = (0 + 1) / (200 + 2), the run's repeats taken raise it, R and N + 1
    each: p^r at r = 1 .. 6 is 1/202, (2/203)^2, (3/204)^3 = 3.2e-6, (4/205)^4 = 1.4e-7, (5/206)^5 = 8.4e-9,
    (6/207)^6 = 5.9e-10 < 1e-9: held from the 6th repeat, the 7th of the 40 values (its 34 last)."""
    rng = np.random.default_rng(1)
    t = np.arange(300)
    y = np.round(20 + 0.5 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.3, 300), 2)
    values = [*y[:200].tolist(), *[21.37] * 40, *y[240:].tolist()]
    assert all(a != b for a, b in itertools.pairwise(values[:201]))  # (none alike before the run)
    return values, list(range(206, 240))


def test_a_stuck_run_is_served_and_learned_exactly_as_the_same_values_sent_missing():
    values, held = stuck_stream()
    f, g = Forecaster(config_for()), Forecaster(config_for())
    for i, v in enumerate(values):
        r = f.observe("s", v)
        q = g.observe("s", None if i in held else v)
        assert r.value == v  # reported as sent
        assert r.held == (i in held) and not q.held  # ... and marked where it was held
        assert (r.forecast_made, r.forecast_next, r.outlier, r.step) == (q.forecast_made, q.forecast_next, q.outlier,
                                                                         q.step)  # fmt: skip
        if i == 239:
            assert (f.series_stats("s").flat_run, f.series_stats("s").held) == (39, 34)
    assert (f.series_stats("s").flat_run, f.series_stats("s").held) == (0, 34)
    assert g.series_stats("s").held == 0
    mine, twin = f.store.tensors["stats"][0], g.store.tensors["stats"][0]
    assert torch.equal(mine[:FLAT], twin[:FLAT])  # scores, normaliser, last value: as if missing
    # the run's 5 repeats taken are the longest (its held part left out); 5 repeats taken; 299 - 34 pairs; 34 held
    assert mine[FLAT:, 0].tolist() == [0.0, 5.0, 5.0, 265.0, 34.0]


def test_the_interval_does_not_collapse_on_a_stuck_run_and_the_values_after_it_are_no_outliers():
    values, _ = stuck_stream()
    f = Forecaster(config_for())
    results = [f.observe("s", v) for v in values]
    before = results[199].forecast_next
    width = before.upper - before.lower
    during = [r.forecast_next.upper - r.forecast_next.lower for r in results[206:240]]
    assert min(during) >= width  # (on main, taken as it came: down to 0.545 against 1.213)
    assert not any(r.outlier for r in results[240:])
    first = results[240]
    # stuck again, as long (a review, session 57: held the first time only, the second learned in full): the series
    # has taken a run of 5 as it came, so its repeats past 2 * 5 are held, 29 of the 39
    again = [f.observe("s", 21.37).forecast_next for _ in range(40)]
    assert f.series_stats("s").held == 34 + 29 and min(a.upper - a.lower for a in again[11:]) >= width
    assert first.forecast_made.lower <= first.value <= first.forecast_made.upper


@pytest.mark.parametrize("kind", ["counts", "quantised", "price"])
def test_legitimately_repeating_values_are_not_held(kind):
    rng = np.random.default_rng(11)
    n = 1500
    t = np.arange(n)
    if kind == "counts":  # Poisson(1): 1 after 1 about a third of the time, runs of 1s up to about 8
        y = rng.poisson(1.0, n).astype(float)
    elif kind == "quantised":  # a daily cycle in noise, read to 0.5: mostly 20.0, in runs of tens
        y = np.round((20 + 0.3 * np.sin(2 * np.pi * t / 96) + rng.normal(0, 0.1, n)) * 2) / 2
    else:  # a price that moves at 1 step in 10
        y = np.round(100 + np.cumsum((rng.random(n) < 0.1) * rng.normal(0, 1, n)), 2)
    f = Forecaster(config_for())
    f.observe_many([("s", float(v)) for v in y])
    stats = f.series_stats("s")
    assert stats.held == 0
    run = 0
    for a, b in itertools.pairwise(y):
        run = run + 1 if b == a and b != 0 else 0
    assert stats.flat_run == run


def test_a_format_25_state_gains_the_flat_runs_at_0():
    values, _ = stuck_stream()
    f = Forecaster(config_for())
    f.observe_many([("s", v) for v in values[:230]])  # inside the held run
    state = f.state_dict()
    tensors = format_26_layout(state["store"]["tensors"])  # (no pooled combiner: format 27's)
    store = {**state["store"], "tensors": {**tensors, "stats": tensors["stats"][:, :FLAT]}}
    old = {**state, "format": 25, "store": store}
    migrated = current_state(old)
    assert migrated["format"] == FORMAT_VERSION == 27
    stats = migrated["store"]["tensors"]["stats"]
    assert torch.equal(stats[:, :FLAT], tensors["stats"][:, :FLAT]) and not stats[:, FLAT:].any()
    g = Forecaster.from_state_dict(migrated)
    r = g.observe("s", 21.37)  # counted from the load on: p = 1/2, a run of 1 taken as it came
    assert r.value == 21.37 and g.series_stats("s").held == 0 and g.series_stats("s").flat_run == 1


def test_a_run_is_held_at_most_flat_hold_max_values_then_taken_as_the_series_own():
    # a review (session 57): a series that settled at one value for good was held without end, the level before
    # it served with a growing interval
    # p = (R + 1) / (N + 2) from 1 / 100, each repeat taken raising it: held where r log p < log 1e-9, i.e. from
    # r = floor(20.72 / -log p) + 1: 5, 6, 6, 7, 7, 8, 8 at r = 1 .. 7 (taken), 8 at r = 8 (p = 8 / 107: held)
    stats = row(last=5.0, run=0.0, longest=0.0, repeats=0.0, pairs=98.0)
    value = torch.tensor([[5.0]], dtype=f64)
    held = [hold_flat_runs(stats, value, 1e-9)[1] is not None for _ in range(FLAT_HOLD_MAX + 50)]
    assert held == [False] * 7 + [True] * FLAT_HOLD_MAX + [False] * 43  # released, and stays so
    assert stats[0, FLAT : FLAT + 5, 0].tolist() == [FLAT_HOLD_MAX + 50, 0.0, 7.0, 105.0, FLAT_HOLD_MAX]
    hold_flat_runs(stats, torch.tensor([[6.0]], dtype=f64), 1e-9)  # its end: the whole run the longest
    assert stats[0, FLAT : FLAT + 2, 0].tolist() == [0.0, FLAT_HOLD_MAX + 50]


def test_flat_improbable_none_turns_the_rule_off():
    values, _ = stuck_stream()
    f = Forecaster(config_for(flat_improbable=None))
    f.observe_many([("s", v) for v in values])
    assert (f.series_stats("s").held, f.series_stats("s").flat_run) == (0, 0)
    with pytest.raises(ValueError, match=r"flat_improbable=1.5 is invalid"):
        config_for(flat_improbable=1.5)


def test_observe_many_marks_the_held_values_of_each_series_in_its_results():
    values, held = stuck_stream()
    f = Forecaster(config_for())
    # two series in one call: each tick's columns carry the flags (TickLists.held), row by row
    results = f.observe_many([(name, v) for v in values for name in ("s", "t")])
    assert [r.held for r in results] == [i // 2 in held for i in range(2 * len(values))]
    tick, row = results.locate(2 * 210)
    assert tick.lists().held[row] and tick.lists().values[row] == 21.37


def test_a_stuck_feature_of_a_two_feature_series_is_held_alone():
    values, held = stuck_stream()
    f = Forecaster(config_for(n_features=2))
    for i, v in enumerate(values):
        r = f.observe("s", [v, 10.0 + i % 7])
        assert r.held == (i in held)  # (any feature held: the value is marked)
    g = Forecaster(config_for(n_features=2))
    for i, v in enumerate(values):
        g.observe("s", [None if i in held else v, 10.0 + i % 7])
    assert torch.equal(f.store.tensors["stats"][0, :FLAT], g.store.tensors["stats"][0, :FLAT])
    assert f.store.tensors["stats"][0, STAT["flat_held"]].tolist() == [34.0, 0.0]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("flat_held", 1e30, "whole numbers up to"),
        ("flat_run", 2.5, "whole numbers up to"),
        ("flat_repeats", 1e9, "past"),
    ],
)
def test_the_state_check_refuses_flat_counts_that_are_not_counts(name, value, message):
    # a review (session 57): an imported flat_held of 1e30 made the series' statistics answer 500
    f = Forecaster(config_for())
    f.observe_many([("s", 1.0), ("s", 2.0)])
    state = f.state_dict()
    state["store"]["tensors"]["stats"][0, STAT[name], 0] = value
    with pytest.raises(ValueError, match=message):
        check_state(state)


def test_a_state_saved_inside_a_held_run_goes_on_to_the_bit_as_the_one_never_saved():
    # a review (session 57) checked this by hand; the held run's counts live in the series' statistics
    values, held = stuck_stream()
    f = Forecaster(config_for())
    f.observe_many([("s", v) for v in values[:220]])  # 14 of the run's 34 held values seen
    assert f.series_stats("s").held == 14
    g = Forecaster.from_state_dict(f.state_dict())
    rest = [(r.forecast_made, r.forecast_next, r.held) for r in f.observe_many([("s", v) for v in values[220:]])]
    again = [(r.forecast_made, r.forecast_next, r.held) for r in g.observe_many([("s", v) for v in values[220:]])]
    assert again == rest and sum(h for *_, h in rest) == len(held) - 14
    assert torch.equal(f.store.tensors["stats"][0], g.store.tensors["stats"][0])  # (row 0: the series')
    assert f.store.tensors["stats"][0, FLAT:, 0].tolist() == [0.0, 5.0, 5.0, 265.0, 34.0]


@pytest.mark.parametrize("mode", ["stateful", "stateless"])
def test_the_network_alone_holds_a_stuck_run_too(mode):
    # hybrid=False: the rule runs before anything of the tick reads the value, whatever the model
    values, held = stuck_stream()
    f, g = Forecaster(config_for(hybrid=False, mode=mode)), Forecaster(config_for(hybrid=False, mode=mode))
    mine = f.observe_many([("s", v) for v in values])
    twin = g.observe_many([("s", None if i in held else v) for i, v in enumerate(values)])
    assert [i for i, r in enumerate(mine) if r.held] == held
    assert [(r.forecast_made, r.forecast_next) for r in mine] == [(r.forecast_made, r.forecast_next) for r in twin]
