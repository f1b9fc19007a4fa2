"""The hybrid forecaster (hybrid.py) through the Forecaster: the network member of an
untrained model is the experts' combination, what is served is what a forecast says,
seasons are found, members are scored and weighted as written, intervals are calibrated
per horizon, checkpoints continue bit for bit, and bad settings are refused by name."""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Callable
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
import torch

from benchmarks import true_seasons
from tbptt_online import Forecaster, ForecasterConfig, calibration, combination, experts, hybrid, young_season
from tbptt_online.results import Prediction
from tbptt_online.season import fill_gaps
from tbptt_online.state_check import check_state
from tests.tbptt_online.old_formats import as_format_3
from tests.tbptt_online.snapshots import assert_identical, snapshot
from tests.tbptt_online.test_combination import ewa_by_hand, fast_by_hand

f64 = torch.float64
DATA = Path(__file__).resolve().parents[2] / "data"


def config_for(**overrides) -> ForecasterConfig:
    base = dict(hidden_size=4, dtype="float64", seed=3, k1=4, k2=8, lr=0.01, max_season_length=24)
    base.update(overrides)
    return ForecasterConfig(**base)


def seasonal(n: int, season_length: int = 12, noise: float = 0.0, seed: int = 0, level: float = 10.0) -> list[float]:
    rng = random.Random(seed)
    shape = [
        math.sin(2 * math.pi * p / season_length) + 0.5 * (p == 0) for p in range(season_length)
    ]  # not a pure sine
    return [level + 3.0 * shape[t % season_length] + noise * rng.gauss(0.0, 1.0) for t in range(1, n + 1)]


