"""A series' coverage per horizon (``SeriesStats.coverage_by_horizon``; ``c_coverage``, ``c_far_coverage``,
counted by ``hybrid_kernels._covered``): against a count by hand of the intervals the forecaster served, each
horizon's width counted where it was the horizon's own; kept across a restart and not counted twice by a
glitch's; refused by the state check where it cannot be a count; a format-24 state gains it at 0.

A new user (session 55) had a host that joined late served 12- and 24-step intervals that held about 60 % of its
values while its stats, one-step only, said 0.912."""

from __future__ import annotations

import math
import random

import pytest
import torch

from tbptt_online import Forecaster, ForecasterConfig, calibration, hybrid
from tbptt_online.hybrid_kernels import RECENT_COVERAGE
from tbptt_online.state_check import check_state
from tbptt_online.state_format import FORMAT_VERSION, current_state

from .old_formats import as_format_24, as_format_26

HC = ForecasterConfig().calibrated_horizon  # 12
RECENT: dict[int, tuple[float, float]] = {}  # _by_hand's discounted sums per horizon (cleared by each test)
FAR = calibration.far_horizons(HC)  # (24, 48)


def _daily(n: int, seed: int, start: int = 0) -> list[float]:
    """Hourly values about 100 with a daily cycle and noise (never near 0: no lower bound cut at 0)."""
    rng = random.Random(seed)
    return [100 + 20 * math.sin(2 * math.pi * t / 24) + rng.gauss(0, 4) for t in range(start, start + n)]


def _serve(f: Forecaster, values: list[float], longest: int) -> list[dict[int, tuple[float, float]]]:
    """Feed ``values`` to series "a" of ``f``; after each, the intervals served for the next ``longest`` steps
    (``forecast``) at the horizons whose width was the horizon's own: ``c_q`` > 0 at 1 .. Hc; at a far horizon
    ``c_far_q`` > 0, from an origin whose state's step is divisible by ``calibration.FAR_EVERY`` (only those are
    remembered). Per value, {h: (lower, upper)}."""
    served = []
    for value in values:
        f.observe("a", value)
        slot = f.store.slots["a"]
        q, far_q = f.store.tensors["c_q"][slot, :, 0], f.store.tensors["c_far_q"][slot, :, 0]
        step = int(f.store.tensors["steps"][slot])  # the state's own (a restart starts it again)
        made = f.forecast("a", longest)
        own = {h: bool(q[h - 1] > 0) for h in range(1, HC + 1)}
        own |= {h: bool(far_q[i] > 0) and step % calibration.FAR_EVERY == 0 for i, h in enumerate(FAR)}
        served.append({h: (made.lower[h - 1], made.upper[h - 1]) for h in own if h <= longest and own[h]})
    return served


def _by_hand(values: list[float], served: list[dict[int, tuple[float, float]]], counted=None) -> dict:
    """Per horizon [covered, scored] of the intervals ``served`` after each of ``values`` (``_serve``) for the
    values that came later, added to ``counted``: the value within [lower, upper]. The recent coverage's sums are
    kept apart, in ``RECENT`` (each horizon's earlier ones discounted by ``RECENT_COVERAGE`` at each one)."""
    counted = counted or {h: [0, 0] for h in (*range(1, HC + 1), *FAR)}
    for origin, bounds in enumerate(served):  # (at each horizon: in the order of the values scored)
        for h, (lower, upper) in bounds.items():
            if origin + h < len(values):
                hit = lower <= values[origin + h] <= upper
                counted[h][1] += 1
                counted[h][0] += hit
                covered, weight = RECENT.get(h, (0.0, 0.0))
                RECENT[h] = (RECENT_COVERAGE * covered + hit, RECENT_COVERAGE * weight + 1.0)
    return counted


def _served_and_counted(f: Forecaster, values: list[float], longest: int) -> dict[int, list[int]]:
    return _by_hand(values, _serve(f, values, longest))


def _counts(f: Forecaster, series: str = "a") -> dict[int, list[int]]:
    return {c.horizon: [round(c.coverage * c.scored) if c.scored else 0, c.scored] for c in _stats(f, series)}


def _stats(f: Forecaster, series: str = "a"):
    return f.series_stats(series).coverage_by_horizon