def rows_of(f: Forecaster, series: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    view = f.view()
    slot = torch.tensor([view.slots[series]])
    return hybrid.rows_at(view.tensors, slot), view.tensors["steps"][slot]


def hand_served_weights(rows: dict[str, torch.Tensor], h: int, allowed: list[bool]) -> list[float]:
    """The served weights at horizon index ``h`` of the first row and feature in plain Python:
    the fast combiner's (``fast_by_hand``: each horizon's logits borrow from the one before's), the slow one's EWA
    weights (``ewa_by_hand``) and the pooled combiner's (the mean of the fast one's at h and at one step) mixed by the
    EWA of their own losses (at one step the fast and slow ones alone)."""
    chain = fast_by_hand(rows["c_loss"][0, : h + 1, :, 0].tolist(), rows["c_count"][0, : h + 1, 0].tolist(), allowed)
    fast = chain[h]
    slow = ewa_by_hand(
        rows["c_slow_loss"][0, h, :, 0].tolist(), rows["c_slow_count"][0, h, 0].item(), allowed, combination.ETA, h + 1
    )
    one = chain[0]
    meta = rows["c_meta_loss"][0, h, :, 0].tolist()
    mu = ewa_by_hand(meta, rows["c_meta_count"][0, h, 0].item(), [True] * 3, combination.META_ETA, h + 1)
    if h == 0:  # at one step the pooled combiner is the fast one: no weight, the fast and slow ones share it
        mu = [mu[0] / (mu[0] + mu[1]), mu[1] / (mu[0] + mu[1]), 0.0]
    return [mu[0] * f + mu[1] * w + mu[2] * (f + o) / 2 for f, w, o in zip(fast, slow, one, strict=True)]


# -- the network member and the served combination ---------------------------------------


@pytest.mark.parametrize("season_length", [4, None])
def test_an_untrained_network_member_is_exactly_the_experts_combination(season_length):
    f = Forecaster(config_for(lr=0.0, season_length=season_length))
    values = seasonal(20, season_length=4, noise=0.3)
    for step, value in enumerate(values, 1):
        f.observe("a", value)
        if step % 3 and step != len(values):
            continue
        rows, steps = rows_of(f, "a")
        assert rows["n_correction"].abs().max().item() == 0.0
        horizon = 15  # past the calibrated horizon (12): the last horizon's weights hold
        every, served, _ = hybrid.members(rows, steps, horizon)  # [1, H, E, 1], [1, H, 1]
        paths = experts.paths(rows, steps, horizon, tracked=12)  # past 12 the seasonal AR adds no change
        w = hybrid.served_weights(rows)  # all members'
        share = w[:, :, :-1] / w[:, :, :-1].sum(dim=2, keepdim=True)  # the experts' share, renormalised
        held = torch.arange(horizon).clamp(max=share.shape[1] - 1)  # past the last horizon its weights
        base = (paths * share[:, held]).sum(dim=2)  # [1, H, 1]
        assert torch.allclose(every[:, :, -1], base, rtol=1e-13, atol=0), step
        assert torch.allclose(served, base, rtol=1e-13, atol=0), step  # c = 0: serving the base itself
        assert torch.equal(every[:, :, :-1], paths)
    assert f.update_stats().updates > 0  # the updates ran; with lr = 0 they change nothing


def test_the_served_forecast_is_the_weighted_mean_of_the_members_by_hand():
    f = Forecaster(config_for(season_length=4))
    values = seasonal(24, season_length=4, noise=0.5, seed=1)
    for value in values:
        f.observe("a", value)
    rows, steps = rows_of(f, "a")
    every, _, combined = hybrid.members(rows, steps, 14)
    allowed = hybrid.allowed(rows)[0, :, 0].tolist()
    mean = f.forecast("a", 14).mean
    for h in range(1, 15):
        k = min(h, 12) - 1  # horizons past 12 take the weights of horizon 12
        w = hand_served_weights(rows, k, allowed)
        members = every[0, h - 1, :, 0].tolist()
        assert mean[h - 1] == pytest.approx(sum(wi * fi for wi, fi in zip(w, members, strict=True)), rel=1e-12)
        # each combiner's own forecast (scored by the mixture): its weights alone
        chain = fast_by_hand(
            rows["c_loss"][0, : k + 1, :, 0].tolist(), rows["c_count"][0, : k + 1, 0].tolist(), allowed
        )
        fast = chain[k]
        slow = ewa_by_hand(
            rows["c_slow_loss"][0, k, :, 0].tolist(),
            rows["c_slow_count"][0, k, 0].item(),
            allowed,
            combination.ETA,
            k + 1,
        )
        one = chain[0]
        pooled = [(f + o) / 2 for f, o in zip(fast, one, strict=True)]
        for i, own in enumerate((fast, slow, pooled)):
            by_hand = sum(wi * fi for wi, fi in zip(own, members, strict=True))
            assert combined[0, h - 1, i, 0].item() == pytest.approx(by_hand, rel=1e-12)


def test_the_ring_holds_what_each_origin_served_as_float32_relative_to_its_one_step_mean():
    # the tick writes its origin's forecasts into the ring from its serving kernel; the members
    # recomputed from the rows afterwards (hybrid.members) must be what it wrote, bit for bit:
    # each forecast less the origin's reference (its served one-step mean, kept in float64), the
    # half-width as it is
    f = Forecaster(config_for(season_length=4))
    horizons = f.config.calibrated_horizon
    a, b = (
        seasonal(30, season_length=4, noise=0.5, seed=2),
        seasonal(30, season_length=4, noise=0.5, seed=3, level=-5.0),
    )
    for step in range(30):
        f.observe_many([("a", a[step])] + ([("b", b[step - 6])] if step >= 6 else []))
        for series in ("a", "b") if step >= 6 else ("a",):
            rows, steps = rows_of(f, series)
            every, mean, combined = hybrid.members(rows, steps, horizons)  # [1, Hc, E, 1], [1, Hc, 1], [1, Hc, 2, 1]
            half = hybrid.half_widths(rows, horizons).nan_to_num(0.0)  # [1, Hc, 1]; NaN (none yet): 0
            half = torch.where(rows["c_q"] > 0, half, 0.0)  # a horizon without a width of its own: 0
            ref = mean[0, 0, 0].item() if math.isfinite(mean[0, 0, 0].item()) else 0.0
            slot, at = f.store.slots[series], int(steps) % horizons
            assert f.store.tensors["c_origin_ref"][slot, at, 0].item() == ref
            expected = torch.cat([every - ref, (mean - ref)[:, :, None], half[:, :, None], combined - ref], dim=2)
            ring = f.store.tensors["c_origin"][slot, at]  # [Hc, E + 4, 1]
            assert torch.equal(ring, expected[0].float()), (series, step)


def mixed_ticks(n: int) -> list[list[tuple[str, float | None]]]:
    """Three series entering at ticks 0, 2 and 5, with gaps; "c" crosses zero (log members off)."""
    ticks = []
    for i in range(n):
        tick: list[tuple[str, float | None]] = [("a", 10.0 + 3 * math.sin(i / 2) + (i % 3))]
        if i >= 2:
            tick.append(("b", None if i in (4, 9, 10) else 100.0 + 5 * math.cos(i / 3)))
        if i >= 5:
            tick.append(("c", math.sin(i) - 0.2 * (i % 4) if i != 7 else None))
        ticks.append(tick)
    return ticks


def as_tuple(p) -> tuple:
    return (p.mean, p.lower, p.upper)


@pytest.mark.parametrize("season_length", [4, "auto"])
def test_the_served_one_step_forecast_equals_forecast_of_one_step(season_length):
    f = Forecaster(config_for(season_length=season_length))
    served = {}
    for tick in mixed_ticks(30):  # "a" reaches step 24: "auto" looks for a season
        for result in f.observe_many(tick):
            if result.series in served:  # what was made for this value is what had been served
                assert_identical(as_tuple(result.forecast_made), served[result.series])
            served[result.series] = as_tuple(result.forecast_next)
            one = f.forecast(result.series, 1)
            assert_identical(served[result.series], (one.mean[0], one.lower[0], one.upper[0]))
    assert f.series_stats("c").multiplicative is False


def test_forecast_many_equals_lone_forecasts():
    f = Forecaster(config_for(season_length=4))
    for tick in mixed_ticks(20):
        f.observe_many(tick)
    requests = [("a", 12), ("b", 3, 0.5), ("c", 20), ("a", 1, 0.99), ("b", 15, None)]
    many = f.forecast_many(requests)
    assert_identical(many, [f.forecast(*request) for request in requests])


# -- seasons -----------------------------------------------------------------------------


def test_auto_finds_a_clean_season_of_twelve():
    f = Forecaster(config_for(season_length="auto", max_season_length=48))
    values = seasonal(48, season_length=12)
    for value in values[:23]:
        f.observe("a", value)
    assert f.series_stats("a").seasons == []  # nothing looked for before step 24
    for value in values[23:]:
        f.observe("a", value)
    stats = f.series_stats("a")
    assert stats.seasons == [12]
    assert stats.multiplicative is True
    names = [m.name for m in stats.members]
    assert stats.members[names.index("seasonal_naive")].weight > 0


def test_the_best_multiple_of_a_batch_is_each_rows_own_choice_by_hand():
    # rows of one season length are chosen together (a Python loop per row stalled a 10,000-series tick
    # for seconds): each must get what the rule gives it alone
    rng = random.Random(3)
    rows = [
        [math.sin(2 * math.pi * t / 12) + 0.1 * rng.gauss(0, 1) for t in range(72)],  # 6 found: 12 is the season
        [math.sin(2 * math.pi * t / 6) + 0.1 * rng.gauss(0, 1) for t in range(72)],  # 6 (or a multiple)
        [rng.gauss(0, 1) for _ in range(72)],  # noise with a 6 found: no multiple is better
        [0.5 * t + (t % 4) for t in range(72)],  # 4 on a trend
        [math.sin(2 * math.pi * t / 16) + 0.1 * rng.gauss(0, 1) for t in range(72)],  # 8 found: 16 (Bonferroni)
    ]
    season_length = torch.tensor([6, 6, 6, 4, 8])

    def alone(y: list[float], p: int, longest: int) -> int:  # the rule, by hand
        changes = [y[i] - y[i - 1] for i in range(1, len(y))]
        mean_change = sum(abs(c) for c in changes) / len(changes)  # an error this small is rounding: 0
        floor = max(young_season.EXACT * max(abs(v) for v in y), hybrid.CHANGE_ROUNDING * mean_change)

        def error(e: float) -> float:
            return 0.0 if e <= floor else e

        chosen = p
        multiples = range(2 * p, longest + 1, p)
        tests = 1 if p <= hybrid.SHORT_SEASON else len(multiples)  # Bonferroni over them past a short season
        z = NormalDist().inv_cdf(1 - hybrid.MULTIPLE_FALSE_RATE / tests)
        for m in multiples:
            common = range(m, len(changes))  # the changes both lags forecast
            longer = [error(abs(changes[t] - changes[t - m])) for t in common]
            shorter = [error(abs(changes[t] - changes[t - chosen])) for t in common]
            gain = [s - lo for s, lo in zip(shorter, longer, strict=True)]
            mean = sum(gain) / len(gain)
            sd = math.sqrt(sum((g - mean) ** 2 for g in gain) / (len(gain) - 1))
            lower = sum(longer) < hybrid.MULTIPLE_GAIN * sum(shorter)
            if lower and mean > z * sd / math.sqrt(len(gain)):
                chosen = m
        return chosen

    expected = [alone(y, int(p), 24) for y, p in zip(rows, season_length.tolist(), strict=True)]
    assert expected[0] == 12 and expected[4] == 16 and len(set(expected)) >= 2  # rows of one length choose apart
    values = torch.tensor(rows, dtype=torch.float64)
    assert hybrid._best_multiple(values, season_length, 24).tolist() == expected
    # the one-row-at-a-time path
    gap = torch.cat([torch.full((len(rows), 1), math.nan, dtype=torch.float64), values], dim=1)
    assert hybrid._best_multiple(gap, season_length, 24).tolist() == expected


@pytest.mark.parametrize(("period", "n"), [(7, 600), (12, 100), (24, 300), (12, 1200)])
def test_a_sine_without_noise_is_served_its_own_season_not_a_multiple(period, n):
    # the seasonal naive of a multiple and of the season itself err by rounding alone (1e-15), and
    # its chance ordering passed the multiple test: 7 was served 77 at value 600, 12 as 24 at 100,
    # 24 as 72 at 300 (a new user's first try is often a clean sine); with a floor of 1e-14 of the largest
    # |value| alone, 12 as 84 at 1,200 (sin(2 pi t / 12) errs by 1e-12 at t = 1,200, in a pattern)
    f = Forecaster(ForecasterConfig(seed=0))
    for t in range(n):
        f.observe("a", 10 + math.sin(2 * math.pi * t / period))
    assert f.series_stats("a").seasons == [period]


def test_the_multiple_taken_does_not_depend_on_an_offset_of_the_values():
    # a review of session 44: errors up to 1e-6 of the row's largest |value| counted as rounding, so at an
    # offset of 1e6 a noise of 0.3 in the changes was floored and rows 1 and 3 took 168 for their 24; the
    # floor is now young_season.EXACT (1e-14 of it), near float64's rounding
    g = torch.Generator().manual_seed(0)
    t = torch.arange(1000, dtype=f64)
    base = torch.sin(2 * math.pi * t / 24) + torch.where((t // 24) % 7 >= 5, -2.0, 0.0)  # a weekend lower
    rows = base + 0.3 * torch.randn(8, 1000, generator=g, dtype=f64)
    chosen = {
        offset: hybrid._best_multiple(rows + offset, torch.full((8,), 24), 336).tolist() for offset in (0, 1e6, 1e8)
    }
    assert chosen[0] == chosen[1e6] == chosen[1e8] == [24] * 8  # [24, 168, 24, 168, 24, 24, 24, 24] at 1e6 before


def test_a_season_is_seldom_taken_for_its_double_by_chance():
    # a noisy season 12 at 72 values: the multiple 24 was taken in 13 % of rows when a lower
    # mean error alone decided (the sample's noise); the paired test keeps it to a few %
    generator = torch.Generator().manual_seed(0)
    t = torch.arange(72, dtype=torch.float64)
    values = torch.sin(2 * math.pi * t / 12) + 0.3 * torch.randn(200, 72, generator=generator, dtype=torch.float64)
    chosen = hybrid._best_multiple(values, torch.full((200,), 12), 24)
    assert int((chosen == 24).sum()) <= 8  # 4 of 200 here (was 26)
    assert int((chosen == 12).sum()) + int((chosen == 24).sum()) == 200


def test_detection_runs_at_the_extra_steps_only_for_rows_without_a_season_or_with_a_short_one():
    steps = torch.tensor([30, 30, 36, 42, 43])
    season_length = torch.zeros(5, 2, 2, dtype=torch.int64)  # [B, d, 2]: two features
    season_length[1, 1, 0] = 12  # the second feature of row 1 has a season longer than SHORT_SEASON
    assert hybrid.detection_due(steps, season_length).tolist() == [True, False, True, True, False]
    season_length[:, 0, 0] = hybrid.SHORT_SEASON  # a short one may be a divisor of the true season: asked again
    season_length[:, 1, 1] = 24  # (the second season does not matter)
    assert hybrid.detection_due(steps, season_length).tolist() == [True, False, True, True, False]
    season_length[:, 0, 0] = hybrid.SHORT_SEASON + 1  # every row has a longer one now: only the steps of DETECT_AT
    assert hybrid.detection_due(steps, season_length).tolist() == [False, False, True, False, False]


def test_a_ticks_rows_are_due_by_their_own_step_whether_their_steps_span_a_few_values_or_many() -> None:
    # detection_due applies its rules once per step between the tick's lowest and highest (a table, read per
    # row) where they span fewer than STEP_TABLE steps, else to every row: both as each row's step alone says
    g = torch.Generator().manual_seed(4)

    def alone(step: int, lengths: torch.Tensor) -> bool:  # the rules for one row, by hand
        unsettled = step in hybrid.DETECT_UNSETTLED and bool((lengths[:, 0] <= hybrid.SHORT_SEASON).all())
        return step in hybrid.DETECT_AT or step % hybrid.DETECT_EVERY == 0 or unsettled

    for low, span in ((1, 3), (40, 50), (1000, 60), (5, hybrid.STEP_TABLE + 10), (1, 3 * hybrid.DETECT_EVERY)):
        steps = low + torch.randint(0, span, (300,), generator=g)
        steps[:2] = torch.tensor([low, low + span - 1])  # the span's ends
        lengths = torch.randint(0, 2 * hybrid.SHORT_SEASON, (300, 2, 2), generator=g)
        lengths[::3] = 0  # a third of the rows without a season
        expected = [alone(int(s), lengths[i]) for i, s in enumerate(steps)]
        assert hybrid.detection_due(steps, lengths).tolist() == expected, (low, span)
        assert any(expected) or span < 16


def test_the_quick_check_before_detection_misses_no_detection_step() -> None:
    # may_detect skips detection_due on most ticks: it must be true wherever detection_due can be
    # (a row with no season is due at the most steps), and false elsewhere
    none = torch.zeros(1, 1, 2, dtype=torch.int64)
    for s in range(1, 3 * hybrid.DETECT_EVERY + 2):
        step = torch.tensor([s])
        assert hybrid.may_detect(step) == bool(hybrid.detection_due(step, none)), s
    assert hybrid.may_detect(torch.tensor([5, 7, 24])) and not hybrid.may_detect(torch.tensor([5, 7, 25]))


def test_a_season_that_shows_between_the_detection_steps_is_taken_at_an_extra_step():
    # a noisy quarterly season that the autocorrelation shows at 42 values, not at 36: before,
    # the next look was at 48 (pmdarima's woolyrnq: its 4 found at 72 of 119 values, now at 42)
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(48, generator=generator, dtype=torch.float64)
    values = [100.0 + 2.0 * math.sin(math.pi * t / 2) + 1.5 * float(noise[t]) for t in range(48)]
    f = Forecaster(ForecasterConfig())
    seen = {}
    for step, value in enumerate(values, start=1):
        f.observe("q", value)
        seen[step] = f.series_stats("q").seasons
    assert seen[36] == [] and seen[41] == []  # nothing at the steps every row is looked at
    assert seen[42] == [4]  # was [] until 48


def test_a_short_season_found_first_is_looked_at_again_for_the_longer_one():
    # a monthly season whose quarterly part shows first (pmdarima's wineind: 4 at 30, its 12 at 48):
    # a short season may be a divisor of the true one, so it is asked again between the usual looks
    generator = torch.Generator().manual_seed(2)
    noise = torch.randn(48, generator=generator, dtype=torch.float64)
    values = [100.0 + 3.0 * math.sin(math.pi * t / 2) + 3.0 * (t % 12 == 11) + 0.5 * float(noise[t]) for t in range(48)]
    f = Forecaster(ForecasterConfig())
    seen = {}
    for step, value in enumerate(values, start=1):
        f.observe("m", value)
        seen[step] = f.series_stats("m").seasons
    assert seen[24] == seen[36] == seen[41] == [4]
    assert seen[42] == [12]  # was [4] until 48
    assert seen[48] == [12]


def test_auto_finds_no_season_in_noise():
    f = Forecaster(config_for(season_length="auto", max_season_length=48))
    rng = random.Random(5)
    for _ in range(48):
        f.observe("a", rng.gauss(0.0, 1.0))
    stats = f.series_stats("a")
    assert stats.seasons == []
    names = [m.name for m in stats.members]
    assert stats.members[names.index("seasonal_naive")].weight == 0.0  # no season: never weighted


def test_a_season_that_changes_length_is_never_reported_twice():
    # a sine whose season goes from 24 to 36: the first season moved to its multiple 72, and the
    # second was 72 too ([72, 72] from value 575 to 767: a hostile test)
    f, rng = Forecaster(ForecasterConfig()), random.Random(1)
    for t in range(800):
        f.observe("s", 10 * math.sin(2 * math.pi * t / (24 if t < 300 else 36)) + rng.gauss(0.0, 0.5))
        seasons = f.series_stats("s").seasons
        assert len(set(seasons)) == len(seasons), (t, seasons)


def test_a_configured_season_is_reported_from_the_first_value():
    f = Forecaster(config_for(season_length=[7, 3]))
    f.observe("a", 1.0)
    assert f.series_stats("a").seasons == [3, 7]


# -- members' scores and weights ---------------------------------------------------------


def test_members_mae_equals_a_hand_recomputation_and_weights_sum_to_one():
    m = 4
    rng = random.Random(8)
    # the ring keeps each forecast in float32 relative to its origin's served one-step mean: the
    # scored errors are the forecasts' to about 1e-7 of their distance from it
    values = [float(rng.randint(1, 40) + 10 * (t % m == 0)) for t in range(1, 31)]
    values[20] = -3.0  # a value <= 0: the log members are off from here
    f = Forecaster(config_for(season_length=m))
    results = [f.observe("a", value) for value in values]
    stats = f.series_stats("a")
    by_name = {member.name: member for member in stats.members}
    assert list(by_name) == [*experts.NAMES, "network"]
    naive = [abs(values[t] - values[t - 1]) for t in range(1, len(values))]
    assert by_name["naive"].mae == pytest.approx(sum(naive) / len(naive), rel=1e-7)
    # seasonal naive: the value m steps back, the last value while none exists
    snaive = [abs(values[t] - values[t - m if t >= m else t - 1]) for t in range(1, len(values))]
    assert by_name["seasonal_naive"].mae == pytest.approx(sum(snaive) / len(snaive), rel=1e-7)
    assert sum(member.weight for member in stats.members) == pytest.approx(1.0, rel=1e-12)
    assert all(member.weight >= 0 for member in stats.members)
    assert stats.multiplicative is False
    assert [member.weight for name, member in by_name.items() if name.startswith("log_")] == [0.0] * 8
    # the served forecast's own MAE: what forecast_made said against each value
    served = [abs(r.value - r.forecast_made.mean) for r in results[1:]]
    assert stats.mae == pytest.approx(sum(served) / len(served), rel=1e-12)
    assert stats.count == len(values)


def test_weights_in_series_stats_are_the_one_step_weights_by_hand():
    f = Forecaster(config_for(season_length=4))
    for value in seasonal(20, season_length=4, noise=0.4, seed=2):
        f.observe("a", value)
    rows, _ = rows_of(f, "a")
    allowed = hybrid.allowed(rows)[0, :, 0].tolist()
    expected = hand_served_weights(rows, 0, allowed)
    assert [m.weight for m in f.series_stats("a").members] == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_a_forecast_past_float32_scores_as_a_capped_error_not_as_a_perfect_one():
    rows = hybrid.fields(1, 1, ring=8, max_season=2, horizons=1, level=0.9)
    rows["slot"] = torch.arange(1)  # the rows of a store of one series
    rows["x_scale"][:] = 1.0
    rows["x_seen"][:] = True  # a value was observed before the forecast was made
    rows["c_q"][:] = 1.0
    rows["x_scale"][:] = 2.0  # the local scale: the caps are CAP local scales
    members = hybrid.N_MEMBERS
    made = torch.zeros(hybrid.ORIGIN_COLUMNS)  # the members, the served, its half-width, fast, slow, pooled
    made[0] = math.inf  # the naive member forecast 1e300 at step 1: stored as inf in float32
    made[members] = math.inf  # and so did the served combination
    made[members + 2] = math.inf  # and the fast combiner
    made[1:members] = 2.0
    made[members + 3] = 2.0
    made[members + 4] = math.inf  # and the pooled one (at one step the fast one's)
    rows["c_origin"][0, 0, 0, :, 0] = made  # [origin 1 % Hc, h - 1, member, feature] (relative to a reference 0)
    step = torch.tensor([2])
    y, mask = torch.tensor([[2.0]], dtype=f64), torch.tensor([[True]])
    hybrid.score(rows, y, mask, step, 0.9, rows["c_origin"], rows["c_origin_ref"])
    # documented in hybrid.fields: "a value past float32's range scores as an infinite, i.e. capped, error"
    assert rows["c_loss"][0, 0, 0, 0].item() == combination.CAP  # in local scales
    assert rows["c_slow_loss"][0, 0, 0, 0].item() == combination.CAP * 2.0  # in the series' units
    # fast and pooled missed, slow exact
    assert rows["c_meta_loss"][0, 0, :, 0].tolist() == [combination.CAP * 2.0, 0.0, combination.CAP * 2.0]
    assert rows["c_q"][0, 0, 0].item() > 1.0  # the served forecast missed: its interval must widen


# -- intervals ---------------------------------------------------------------------------


HORIZONS = (1, 6, 12)


@pytest.fixture(scope="module")
def long_stream_coverage() -> dict[int, float]:
    """Coverage of the 90 % intervals at h = 1, 6, 12 on two series of 1,000 values (a season of
    12 under noise) observed together, measured as the accuracy benchmark does: at each origin
    past a warm-up, forecast 12 steps, then check each target when it comes. (The one long
    computation of this file: run once, judged by the tests below.)"""
    f = Forecaster(config_for(season_length=12, k1=16, k2=16))
    n, warmup, longest = 1000, 100, max(HORIZONS)
    streams = {name: seasonal(n, season_length=12, noise=0.6, seed=seed) for seed, name in enumerate(("a", "b"))}
    inside = dict.fromkeys(HORIZONS, 0)
    origins = 0
    for t in range(n):
        if t >= warmup and t + longest <= n:
            for name, made in zip(streams, f.forecast_many([(name, longest) for name in streams]), strict=True):
                origins += 1
                for h in HORIZONS:
                    inside[h] += made.lower[h - 1] <= streams[name][t + h - 1] <= made.upper[h - 1]
        f.observe_many([(name, values[t]) for name, values in streams.items()])
    return {h: inside[h] / origins for h in HORIZONS}


def test_one_step_interval_coverage_on_a_long_stream_is_the_level(long_stream_coverage):
    assert abs(long_stream_coverage[1] - 0.9) <= 0.02, long_stream_coverage


def test_interval_coverage_on_a_long_stationary_stream_is_within_three_points_at_every_horizon(long_stream_coverage):
    # issue 10 asks for 5 points on real series; on a long stationary stream a calibrated interval
    # lands within about 1 (measured: 0.899-0.906 at every horizon without the running maximum)
    assert all(abs(c - 0.9) <= 0.03 for c in long_stream_coverage.values()), long_stream_coverage


def test_intervals_widen_with_the_horizon_on_a_random_walk():
    f = Forecaster(config_for(season_length=None))
    rng = random.Random(4)
    y = 50.0
    for _ in range(150):
        y += rng.gauss(0.0, 1.0)
        f.observe("a", y)
    made = f.forecast("a", 24)
    width = [u - lo for lo, u in zip(made.lower, made.upper, strict=True)]
    # sqrt(6) = 2.4 and sqrt(12) = 3.5 for a random walk; 1 if nothing widened (each q_h is a noisy estimate)
    assert width[5] > 1.5 * width[0] and width[11] > 2.0 * width[0] and width[11] > width[5], width
    # past the calibrated horizon: q_12 sqrt(h / 12) at least (each width is upper - lower: to rounding)
    assert all(w >= width[11] * (1 - 1e-12) for w in width[12:])
    wider = f.forecast("a", 24, level=0.99)
    assert all(u - lo > w for lo, u, w in zip(wider.lower, wider.upper, width, strict=True))


@pytest.mark.parametrize("gaps", [False, True])
def test_a_miss_is_judged_against_q_itself_where_the_horizon_had_no_width_of_its_own(gaps):
    # q_h replayed by hand at h = 12 on a series that rises for 20 values and then turns (a heart
    # rate's start), with every third value missing or none: a forecast served while q_12 was still
    # 0 (nothing scored at h = 12: its width taken from shorter horizons) is judged against q itself
    # when scored, one served with q_12's own width against that width. Judged against the narrow
    # widths, each late miss grew q by exp(0.4 * 0.9) (session 30's rule) and q_12 reached 198 on errors of 12; a rule
    # on the horizon's count of scored targets took forecasts served with q_12's own width for young
    # ones where values were missing (the count grows on observed values only).
    f = Forecaster(config_for(season_length=None, calibrated_horizon=12))
    values = [84.0 + 0.8 * t for t in range(20)] + [99.0 - 0.3 * t + math.sin(t) for t in range(60)]
    if gaps:
        values = [math.nan if t % 3 == 2 and t > 2 else v for t, v in enumerate(values)]
    h, members, level = 12, hybrid.N_MEMBERS, f.config.interval_level
    q_at = {}  # step -> q_12 after it (what that origin's forecasts were served with)
    judged_apart = own_width = 0
    for t, value in enumerate(values, start=1):
        slot = f.store.slots.get("a")
        scored = slot is not None and t > h and not math.isnan(value)
        if scored:
            tensors = f.store.tensors
            made = tensors["c_origin"][slot, t % h, h - 1, :, 0].double()  # origin t - 12's forecasts of y_t
            ref = tensors["c_origin_ref"][slot, t % h, 0].item()
            error, served = abs(value - (ref + made[members].item())), made[members + 1].item()
            q, young = tensors["c_q"][slot, h - 1, 0].item(), q_at[t - h] == 0.0
            spread = tensors["c_spread"][slot : slot + 1].clone().numpy()  # [1, Hc, 3, 1]
        f.observe("a", value)
        q_at[t] = f.store.tensors["c_q"][f.store.slots["a"], h - 1, 0].item()
        if scored:
            assert (served == 0.0) == young, t  # remembered without a width where it had none of its own
            multiplier = calibration.normal_multiplier(level)  # (q far above the floor: 0 for it)
            expected = calibration.spread_stepped(
                q, spread, 0, h - 1, 0, error, level, multiplier, 0.0, 0.0 if young else served, h
            )
            assert q_at[t] == pytest.approx(expected, rel=1e-12), t
            after = f.store.tensors["c_spread"][f.store.slots["a"], h - 1, :, 0].numpy()
            assert after == pytest.approx(spread[0, h - 1, :, 0], rel=1e-12), t
            judged_apart += young and (error > served) != (error > q)
            own_width += not young
    assert own_width >= 30  # most scored forecasts were served with q_12's own width
    assert judged_apart >= 2  # and among the young ones the rule decided misses: not a test that cannot fail
    assert max(q_at.values()) < 4 * max(abs(v - 90.0) for v in values if not math.isnan(v))


def test_no_interval_before_a_scale_and_no_forecast_before_a_value():
    # was: a series with one value (or none) served mean +- z * 1e-9 * (|level| + 1), a certainty nobody has
    f = Forecaster(config_for(season_length=None))
    one = f.observe("one", 1e6).forecast_next
    assert one.mean == pytest.approx(1e6, rel=1e-6) and (one.lower, one.upper) == (None, None)
    assert f.observe("nothing", None).forecast_next == Prediction(None, None, None)
    for horizon in (3, 30):  # from the served path and, past the calibrated horizon, from the members
        made = f.forecast("one", horizon, level=0.5)
        assert made.mean == pytest.approx([1e6] * horizon, rel=1e-6)
        assert made.lower == made.upper == [None] * horizon
        assert f.forecast("nothing", horizon).mean == [None] * horizon
    after = f.observe("nothing", 3.0).forecast_next
    assert after.mean == pytest.approx(3.0, rel=1e-6) and (after.lower, after.upper) == (None, None)
    second = f.observe("one", 1e6 + 4.0)  # the first one-step error (4) is scored: q_1 = FIRST * 4
    assert second.forecast_made.lower is None
    low, mean, high = second.forecast_next.lower, second.forecast_next.mean, second.forecast_next.upper
    assert high - mean == pytest.approx(mean - low) and high - mean == pytest.approx(calibration.FIRST * 4.0)
    later = f.forecast("one", 30)
    assert all(lo < m < hi for lo, m, hi in zip(later.lower, later.mean, later.upper, strict=True))


# -- checkpoints -------------------------------------------------------------------------


def round_trip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize(
    ("season_length", "shift"),
    [("auto", -10.0), ([3, 6], 0.0)],
    ids=["auto, season detected, log members off", "two configured seasons, log members on"],
)
def test_a_checkpoint_continues_bit_identically_with_the_hybrid_state(season_length, shift):
    f = Forecaster(config_for(season_length=season_length))
    values = [v + shift for v in seasonal(40, season_length=4, noise=0.2, seed=6)]
    for value in values[:25]:  # "auto" looked at step 24 (and will again at 36)
        f.observe("a", value)
    stats = f.series_stats("a")
    assert stats.seasons == ([4] if season_length == "auto" else [3, 6])
    assert stats.multiplicative is (shift == 0.0)
    g = Forecaster.from_state_dict(round_trip(f.state_dict()))
    assert_identical(snapshot(g), snapshot(f))
    rest = [[("a", None if i == 3 else v)] + ([("new", v / 2)] if i > 5 else []) for i, v in enumerate(values[25:])]
    assert_identical([f.observe_many(tick) for tick in rest], [g.observe_many(tick) for tick in rest])
    assert_identical(snapshot(g), snapshot(f))
    assert_identical(f.forecast("a", 14), g.forecast("a", 14))
    assert_identical(f.series_stats("a"), g.series_stats("a"))


def test_a_checkpoint_of_format_1_is_refused_saying_so():
    f = Forecaster(config_for())
    f.observe("a", 1.0)
    state = f.state_dict()
    assert state["format"] == 27
    with pytest.raises(ValueError, match=r"format=1 is a checkpoint of tbptt-online 0\.1 .* cannot be loaded"):
        Forecaster.from_state_dict({**state, "format": 1})
    with pytest.raises(ValueError, match="format=None is invalid: this version reads formats 2 to 27"):
        Forecaster.from_state_dict({k: v for k, v in state.items() if k != "format"})


def test_a_checkpoint_of_format_2_is_migrated_its_served_widths_unknown():
    f = Forecaster(config_for())
    for v in [1.0, 2.0, 1.5, 3.0, 2.5]:
        f.observe("a", v)
    state = as_format_3(f.state_dict())  # without the long AR (format 4)
    ring = state["store"]["tensors"]["c_origin"]
    old = {**state, "format": 2, "store": {**state["store"], "tensors": {**state["store"]["tensors"]}}}
    old["store"]["tensors"]["c_origin"] = ring[:, :, :, :-1].clone()  # format 2 had no half-widths' slot
    check_state(old)  # checked as the format 9 it loads as
    g = Forecaster.from_state_dict(old)
    migrated = as_format_3(g.state_dict())["store"]["tensors"]["c_origin"]
    assert torch.equal(migrated[:, :, :, :-1], ring[:, :, :, :-1])
    assert migrated[:, :, :, -1].abs().max().item() == 0.0  # unknown: judged against the current q
    g.observe("a", 2.0)  # and it goes on
    half = g.state_dict()["store"]["tensors"]["c_origin"][0, 6 % 12, 0, hybrid.N_MEMBERS + 1]
    assert half.item() > 0  # step 6: served with its width


# -- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(season_length=0), r"season_length=0 is invalid: must be an integer in \[2, 336\]"),
        (dict(season_length=1), r"season_length=1 is invalid: must be an integer in \[2, 336\]"),
        (dict(season_length=337), r"season_length=337 is invalid: must be an integer in \[2, 336\]"),
        (dict(season_length=30, max_season_length=24), r"season_length=30 is invalid: must be an integer in \[2, 24\]"),
        (dict(season_length=[12, 24, 48]), r"season_length=\[12, 24, 48\] is invalid: must be \"auto\""),
        (dict(season_length=[]), r"season_length=\[\] is invalid"),
        (dict(season_length="hourly"), r"season_length='hourly' is invalid: must be \"auto\", null"),
        (dict(season_length=[12, "24"]), r"season_length='24' is invalid: must be an integer"),
        (dict(season_length=12.0), r"season_length=12.0 is invalid"),
        (dict(season_length=True), r"season_length=True is invalid"),
    ],
)
def test_a_bad_season_length_is_refused_naming_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ForecasterConfig(**kwargs)


@pytest.mark.parametrize(("given", "kept"), [("auto", "auto"), (None, None), (12, (12,)), ([48, 12], (12, 48))])
def test_a_good_season_length_is_kept_sorted(given, kept):
    assert ForecasterConfig(season_length=given).season_length == kept


def profile_spread(y: list[float], m: int) -> float:
    """By hand: the values about their least-squares line, less their mean at each phase t mod m,
    as a mean square per degree of freedom (n - m - 2)."""
    n = len(y)
    t_mean, y_mean = (n - 1) / 2, sum(y) / n
    slope = sum((t - t_mean) * (v - y_mean) for t, v in enumerate(y)) / sum((t - t_mean) ** 2 for t in range(n))
    about = [v - y_mean - slope * (t - t_mean) for t, v in enumerate(y)]
    phase_mean = [sum(about[k::m]) / len(about[k::m]) for k in range(m)]
    return sum((a - phase_mean[t % m]) ** 2 for t, a in enumerate(about)) / (n - m - 2)


def naive_error(y: torch.Tensor, m: int, start: int) -> float:
    """By hand: the mean |y_t - y_{t-m} - m * drift| over t >= start."""
    drift = y.diff().mean()
    return (y[start:] - y[start - m : len(y) - m] - m * drift).abs().mean().item()


def test_the_season_placed_one_lag_off_is_moved_to_the_neighbour_that_fits_best_both_ways():
    g = torch.Generator().manual_seed(4)
    t = torch.arange(96, dtype=f64)
    daily = 50 + 0.2 * t + 10 * torch.sin(2 * math.pi * t / 24) + torch.randn(96, generator=g, dtype=f64)
    values = torch.stack([daily, daily, daily, torch.zeros(96, dtype=f64)])
    chosen = hybrid._best_neighbour(values, torch.tensor([25, 23, 24, 0]), 48)
    assert chosen.tolist() == [24, 24, 24, 0]  # the trend (drift 0.2 a step) does not favour the shorter lag
    for given in (23, 25):  # by hand: of given - 1, given, given + 1, 24 wins both measures
        near = (given - 1, given, given + 1)
        spread = {m: profile_spread(daily.tolist(), m) for m in near}
        naive = {m: naive_error(daily, m, given + 1) for m in near}
        assert min(spread, key=spread.get) == min(naive, key=naive.get) == 24
    assert hybrid._best_neighbour(values[:1], torch.tensor([23]), 23).tolist() == [23]  # 24 is past longest
    assert hybrid._best_neighbour(values[:1, :26], torch.tensor([24]), 48).tolist() == [24]  # too short: kept


def test_a_neighbour_that_wins_one_measure_only_does_not_replace_the_season_found():
    # server_metrics' web-2 at value 96: the autocorrelation finds 24; one cycle back, 23's seasonal
    # naive erred less (3.8 against 4.2) and was taken until value 144; its profile is 24's
    with open(DATA / "server_metrics.csv", newline="") as file:
        rows = [row for row in csv.DictReader(file) if row["host"] == "web-2"]
    y = fill_gaps(torch.tensor([[float(row["cpu_percent"] or "nan") for row in rows[:96]]], dtype=f64))
    assert hybrid._best_neighbour(y, torch.tensor([24]), 48).tolist() == [24]
    spread = {m: profile_spread(y[0].tolist(), m) for m in (23, 24, 25)}
    naive = {m: naive_error(y[0], m, 25) for m in (23, 24, 25)}
    assert min(spread, key=spread.get) == 24 and min(naive, key=naive.get) == 23


def five_minute_day(seed: int, n: int) -> torch.Tensor:
    """50 + 10 sin(2 pi t / 288) + AR(1) noise (phi 0.8, innovations 0.3): a 5-minute series' daily cycle."""
    g = torch.Generator().manual_seed(seed)
    e = torch.zeros(n, dtype=f64)
    steps = 0.3 * torch.randn(n, generator=g, dtype=f64)
    for i in range(1, n):
        e[i] = 0.8 * e[i - 1] + steps[i]
    return 50 + 10 * torch.sin(2 * math.pi * torch.arange(n, dtype=f64) / 288) + e


def test_a_long_season_found_off_is_moved_to_the_lag_within_15_percent_whose_profile_spreads_least():
    # a new user (session 53): the autocorrelation found a 5-minute series' daily 288 as 251 to 301, another at
    # nearly every detection; the profile of the values about their line fits best at 288
    days = five_minute_day(4, 1008)
    chosen = hybrid._best_neighbour(torch.stack([days, days, days]), torch.tensor([251, 301, 295]), 336)
    assert chosen.tolist() == [288, 288, 288]
    near = range(295 - 44, 295 + 45)  # by hand: round(0.15 * 295) = 44 lags each side
    spread = {m: profile_spread(days.tolist(), m) for m in near}
    assert min(spread, key=spread.get) == 288
    # the reach: 15 % of the season found, never past the longest season looked for
    assert hybrid._best_neighbour(days[None], torch.tensor([240]), 336).tolist() == [276]  # 240 + 36
    assert hybrid._best_neighbour(days[None], torch.tensor([300]), 290).tolist() == [288]


def test_a_five_minute_daily_season_is_served_within_a_lag_of_288_at_every_detection_from_the_third_day():
    f = Forecaster(ForecasterConfig())
    values = five_minute_day(4, 288 * 7).tolist()
    found = []
    for t, v in enumerate(values, start=1):
        f.observe("a", v)
        if t % 288 == 0:
            found.append(f.series_stats("a").seasons)
    assert all(abs(season - 288) <= 1 for (season,) in found[2:]), found  # it was 254, 295, 295, 295, 295


@pytest.mark.parametrize("level", [1.0, 1e-15, 1e-20, 1e-30])
def test_a_series_of_tiny_values_is_forecast_as_one_of_ordinary_values(level):
    # the unit of a flat series was at least 1e-9 in the series' own units: a series of values about
    # 1e-20 had intervals 1e5 times wider than its data, covering all of it, and an MAE 1.4e6 times the naive's
    f, rng = Forecaster(ForecasterConfig(hidden_size=16)), random.Random(3)
    for _ in range(300):
        f.observe("s", level * (1 + 0.1 * rng.gauss(0.0, 1.0)))
    stats, served = f.series_stats("s"), f.forecast("s", 1)
    assert stats.mae < stats.naive_mae and 0.8 < stats.coverage < 0.97
    assert served.upper[0] - served.lower[0] < 0.6 * level  # 2 x 1.645 x the noise, 0.1 * level: 0.33 * level


def test_a_young_series_forecast_far_ahead_stays_within_its_values() -> None:
    """Five values in [2, 9]: the AR experts, fitted on four changes, took weight like every
    member (ar read 24 at h = 12 and -153 at h = 100, ar_changes 568 at h = 1000) and the served
    forecast went to -2.6 at h = 100 and 44 at h = 1000. They take weight once the series has
    scored as many values as they have coefficients."""
    f = Forecaster(ForecasterConfig())
    for value in (3.0, 7.0, 2.0, 9.0, 5.0):
        f.observe("y", value)
    far = f.forecast("y", horizon=1000).mean
    assert all(2.0 <= far[h - 1] <= 9.0 for h in (1, 12, 100, 1000)), [far[h - 1] for h in (1, 12, 100, 1000)]
    weights = {m.name: m.weight for m in f.series_stats("y").members}
    assert weights["ar"] == weights["ar_changes"] == 0.0 and weights["naive"] > 0.0


def test_a_young_series_ending_in_a_spike_is_not_forecast_off_far_past_the_tracked_horizons() -> None:
    """A review (session 42): six values of about 10, the last 30. The seasonal AR, weighted once 5
    values are scored, forecast 10,092 at h = 1,000 (each z of its path bounded, not their sum) and
    the served mean read 104 at h = 100 and 862 at h = 1,000, the weights past the 12 tracked
    horizons being the 12th's. Past them the AR adds no change."""
    f = Forecaster(ForecasterConfig())
    for value in (10.691, 9.908, 11.381, 10.513, 9.796, 30.0):
        f.observe("y", value)
    far = f.forecast("y", horizon=1000).mean
    assert {m.name: m.weight for m in f.series_stats("y").members}["ar"] > 0.05
    assert all(9.796 - 20.2 <= v <= 30.0 + 20.2 for v in far), max(far)  # within one range of the values


def scripted_seasons(monkeypatch, script: list[int | tuple[int, int]]) -> None:
    """The seasons found at successive detections replaced by ``script`` (then its last; a pair: the
    first and second seasons): the autocorrelation's answer, with no provisional season, multiple or
    neighbour taken instead."""
    asked = []

    def answer(values, max_seasons, max_length):
        asked.append(values.shape[1])
        found = torch.zeros(values.shape[0], max_seasons, dtype=torch.int64)
        found[:, :] = torch.tensor(script[min(len(asked), len(script)) - 1])
        return found

    answered_alone(monkeypatch, answer)


def answered_alone(monkeypatch, answer) -> None:
    """The autocorrelation's answer replaced by ``answer`` (``detect_seasons``' arguments), with no provisional
    season, multiple or neighbour taken instead."""
    monkeypatch.setattr(hybrid, "detect_seasons", answer)
    monkeypatch.setattr(hybrid, "young_seasons", lambda values, longest: torch.zeros(len(values), dtype=torch.int64))
    monkeypatch.setattr(hybrid, "_best_multiple", lambda values, season_length, longest, cut=None: season_length)
    monkeypatch.setattr(hybrid, "_best_neighbour", lambda values, season_length, longest: season_length)


def seasons_and_runs(
    values: list[float], max_season_length: int = 24, before: Callable[[int], None] = lambda step: None
) -> dict[int, tuple[int, int]]:
    """After each value: the series' first season and the detections in a row that gave it (``before(step)``
    is called before the value of that step is observed)."""
    f, out = Forecaster(ForecasterConfig(max_season_length=max_season_length)), {}
    for step, value in enumerate(values, start=1):
        before(step)
        f.observe("s", value)
        slot = f.store.slot_of("s")
        out[step] = (
            int(f.store.tensors["x_season_length"][slot, 0, 0]),
            int(f.store.tensors["x_season_runs"][slot, 0]),
        )
    return out


def sine(season_length: float, n: int, seed: int = 0, amplitude: float = 10.0, noise: float = 0.3) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(n, generator=g, dtype=f64)
    return [100.0 + amplitude * math.sin(2 * math.pi * t / season_length) + noise * float(e[t]) for t in range(n)]


def test_a_season_given_twice_in_a_row_is_held_against_one_that_fits_no_better(monkeypatch):
    # sunspots: its 11 found at 48 and 72; the window of the last 96 values gave 10 at 96 and 11 again
    # at 192, each change re-estimating the components and restarting the seasonal AR (one step / h=1..12
    # 0.659 / 0.581 with the changes, 0.657 / 0.567 held). Here a clean 11, and detections that say 7
    scripted_seasons(monkeypatch, [0, 0, 0, 0, 11, 11, 7])  # at 16, 20, 24, 30, 36, 48, then 72, 96
    seen = seasons_and_runs(sine(11, 100))
    assert [seen[s] for s in (35, 36, 47, 48, 72, 96)] == [(0, 0), (11, 1), (11, 1), (11, 2), (11, 3), (11, 4)]


def test_a_held_season_is_left_for_one_that_fits_clearly_better(monkeypatch):
    # the cycle changes from 11 steps to 7 at value 30: held at 72 (11 still fits the older values in the
    # ring), left at 96, where the last 75 values' seasonal naive of 7 errs far less, significantly
    scripted_seasons(monkeypatch, [0, 0, 0, 0, 11, 11, 7])
    seen = seasons_and_runs(sine(11, 30) + sine(7, 100, seed=1)[30:])
    assert [seen[s] for s in (48, 72, 96)] == [(11, 2), (11, 3), (7, 1)]


def test_a_season_given_once_is_left_for_another_as_before(monkeypatch):
    # a short sample's first answer is often one lag off (server_metrics' db-1: 25 at value 72, 24 at
    # 96): only a season given twice in a row is held
    scripted_seasons(monkeypatch, [0, 0, 0, 0, 11, 7])  # 36: 11; 48: 7, which fits a clean 11 worse
    seen = seasons_and_runs(sine(11, 50))
    assert seen[36] == (11, 1) and seen[48] == (7, 1)


def test_a_held_season_found_second_stays_first_and_keeps_the_other_second(monkeypatch):
    # (a review: the held 11 was put back first and the 11 found second dropped as a duplicate, so a
    # series of two seasons was left with one, its components re-estimated: the change the hold avoids)
    scripted_seasons(monkeypatch, [0, 0, 0, 0, (11, 7), (11, 7), (7, 11)])
    values = [a + b - 100.0 for a, b in zip(sine(11, 100), sine(7, 100, seed=1), strict=True)]
    f = Forecaster(ForecasterConfig(max_season_length=24))
    seasons = {}
    for step, value in enumerate(values, start=1):
        f.observe("s", value)
        seasons[step] = f.series_stats("s").seasons
    assert [seasons[s] for s in (36, 48, 72, 96)] == [[11, 7]] * 4


def test_a_multiple_of_the_held_season_is_taken_as_found(monkeypatch):
    # taylor's half-hourly 48, held from value 96, and its weekly 336 found at 1024: a multiple is not
    # contested (contested, 336 waited until 2048: one step / h=1..12 0.205 / 0.113 -> 0.241 / 0.171)
    scripted_seasons(monkeypatch, [0, 0, 0, 0, 6, 6, 12])  # 36, 42 (6 is short: looked at again), 48
    # (a sine of 6, which 6 forecasts: on one of 12, the forecasts with 6 missed by so much that the value
    # after it was taken as a change once session 46's narrower widths judged it, and the run began again)
    seen = seasons_and_runs(sine(6, 50))
    assert [seen[s] for s in (36, 42, 48)] == [(6, 1), (6, 2), (12, 1)]


def test_a_noisy_daily_sine_given_a_season_one_lag_off_early_serves_its_own_by_value_1100():
    # 10 + 3 sin(2 pi t / 24) + N(0, 1), torch seeds 0-39: 23 or 25 at two early detections, then held for
    # good in 4 of 40 (seeds 17, 29, 30, 38), every later detection finding 24; now 24 in all but seed 33's
    # (48: a multiple that fits as well)
    f = Forecaster(ForecasterConfig())
    for seed in (17, 29):
        g = torch.Generator().manual_seed(seed)
        noise = torch.randn(1100, generator=g, dtype=f64)
        for t in range(1100):
            f.observe(f"s{seed}", 10.0 + 3.0 * math.sin(2 * math.pi * t / 24) + float(noise[t]))
    assert f.series_stats("s17").seasons == f.series_stats("s29").seasons == [24]


def test_a_held_season_one_lag_off_is_left_when_two_detections_find_the_neighbour_that_fits(monkeypatch):
    # a noisy daily sine (session 41): its broad autocorrelation top gave 23 at two early detections, then
    # every later one 24, which errs 0.9 of 23's one cycle back (not under SWITCH_GAIN): 23 was served for
    # good (11 of 40 such sines at 1,200 values). Now released at the first 24 (its run at 0), left for
    # 24 at the second, which is held at once; 23 found at the third does not take it back (a review: a
    # period of 12.5 went 12 -> 13 -> 12 at six detections in a row while 24 was taken as found once)
    real = hybrid._best_neighbour
    scripted_seasons(monkeypatch, [0, 0, 0, 0, 23, 23, 23, 23, 24, 24, 23])  # 24 at 144 and 192, 23 at 288
    monkeypatch.setattr(hybrid, "_best_neighbour", real)
    values = sine(24, 300, amplitude=5.0, noise=1.0)
    seen = seasons_and_runs(values, max_season_length=48)
    assert [seen[s] for s in (96, 144, 192, 288)] == [(23, 4), (23, 0), (24, 2), (24, 3)]
    y = torch.tensor([values[:144]], dtype=f64)
    assert not hybrid._replaces(y, torch.tensor([24]), torch.tensor([23])).item()  # not by the old rule
    for part in (y[:, :72], y[:, 72:]):  # the neighbours' test from 23 moves to 24 on each half
        assert real(part, torch.tensor([23]), 36).tolist() == [24]


def test_a_held_neighbour_is_left_for_the_season_whose_profile_fits_both_halves_far_better():
    # 10 + sin(2 pi t / 24) + N(0, 0.5), Python's random seeds 13 and 14 (session 44): 23 held from value
    # 192 or 288 to 1,200 while every detection found 24. On the first half of the values read, 23's
    # seasonal naive erred 0.581 and 24's 0.593 (the neighbours' test kept 23), while 24's profile spread
    # was 0.25 and 23's 0.82: a one-step MAE of 0.77 of naive from value 400 where a given 24 reads 0.73
    f = Forecaster(ForecasterConfig())
    for seed in (13, 14):
        rng = random.Random(seed)
        for t in range(600):
            f.observe(f"s{seed}", 10 + math.sin(2 * math.pi * t / 24) + 0.5 * rng.gauss(0, 1))
    assert f.series_stats("s13").seasons == f.series_stats("s14").seasons == [24]


def test_a_held_season_stays_held_while_half_of_the_values_keep_it(monkeypatch):
    # a cycle whose length wanders (sunspots' 11 found as 10 at values 96 and 144: moved there, one step /
    # h=1..12 0.657 / 0.561 -> 0.658 / 0.580): 23 steps for the first 150 values, 24 after. Held while the
    # values read (the last 147) begin with 23, left once they are all 24
    real = hybrid._best_neighbour
    scripted_seasons(monkeypatch, [0, 0, 0, 0, 23, 23, 23, 23, 24, 24])
    monkeypatch.setattr(hybrid, "_best_neighbour", real)
    values = sine(23, 150, amplitude=5.0, noise=1.0) + sine(24, 300, seed=1, amplitude=5.0, noise=1.0)[150:]
    seen = seasons_and_runs(values, max_season_length=48)
    assert [seen[s] for s in (144, 192, 288)] == [(23, 5), (23, 6), (23, 0)]
    y = torch.tensor([values[192 - 147 : 192]], dtype=f64)  # the values ring at 192: 3 x 48 + 3
    assert real(y[:, :73], torch.tensor([23]), 36).tolist() == [23]
    assert real(y[:, 73:], torch.tensor([23]), 37).tolist() == [24]


def test_a_held_multiple_that_fits_no_better_than_its_divisor_is_left(monkeypatch):
    # a noisy daily sine given 96 at values 288 and 384 (the changes' multiple test won by chance) and 24
    # at every later detection: 96 stayed, as 24 does not err under SWITCH_GAIN of it. Here a noisy cycle
    # of 12 given 48 at 144 and 192 (held), then 12: 12 one cycle back fits it better than 48, not clearly
    scripted_seasons(monkeypatch, [0, 0, 0, 0, 12, 12, 12, 12, 48, 48, 12, 12])
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(400, generator=g, dtype=f64)
    values = [100.0 + 5.0 * (1 + s / 400) * math.sin(2 * math.pi * s / 12) + float(noise[s]) for s in range(400)]
    seen = seasons_and_runs(values, max_season_length=48)
    assert [seen[s] for s in (96, 144, 192, 288, 384)] == [(12, 4), (48, 1), (48, 2), (48, 0), (12, 2)]
    y = torch.tensor([values[288 - 147 : 288]], dtype=f64)  # the values ring at 288: 3 x 48 + 3
    assert not hybrid._replaces(y, torch.tensor([12]), torch.tensor([48])).item()  # not by the old rule
    err = {m: naive_error(y[0], m, 48) for m in (12, 48)}  # by hand: 48 one cycle back errs more
    assert err[12] <= err[48]
    assert hybrid._not_clearly_better(y, torch.tensor([48]), torch.tensor([12])).item()


@pytest.mark.parametrize(("period", "noise", "draw", "row", "taken"), [(7, 0.5, 3, 4, 56), (12, 0.3, 6, 11, 60)])
def test_a_noisy_sine_is_not_served_a_multiple_taken_by_chance(period, noise, draw, row, taken):
    # benchmarks.true_seasons' rows (session 44): the multiple test at 1 % each over up to 47 multiples gave
    # a sine of 7 the season 56 at value 192 (and 12 the season 60), held from 288, and kept to 1,200
    # values, released only where it forecast no better at all. Now the test is Bonferroni over the
    # multiples past a short season, and a held multiple is kept only while it fits clearly better
    g = torch.Generator().manual_seed(0)
    for _ in range(draw):  # the benchmark's draws, in its order
        e = torch.randn(20, 1200, generator=g, dtype=f64)
    f = Forecaster(ForecasterConfig())
    for t in range(1200):
        f.observe("s", 10 + math.sin(2 * math.pi * t / period) + noise * float(e[row, t]))
    assert f.series_stats("s").seasons == [period]  # [taken] before


def test_a_daily_sine_with_a_weekend_lower_is_served_a_day_and_a_week_of_seven_days():
    # benchmarks.true_seasons' kind (session 44): rows 0, 14 and 19 kept a weekend's broad peak, found
    # first at value 1024 beside their held 24, as their second season as it came (176, 161, 161); row 1
    # was given 26 at values 144 and 192 and served it to 1,200 values, every later detection finding 24
    _, true, values = true_seasons.kinds(20, 1200)[-1]
    f = Forecaster(ForecasterConfig())
    rows = (0, 1, 14, 19)
    for t in range(1200):
        f.observe_many([(f"s{row}", float(values[row, t])) for row in rows])
    assert true == [24, 168] and all(f.series_stats(f"s{row}").seasons == true for row in rows)


def test_a_right_week_beside_a_wrong_held_day_is_not_moved_onto_its_comb():
    # a review of session 44: the week found first beside a held day is put on the day's comb, and with a
    # day held wrong (26: the first 300 values' cycle was 26 hours, then 24, a weekend 3 lower) a right 168
    # became 156 = 6 x 26. Now it moves onto the comb only where the multiple's profile fits no worse
    rng = np.random.default_rng(0)
    t = np.arange(800, dtype=float)
    phase = np.cumsum(2 * np.pi / np.where(t < 300, 26, 24))
    values = 10 + np.sin(phase) - 3.0 * (t % 168 >= 120) + 0.5 * rng.standard_normal(800)
    f = Forecaster(ForecasterConfig())
    for value in values.tolist():
        f.observe("s", value)
    assert f.series_stats("s").seasons == [26, 168]  # [26, 156] before


def test_a_short_divisor_taken_after_a_release_is_taken_as_found_not_held(monkeypatch):
    # a second review: a released season took any divisor found next as held at once, even 2; a short
    # season (SHORT_SEASON or less) may stand for a longer one and is held only when found twice in a row
    scripted_seasons(monkeypatch, [0, 0, 0, 0, 12, 12, 12, 12, 6, 6, 6])
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(300, generator=g, dtype=f64)
    values = [100.0 + 5.0 * math.sin(2 * math.pi * s / 6) + float(noise[s]) for s in range(300)]
    seen = seasons_and_runs(values, max_season_length=24)
    assert [seen[s] for s in (96, 144, 192, 288)] == [(12, 4), (12, 0), (6, 1), (6, 2)]


def test_a_held_multiple_that_fits_better_than_its_divisor_stays_held(monkeypatch):
    # taylor's weekly 336 over its daily 48: a week of unlike days, where a divisor found now and then
    # does not take it. Here four unlike cycles of 12
    scripted_seasons(monkeypatch, [0, 0, 0, 0, 12, 12, 12, 12, 48, 48, 12, 12])
    days = [1.0, 1.0, 0.3, 1.6]
    values = [100.0 + 10.0 * days[(s // 12) % 4] * math.sin(2 * math.pi * s / 12) for s in range(400)]
    seen = seasons_and_runs(values, max_season_length=48)
    assert [seen[s] for s in (192, 288, 384)] == [(48, 2), (48, 3), (48, 4)]
    y = torch.tensor([values[288 - 147 : 288]], dtype=f64)
    assert not hybrid._not_clearly_better(y, torch.tensor([48]), torch.tensor([12])).item()


def test_replaces_asks_for_a_clearly_and_significantly_better_seasonal_naive():
    # by hand: the seasonal naive with the drift over the values both lags forecast
    t = torch.arange(60, dtype=f64)
    g = torch.Generator().manual_seed(3)
    seven = 10 * torch.sin(2 * math.pi * t / 7) + 0.1 * torch.randn(60, generator=g, dtype=f64)
    values = torch.stack([seven, seven])
    out = hybrid._replaces(values, torch.tensor([7, 11]), torch.tensor([11, 7]))
    assert out.tolist() == [True, False]  # 7 replaces 11 on a 7-cycle, 11 does not replace 7
    err = {m: naive_error(seven, m, 11) for m in (7, 11)}
    assert err[7] < hybrid.SWITCH_GAIN * err[11] and not err[11] < hybrid.SWITCH_GAIN * err[7]
    assert hybrid._replaces(values[:1, :12], torch.tensor([7]), torch.tensor([11])).tolist() == [False]  # 1 pair


def test_a_counter_reset_to_zero_is_forecast_as_well_as_before_within_a_few_values():
    # a counter growing by Poisson(20) a step, reset to 0 at value 1000 (a process restarted): at session
    # 35's code the weight stayed on the trend members for hundreds of values (one-step MAE 15.1 over values
    # 1050-1300 and 7.75 over 1300-2000, against 3.7 without the reset). The reset and the value after it
    # are served the old level (a burst is told from a shift by the value after it); then the new one
    g = torch.Generator().manual_seed(0)
    steps = torch.poisson(torch.full((1300,), 20.0, dtype=f64), generator=g)
    counter = steps.cumsum(0)
    streams = {"clean": counter, "reset": torch.cat([counter[:1000], counter[1000:] - counter[1000]])}
    errors = {}
    for name, values in streams.items():
        f, made = Forecaster(ForecasterConfig()), []
        for t, value in enumerate(values.tolist()):
            if t >= 1005:
                made.append(abs(f.forecast("y", 1).mean[0] - value))
            f.observe("y", value)
        errors[name] = sum(made) / len(made)  # one-step MAE over values 1005-1300
    assert errors["reset"] < 1.5 * errors["clean"], errors  # 4.81 against 3.76 (session 35's code: 16.9)


def test_a_counter_is_never_forecast_below_zero_nor_its_intervals_after_a_burst():
    # a hostile test (session 29): 0 for 300 values, 1,000 five times, 0 again; the AR members
    # rolled the burst's changes on: the 6-step forecast at the third 0 was -455, the 24-step
    # path's lower bounds -2,402. A series never below 0 is served nothing below 0, and only the
    # served mean is cut: the members and the combiners forecast as before (their weights follow
    # their own errors).
    forecaster = Forecaster(ForecasterConfig(seed=0))
    lowest, cut = math.inf, 0
    for value in [0.0] * 300 + [1000.0] * 5 + [0.0] * 20:
        served = forecaster.observe("counter", value).forecast_next
        ahead = forecaster.forecast("counter", horizon=24)  # past the calibrated horizon: the members again
        bounds = [x for x in [served.mean, served.lower, *ahead.mean, *ahead.lower] if x is not None]
        lowest = min(lowest, *bounds)
        rows, steps = rows_of(forecaster, "counter")
        every, mean, combined = hybrid.members(rows, steps, 24)
        free = hybrid.members({**rows, "x_nonneg": torch.zeros_like(rows["x_nonneg"])}, steps, 24)
        assert torch.equal(every, free.every) and torch.equal(combined, free.combined)
        assert torch.equal(mean, free.mean.clamp(min=0.0))
        cut += int((free.mean < 0).sum())
    assert lowest == 0.0 and cut > 0  # reached, and cut there: down to 0, not past it (20 steps since session 52)
    forecaster.observe("counter", -1.0)  # below 0 once: the series may go there again
    assert min(forecaster.forecast("counter", horizon=12).lower) < 0.0


@pytest.mark.parametrize("factor", [10.0, 1e6])
def test_a_daily_series_multiplied_at_a_level_shift_keeps_its_season_and_serves_near_its_values(factor):
    # A hostile test (session 39): a daily series (10 + 3 sin + N(0, 1)) multiplied by 10 at value 600
    # was given seasons 168 and 288 at the re-checks of values 768 and 1024 (they read both sides of
    # the shift, the larger spread alone); by 1e6, none at 768, and 298 at 1024, re-estimated with a
    # trend measured across the shift: 3.7e8 served, 29 times any value sent. The re-checks now read
    # the values after the break in the level and spread of those before (``season.stitched``).
    rng = np.random.default_rng(1)
    t = np.arange(1100)
    values = (10 + 3 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, len(t))) * np.where(t < 600, 1.0, factor)
    f = Forecaster(ForecasterConfig())
    served, seasons = [], set()
    for v in values:
        made = f.observe("s", float(v)).forecast_made
        served.append(math.nan if made is None else made.mean)
        seasons.add(tuple(f.series_stats("s").seasons))
    assert seasons == {(), (24,)}
    served = np.array(served)
    assert np.nanmax(np.abs(served[600:])) < 2 * np.abs(values).max()
    later = slice(650, 1100)  # the served one-step MAE below the naive's and the seasonal naive's
    mae = np.abs(values[later] - served[later]).mean()
    naive = np.abs(np.diff(values)[649:1099]).mean()
    seasonal = np.abs(values[later] - values[626:1076]).mean()
    assert mae < 0.9 * min(naive, seasonal)


def weekend_series(n: int, seed: int = 0, lower: float = 3.0, noise: float = 0.5) -> np.ndarray:
    """An hourly series with a daily cycle and its weekend ``lower``, under normal noise of sd ``noise``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 10 + 3 * np.sin(2 * np.pi * t / 24) - lower * ((t // 24) % 7 >= 5) + rng.normal(0, noise, n)


def test_a_weekly_pattern_of_levels_is_a_second_season_of_the_daily_one():
    # the autocorrelation's comb test missed it at 576 to 1,024 values and again at 3,072 (its level's
    # autocorrelation at 168 stood 0.10 above 144 and 192, under its margin of 0.13): the seasonal naive
    # of the values one week back errs 0.58 where one day back errs 1.26
    rows = torch.tensor(np.stack([weekend_series(1011, seed) for seed in range(4)]))
    assert hybrid._second_multiple(rows, torch.full((4,), 24), 336).tolist() == [168] * 4
    g = torch.Generator().manual_seed(0)
    t = torch.arange(1011, dtype=torch.float64)
    daily = 10 + 3 * torch.sin(2 * math.pi * t / 24) + torch.randn(20, 1011, generator=g, dtype=torch.float64)
    assert hybrid._second_multiple(daily, torch.full((20,), 24), 336).tolist() == [0] * 20  # none: no week
    # a slow wave of period 130 fits 120 (at 576 values) and 264 (at 1,011) better than 24: none (a review)
    wave = daily[:, :576] + 2 * torch.sin(2 * math.pi * t[:576] / 130)
    assert hybrid._second_multiple(wave, torch.full((20,), 24), 192).tolist() == [0] * 20
    wave = daily + 2 * torch.sin(2 * math.pi * t / 130)
    assert hybrid._second_multiple(wave, torch.full((20,), 24), 336).tolist() == [0] * 20
    # a weekend 2 lower under noise 0.7: where the test of a new one fails, the one held is kept (a review: it
    # came and went at 1 or 2 of every 7 detections)
    weak = torch.tensor(np.stack([weekend_series(1011, seed, lower=2.0, noise=0.7) for seed in range(40)]))
    fresh = hybrid._second_multiple(weak, torch.full((40,), 24), 336)
    held = hybrid._second_multiple(weak, torch.full((40,), 24), 336, torch.full((40,), 168))
    assert int((fresh == 168).sum()) < 30 and held.tolist() == [168] * 40
    f = Forecaster(ForecasterConfig())
    for v in weekend_series(600).tolist():
        f.observe("s", v)
    assert f.series_stats("s").seasons == [24, 168]


def test_a_feature_settling_after_a_break_keeps_its_seasonal_table_when_another_feature_finds_a_season():
    # a review (session 40): feature 1 found its daily season at value 576, so the row was re-estimated,
    # feature 0 from its 15 values since its break (x10 at value 561): under two cycles, its table went to 0
    rng = np.random.default_rng(0)
    t = np.arange(577)
    f0 = (10 + 3 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, len(t))) * np.where(t >= 560, 10.0, 1.0)
    f1 = 50 + np.where(t >= 400, 4 * np.sin(2 * np.pi * t / 24), 0.0) + rng.normal(0, 1, len(t))
    f = Forecaster(
        ForecasterConfig(n_features=2, outlier_run=2)
    )  # (its shift steps: the rule of a shift at its 2nd value)
    for i in range(len(t) - 1):
        f.observe("s", [float(f0[i]), float(f1[i])])
    tensors, slot = f.store.tensors, f.store.slot_of("s")
    # feature 0's last change within the 15 values since its break (562 by the rule of a shift at its 2nd value;
    # 566 since the pooled combiner: the forecasts after the break, and so the change found, differ), none in 1's
    shift = tensors["o_shift_at"][slot].tolist()
    assert 562 <= shift[0] < 576 and shift[1] == 0
    before = tensors["x_season"][slot][:, 0, 0].clone()  # feature 0's first season's tables [V, M]
    assert float(before.abs().max()) > 5
    f.observe("s", [float(f0[-1]), float(f1[-1])])  # value 577, after the detection at 576
    tensors = f.store.tensors
    assert tensors["x_season_length"][slot].tolist() == [[24, 0], [0, 0]]  # feature 1 waits for feature 0
    assert float(tensors["x_season"][slot][:, 0, 0].abs().max()) > 5


def test_a_level_shift_in_one_feature_holds_back_only_that_feature():
    # a review (session 40): the row-wide wait held a sibling's new season back for a change that is no break
    # (a level shift, the same spread), which reads all its values and loses nothing: [24, 168] came at 768
    rng = np.random.default_rng(4)
    week = weekend_series(577)
    other = rng.normal(0, 1, 577) + np.where(np.arange(577) >= 571, 30.0, 0.0)
    f = Forecaster(
        ForecasterConfig(n_features=2, outlier_run=2)
    )  # (its shift steps: the rule of a shift at its 2nd value)
    for a, b in zip(week.tolist(), other.tolist(), strict=True):
        f.observe("s", [a, b])
    tensors, slot = f.store.tensors, f.store.slot_of("s")
    assert tensors["o_shift_at"][slot].tolist() == [0, 573]
    assert tensors["x_season_length"][slot].tolist() == [[24, 168], [0, 0]]


def _deploy_latency(seed: int, n: int = 672) -> np.ndarray:
    """An hourly latency 120 + 40 day(h) + N(0, 6), day(h) a business-hours profile (0.45 at night,
    1 at 14h), multiplied by 1.6 from value 400 on (a deploy: its level and its spread grow)."""
    rng = np.random.default_rng(seed)
    h = np.arange(n) % 24
    day = 0.45 + 0.55 * np.maximum(0.0, np.sin(np.pi * (h - 6) / 16)) ** 1.5
    return (120 + 40 * day + rng.normal(0, 6, n)) * np.where(np.arange(n) < 400, 1.0, 1.6)


def test_a_step_that_widens_the_spread_leaves_a_daily_season_unmoved_to_a_multiple():
    # A new user (session 55): the multiple test read pairs across the step, where a longer lag pairs
    # more values after it with the calmer values before it: 24 became 216 (this seed) or 120 at value
    # 576, 176 values after the step, and the 12-step MAE got 61-65 % worse
    values = _deploy_latency(107)
    f = Forecaster(ForecasterConfig())
    seasons = []
    for i, v in enumerate(values):
        f.observe("lat", float(v))
        if i + 1 in (192, 384, 576, 672):
            seasons.append(list(f.series_stats("lat").seasons))
    assert seasons == [[24]] * 4


def test_the_multiple_test_leaves_out_the_pairs_across_a_change_it_is_told_of():
    # ``_best_multiple`` by hand: the same row is moved to a multiple of 24 when read across its step,
    # and keeps 24 when told where the change was found (3 values after it, as ``outliers`` finds a shift)
    values = torch.tensor(_deploy_latency(107)[:576], dtype=f64)[None]
    across = int(hybrid._best_multiple(values, torch.tensor([24]), 192)[0])
    told = int(hybrid._best_multiple(values, torch.tensor([24]), 192, torch.tensor([403]))[0])
    assert (across % 24, across > 24, told) == (0, True, 24)


def _five_minute_latency(seed: int, n: int) -> np.ndarray:
    """A 5-minute latency 80 + 30 day(t) + N(0, 4), day the business-hours profile of ``_deploy_latency``
    at 288 steps a day: a smooth daily season whose changes' autocorrelation at 288 is about 0.02."""
    rng = np.random.default_rng(seed)
    h = (np.arange(n) / 12.0) % 24
    return 80 + 30 * (0.45 + 0.55 * np.maximum(0.0, np.sin(np.pi * (h - 6) / 16)) ** 1.5) + rng.normal(0, 4, n)


def test_a_smooth_daily_season_of_five_minute_values_is_found_past_the_young_test():
    # A new user (session 55): no season in 7 days (the changes hold 0.02 of it, the young test of the
    # values asks for its seasonal naive to halve the line's error at 2 cycles, 0.71 here, and stops at
    # 1,008 values); 288 configured gave a 15 % lower 12-step MAE. The means of blocks show it
    values = _five_minute_latency(11, 1030)
    f = Forecaster(ForecasterConfig())
    for v in values:
        f.observe("lat5", float(v))
    (season,) = f.series_stats("lat5").seasons
    assert abs(season - 288) <= 5


def test_the_block_means_give_no_season_to_random_walks_or_integrated_noise():
    # ``_coarse_seasons`` on seasonless rows past the young test (1,011 values): the block test holds
    # them to 1 % and the profile's spread to none (2,000 rows of each kind, session 55: 0 to 1)
    g = torch.Generator().manual_seed(2)
    steps = torch.randn(3, 300, 1011, generator=g, dtype=f64)
    change = torch.zeros(300, dtype=f64)
    smooth = torch.zeros(300, 1011, dtype=f64)
    for t in range(1011):
        change = 0.9 * change + steps[2, :, t]
        smooth[:, t] = change
    rows = torch.cat([steps[0], steps[1].cumsum(dim=1), smooth.cumsum(dim=1)])  # noise, walks, integrated AR(1)
    assert int((hybrid._coarse_seasons(rows, 336) > 0).sum()) == 0


def test_a_multiple_must_fit_better_on_each_side_of_a_change():
    # With the pairs across the step left out but the two sides pooled, this row's 24 was moved to
    # 192 (then placed at 216) at value 576: 192's pairs all lay before the step, where it won by
    # chance (the row read as it came keeps 24); no pair of 192 lies after the step
    values = torch.tensor(_deploy_latency(206)[:576], dtype=f64)[None]
    assert int(hybrid._best_multiple(values, torch.tensor([24]), 192, torch.tensor([403]))[0]) == 24


def seasons_at_steps(monkeypatch, script: dict[int, int], values: list[float], max_season_length: int):
    """``seasons_and_runs`` with the first season found at each detection step replaced by ``script``
    (a step not in it: none, and no provisional or coarse season), no multiple or neighbour taken."""
    now = [0]

    def answer(values, max_seasons, max_length=None, min_length=None):
        found = torch.zeros(values.shape[0], max_seasons, dtype=torch.int64)
        if min_length is None:  # (the coarse test's call, ``_coarse_seasons``: none)
            found[:, 0] = script.get(now[0], 0)
        return found

    answered_alone(monkeypatch, answer)
    return seasons_and_runs(values, max_season_length, before=lambda step: now.__setitem__(0, step))


def test_a_long_season_found_again_a_few_lags_off_is_held(monkeypatch):
    # a 5-minute CPU metric's daily 288 was found as 288, 291 and 290 at values 576, 768 and 1,024: never
    # held (a new user, session 59). Here a cycle of 64 (>= WIDE_FROM) found as 64, 66 (held: 2 within
    # WIDE_SHARE), then 64: the same season again, its run on, served at 64, whose profile spreads far
    # less than 66's on the 219 values read
    scripted = {192: 64, 288: 66, 384: 64}
    seen = seasons_at_steps(monkeypatch, scripted, sine(64, 400, amplitude=5.0, noise=1.0), max_season_length=72)
    assert [seen[s] for s in (192, 288, 384)] == [(64, 1), (66, 2), (64, 3)]
    y = torch.tensor([sine(64, 384, amplitude=5.0, noise=1.0)[384 - 219 :]], dtype=f64)
    spreads = hybrid._spreads_at(y, torch.tensor([[64, 66]]))[0]
    assert spreads[0] < hybrid.RELEASE_SPREAD * spreads[1]


def test_a_held_long_season_found_a_few_lags_off_keeps_its_length_unless_that_fits_clearly_better(monkeypatch):
    # held 64 on a cycle of 64, then found as 67: neither contested nor released; 64 served, its run on
    scripted = {192: 64, 288: 64, 384: 67}
    seen = seasons_at_steps(monkeypatch, scripted, sine(64, 400, amplitude=5.0, noise=1.0), max_season_length=72)
    assert [seen[s] for s in (192, 288, 384)] == [(64, 1), (64, 2), (64, 3)]


def test_a_season_kept_once_without_being_found_is_held_at_once_when_found_a_few_lags_off(monkeypatch):
    scripted = {192: 64, 288: 64, 384: 0, 576: 66}
    seen = seasons_at_steps(monkeypatch, scripted, sine(64, 600, amplitude=5.0, noise=1.0), max_season_length=72)
    assert [seen[s] for s in (288, 384, 576)] == [(64, 2), (64, 0), (66, 2)]


def test_a_held_season_not_found_once_stays_while_its_profile_fits_and_goes_in_noise(monkeypatch):
    # the CPU metric of the test above: its held season was dropped at the first detection whose window
    # held two quieter weekend days (none found), on 6 of 6 seeds. Kept once more (no longer held) where
    # the values' profile at it still leaves under LAPSE_SPREAD of their spread about their line; dropped
    # at the next detection that finds none; in white noise dropped at once, as before
    scripted = {192: 64, 288: 64, 384: 0, 576: 0}
    cycle = seasons_at_steps(monkeypatch, scripted, sine(64, 600, amplitude=5.0, noise=1.0), max_season_length=72)
    assert [cycle[s] for s in (288, 384, 576)] == [(64, 2), (64, 0), (0, 0)]
    g = torch.Generator().manual_seed(0)
    noise = [100.0 + float(e) for e in torch.randn(600, generator=g, dtype=f64)]
    white = seasons_at_steps(monkeypatch, scripted, noise, max_season_length=72)
    assert [white[s] for s in (288, 384, 576)] == [(64, 2), (0, 0), (0, 0)]
    for values, kept in ((sine(64, 384, amplitude=5.0, noise=1.0), True), (noise[:384], False)):
        y = torch.tensor([values[384 - 219 :]], dtype=f64)
        assert hybrid._lapsed_kept(y, torch.tensor([64])).tolist() == [kept]


def test_a_5_minute_daily_cycle_with_quieter_weekend_days_keeps_its_season_through_them():
    # the new user's CPU metric (session 59): a business-hours day of 288 values, AR(0.8) noise, two days
    # a week at half the swing. Its season was found at 576, 768 and 1,024 (282, 293, 289 here), never
    # held, and dropped at 2,048, the first detection whose 1,011 values held the weekend (none found)
    rng = np.random.default_rng(0)
    t = np.arange(2100)
    day = 20 + 35 * np.exp(-((((t % 288) / 12 - 14) / 3.5) ** 2))
    weekday = np.where((t // 288) % 7 >= 5, 0.5, 1.0)
    ar = np.zeros(len(t))
    for i in range(1, len(t)):
        ar[i] = 0.8 * ar[i - 1] + rng.normal(0, 2.5)
    values = np.clip(10 + (day - 10) * weekday + ar, 0, 100).round(2)
    f, seasons = Forecaster(ForecasterConfig()), {}
    for step, value in enumerate(values.tolist(), start=1):
        f.observe("cpu", value)
        if step in (1100, 2100):
            seasons[step] = f.series_stats("cpu").seasons
    assert all(len(s) == 1 and abs(s[0] - 288) <= round(hybrid.WIDE_SHARE * 288) for s in seasons.values()), seasons


def wandering_trend(seed: int, n: int) -> list[float]:
    """A smooth wandering trend: changes an AR(1) about 0.2 (coefficient 0.8, innovations of sd 0.3), summed."""
    rng = random.Random(seed)
    change, value, values = 0.5, 100.0, []
    for _ in range(n):
        change = 0.2 + 0.8 * (change - 0.2) + rng.gauss(0.0, 0.3)
        value += change
        values.append(value)
    return values


def twelve_steps_over_naive(values: list[float], seed: int, first: int) -> float:
    """A default forecaster (``seed``) fed ``values``: the MAE over h = 1..12 of the served forecasts made from value
    ``first`` on (those whose 12 steps the values hold), over the naive last value's on the same targets."""
    forecaster = Forecaster(ForecasterConfig(seed=seed))
    made = {}
    for t, y in enumerate(values):
        if t >= first:
            made[t] = forecaster.forecast("y", 12).mean
        forecaster.observe("y", y)
    origins = [t for t in made if t + 11 < len(values)]
    served = sum(abs(values[t + h] - made[t][h]) for t in origins for h in range(12))
    naive = sum(abs(values[t + h] - values[t - 1]) for t in origins for h in range(12))
    return served / naive


def test_a_young_wandering_trends_forecasts_12_steps_ahead_follow_what_led_at_one_step():
    """100 values of a smooth wandering trend (BJsales-like), four seeds: over the forecasts made from value 24 on,
    the served forecasts' MAE over h = 1..12 is at most 0.955 of the naive last value's (geometric mean over the
    seeds; before the pooled combiner 0.976: the long horizons' weights, on few scored targets, were spread over
    the level members, which lag a trend; with it 0.942, with the one-step weights alone at every h 0.915)."""
    ratios = [twelve_steps_over_naive(wandering_trend(seed, 100), seed, 24) for seed in range(4)]
    geometric = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    assert geometric <= 0.955, ratios


def test_a_young_smooth_declines_12_step_forecasts_follow_what_its_shorter_horizons_found():
    """60 values of a straight decline (1 a value) with noise (sd 1.5), four seeds: over the forecasts made from value
    6 on, the served forecasts' MAE over h = 1..12 is at most 0.51 of the naive last value's (geometric mean over
    the seeds). Before a young horizon borrowed the shorter one's ranking (``combination.NEIGHBOUR``) it was 0.5175
    (each seed 0.502-0.542): until about h + 10 values had arrived the weights at h were spread over the 23 members,
    most of them levels that lag a trend, while the shorter horizons had found the trend members; now 0.5015 (each
    seed 2.5-3.8 % lower)."""
    ratios = []
    for seed in range(4):
        rng = random.Random(seed)
        values = [100.0 - t + rng.gauss(0, 1.5) for t in range(60)]
        ratios.append(twelve_steps_over_naive(values, seed, 6))
    geometric = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    assert geometric <= 0.51, ratios