def test_each_horizons_coverage_counts_the_intervals_served_there_by_hand() -> None:
    f = Forecaster(ForecasterConfig(seed=0))
    RECENT.clear()
    by_hand = _served_and_counted(f, _daily(400, seed=1), longest=max(FAR))
    stats = _stats(f)
    assert [c.horizon for c in stats] == [*range(1, HC + 1), *FAR]
    assert _counts(f) == by_hand
    for c in stats:  # about the last 100 of each horizon: the discounted share, to rounding
        assert c.recent == pytest.approx(RECENT[c.horizon][0] / RECENT[c.horizon][1], rel=1e-12)
    # the first forecasts of a horizon, served a shorter one's width, are not counted: fewer than its origins
    assert by_hand[HC][1] < 400 - HC and by_hand[1][1] >= 397
    assert by_hand[24][1] > 150  # every other origin's far forecast, once its width was its own
    assert all(abs(c.coverage - 0.9) < 0.08 for c in stats)  # a calibrated stream: near the level at each
    assert stats[0].coverage == f.series_stats("a").coverage  # one step: the same values as `coverage`


def test_spikes_a_shift_and_a_noise_that_follows_the_day_are_counted_as_they_were_sent() -> None:
    # A review's: the outliers take a spike at its bound, and a spike of 40 times counted as covered at h = 12;
    # the far widths are served times their phase's factor (the noise 1 at night, 6 at the peak here)
    rng = random.Random(9)
    values = []
    for t in range(700):
        day = math.sin(2 * math.pi * t / 24)
        value = 100 + 20 * day + rng.gauss(0, 3.5 + 2.5 * day)
        values.append(value * 40 if t in (300, 450, 451) else value + (60 if t >= 520 else 0))
    f = Forecaster(ForecasterConfig(seed=0))
    by_hand = _served_and_counted(f, values, longest=max(FAR))
    assert f.series_stats("a").outliers >= 3  # the spikes and the shift's first values were taken at their bounds
    assert _counts(f) == by_hand


def test_a_negative_value_after_values_all_at_least_0_is_a_miss_of_the_interval_cut_at_0() -> None:
    # A review's: the lower bound is served cut at 0 while every value was >= 0; -0.56 counted as covered
    rng = random.Random(3)
    values = [max(0.0, 2 + rng.gauss(0, 1.5)) for _ in range(200)] + [-0.6]  # the first value below 0
    values += [max(0.0, 2 + rng.gauss(0, 1.5)) for _ in range(60)]  # (a second within 48 values: ``_covered``)
    f = Forecaster(ForecasterConfig(seed=0))
    by_hand = _served_and_counted(f, values, longest=max(FAR))
    assert f.series_stats("a").never_negative is False
    assert _counts(f) == by_hand


def test_the_features_of_a_series_are_pooled() -> None:
    f = Forecaster(ForecasterConfig(seed=0, n_features=2))
    for value in _daily(200, seed=10):
        f.observe("a", [value, 2 * value - 50])
    coverage = f.store.tensors["c_coverage"][f.store.slots["a"]]  # [Hc, 4, d]
    assert (coverage[:, 1] > 0).all()  # both features scored at every horizon
    stats = _stats(f)[:HC]
    assert [c.scored for c in stats] == coverage[:, 1].sum(dim=-1).long().tolist()
    assert [c.coverage for c in stats] == (coverage[:, 0].sum(dim=-1) / coverage[:, 1].sum(dim=-1)).tolist()


def test_a_young_series_counts_each_horizon_from_its_first_width_of_its_own() -> None:
    f = Forecaster(ForecasterConfig(seed=0))
    by_hand = _served_and_counted(f, _daily(60, seed=8), longest=max(FAR))
    assert _counts(f) == by_hand
    assert 0 < by_hand[24][1] < by_hand[HC][1] < by_hand[1][1] and by_hand[48] == [0, 0]
    assert _stats(f)[-1].coverage is None  # nothing scored 48 steps ahead yet


def test_the_coverage_is_kept_across_a_restart_and_counts_on() -> None:
    # The value that restarts a series is scored against the forecasts served before; the restarted state's
    # ring is blank: the forecasts made before it are not scored past it, its own are from their first width
    f = Forecaster(ForecasterConfig(seed=0))
    values, more = [*_daily(200, seed=2), 100.0], _daily(100, seed=3, start=201)
    served = _serve(f, values[:200], longest=max(FAR))
    f.store.tensors["x_level"][f.store.slots["a"]] = math.inf  # the state past repair: the next value restarts it
    served += _serve(f, values[200:], longest=max(FAR))
    assert f.series_stats("a").restarts == 1
    before = _by_hand(values, served)
    assert _counts(f) == before and served[-1] == {}  # the restarted state: no width of its own yet
    after = _by_hand(more, _serve(f, more, longest=max(FAR)), {h: list(c) for h, c in before.items()})
    assert _counts(f) == after and all(after[h][1] > before[h][1] for h in range(1, HC + 1))
    check_state(f.state_dict())


def test_a_glitchs_restart_counts_each_value_once() -> None:
    # At its fifth value the series starts again from its second: values 2 .. 5 are observed again in ticks of
    # its own (the weights frozen: as those of a forecaster fed them from the second, g's), whose scores are not
    # counted a second time. The forecasts made before the restart for values after it are then the restarted
    # state's (g's), not the ones served before it
    frozen = ForecasterConfig(seed=0, k1=100_000, warmup_updates=0)
    f, g = Forecaster(frozen), Forecaster(frozen)
    values = [0.0, *_daily(120, seed=4)[1:]]
    served, again = _serve(f, values, longest=max(FAR)), _serve(g, values[1:], longest=max(FAR))
    assert f.series_stats("a").restarts == 1
    before = [{h: b for h, b in bounds.items() if i + h <= 4} for i, bounds in enumerate(served[:4])]
    replaced = [{h: b for h, b in bounds.items() if i + 1 + h > 4} for i, bounds in enumerate(again[:3])]
    assert served[4:] == again[3:]  # from value 5 on: the restarted state's
    by_hand = _by_hand(values, [*before, *[{}] * 117])
    by_hand = _by_hand(values, [{}, *replaced, *served[4:]], by_hand)
    assert _counts(f) == by_hand


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.__setitem__((0, 0, 0, 0), c[0, 0, 1, 0] + 1), "more values covered than scored"),
        (lambda c: c.__setitem__((0, 0, 1, 0), 2.5), "not a whole number"),
        (lambda c: c.__setitem__((0, 0, 0, 0), -1.0), "negative"),
        (lambda c: c.__setitem__((0, 0, 3, 0), 101.0), "a discounted count past"),
        (lambda c: c.__setitem__((0, 0, 2, 0), c[0, 0, 3, 0] + 0.5), "more values covered than scored"),
        (lambda c: c[0, 0].copy_(torch.tensor([[0.0], [0.0], [50.0], [50.0]])), "past its whole-life count"),
    ],
)
def test_a_coverage_that_cannot_be_a_count_is_refused_by_the_state_check(change, message) -> None:
    f = Forecaster(ForecasterConfig(seed=0))
    for value in _daily(40, seed=5):
        f.observe("a", value)
    state = f.state_dict()
    check_state(state)
    coverage = state["store"]["tensors"]["c_coverage"].clone()
    change(coverage)
    bad = {**state, "store": {**state["store"], "tensors": {**state["store"]["tensors"], "c_coverage": coverage}}}
    with pytest.raises(ValueError, match=message):
        check_state(bad)


def test_a_format_24_state_gains_a_blank_coverage_and_counts_from_the_load_on() -> None:
    f = Forecaster(ForecasterConfig(seed=0))
    for value in _daily(100, seed=6):
        f.observe("a", value)
    old = as_format_24(f.state_dict())
    assert "c_coverage" not in old["store"]["tensors"]
    migrated = current_state(old)
    assert migrated["format"] == FORMAT_VERSION == 27
    names = list(migrated["store"]["tensors"])
    assert names == list(f.state_dict()["store"]["tensors"])  # in the current layout's order
    for name in hybrid.COVERAGE:
        assert not migrated["store"]["tensors"][name].any()
    loaded = Forecaster.from_state_dict(old)
    assert all(c.scored == 0 and c.coverage is None for c in _stats(loaded))
    # f as a format-26 state of it loads (format 27's pooled combiner's record the fast one's, as the migrated
    # one's): it keeps its coverage counts and serves what the migrated model serves
    f = Forecaster.from_state_dict(as_format_26(f.state_dict()))
    later, earlier = _daily(30, seed=7, start=100), _counts(f)
    for value in later:
        loaded.observe("a", value)
        f.observe("a", value)
    counted = _counts(loaded)
    assert counted[1][1] == counted[HC][1] == 30  # the forecasts made before the load are scored too
    for h, (covered, scored) in _counts(f).items():  # f's counts: its earlier ones and those since the load
        assert (covered, scored) == (earlier[h][0] + counted[h][0], earlier[h][1] + counted[h][1])
    assert loaded.forecast("a", 48) == f.forecast("a", 48)  # nothing else changed
