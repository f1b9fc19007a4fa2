"""The instability guards, each triggered by an injected fault: the model recovers, and no NaN
is ever stored (``check_state`` passes: it refuses a non-finite weight, moment or series field)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_online.guards import BACKOFF, LOSS_WINDOW, InstabilityGuard
from tbptt_online.scoring import STAT, any_blown_up, blank_stats, blown_up
from tbptt_online.state_check import check_state


def value(t: int, i: int) -> float:
    return 5 * math.sin(2 * math.pi * t / 12 + i) + 0.5 * math.cos(0.7 * t * i)


def run(f: Forecaster, ticks: range, n: int = 4) -> list[float]:
    """Feed the ticks; the mean absolute error of the served one-step forecasts per tick."""
    errors = []
    for t in ticks:
        results = f.observe_many([(f"s{i}", value(t, i)) for i in range(n)])
        made = [abs(r.forecast_made.mean - r.value) for r in results if r.forecast_made.mean is not None]
        errors.append(sum(made) / max(1, len(made)))
    return errors


def weights(f: Forecaster) -> list[torch.Tensor]:
    return [p.detach().clone() for p in f.network.parameters()]


def test_a_huge_input_spike_is_clipped_to_the_running_median() -> None:
    def build(guards: bool) -> Forecaster:
        config = ForecasterConfig(
            hidden_size=8, k1=2, k2=4, hybrid=False, normalize=False, loss="mse", optimizer="sgd", lr=1e-3,
            clip_norm=None, guards=guards,
        )  # fmt: skip
        return Forecaster(config)

    changes = {}
    for guards in (True, False):
        f = build(guards)
        run(f, range(100), n=2)
        before = weights(f)
        f.observe_many([("s0", 1e4), ("s1", value(100, 1))])
        f.observe_many([("s0", value(101, 0)), ("s1", value(101, 1))])  # t = 102: the window holds the spike
        changes[guards] = math.sqrt(sum(float((a - b).pow(2).sum()) for a, b in zip(weights(f), before, strict=True)))
        if guards:
            stats = f.update_stats()
            assert stats.explosions >= 1 and stats.rollbacks == 0
            median = f.engine.guard.median_norm()
            assert changes[True] <= 1e-3 * median * 1.0001  # one SGD step of a gradient clipped to the median
            errors = run(f, range(102, 200), n=2)
            assert sum(errors[-20:]) / 20 < 2.0  # still forecasting the series (amplitude 5)
            check_state(f.state_dict())
    assert changes[False] > 100 * changes[True]  # unguarded, the spike's gradient moves the weights


def test_a_learning_rate_of_10_is_rolled_back_and_backed_off_until_the_model_forecasts() -> None:
    errors = {}
    for guards in (True, False):
        f = Forecaster(ForecasterConfig(hidden_size=16, k1=2, k2=8, hybrid=False, lr=10.0, guards=guards))
        errors[guards] = run(f, range(800))
        if guards:
            stats = f.update_stats()
            # How many back-offs it takes depends on the CPU's arithmetic (3 on one machine, 2 on
            # another): each roll-back backs off once, and the rate is what they leave.
            assert stats.divergences >= 1 and stats.rollbacks >= 2
            assert math.isclose(stats.lr, 10.0 * BACKOFF**stats.rollbacks, rel_tol=1e-12)
            check_state(f.state_dict())
            f.reset_learning_rate()  # the user undoes the back-off
            assert f.update_stats().lr == 10.0 and f.engine.optimizer.param_groups[0]["lr"] == 10.0
    late = {g: sum(e[-100:]) / 100 for g, e in errors.items()}
    assert late[True] < late[False] / 3, late


def test_weights_scaled_by_100_roll_back_to_the_last_good_copy() -> None:
    for hybrid in (False, True):
        f = Forecaster(ForecasterConfig(hidden_size=16, k1=2, k2=8, hybrid=hybrid))
        healthy = run(f, range(300))
        good_at = f.engine.guard.good["at"]
        assert good_at > 0  # a good copy was taken along the way
        with torch.no_grad():
            for p in f.network.parameters():
                p.mul_(100)
        after = run(f, range(300, 400))
        stats = f.update_stats()
        assert stats.rollbacks >= 1 and stats.blowups + stats.divergences >= 1, stats
        assert all(math.isfinite(e) for e in after)
        assert sum(after[-20:]) / 20 < 2 * sum(healthy[-20:]) / 20 + 0.05, (hybrid, healthy[-5:], after[-5:])
        check_state(f.state_dict())


def test_the_guards_state_round_trips_bit_identically_after_a_roll_back() -> None:
    f = Forecaster(ForecasterConfig(hidden_size=8, k1=2, k2=8, hybrid=False, lr=10.0))
    run(f, range(300))
    assert f.update_stats().rollbacks >= 1
    g = Forecaster.from_state_dict(f.state_dict())
    assert run(f, range(300, 400)) == run(g, range(300, 400))
    assert f.update_stats() == g.update_stats()
    for p, q in zip(f.network.parameters(), g.network.parameters(), strict=True):
        assert torch.equal(p, q)


def test_a_warm_up_block_is_not_the_level_later_losses_are_judged_by() -> None:
    """co2 (benchmarks.accuracy) was rolled back at step 95: the warm-up's block of losses (0.026
    per step) was the best block, the first blocks after it (0.94) a "divergence"."""
    params = [torch.nn.Parameter(torch.zeros(2))]
    warm, settled = InstabilityGuard(params), InstabilityGuard(params)
    fired = {}
    for guard, in_warmup in ((warm, True), (settled, False)):
        first = [guard.accepted(1.0, 0.026, 1.0, False, settled=not in_warmup) for _ in range(8)]
        fired[in_warmup] = any(first + [guard.accepted(1.0, 0.94 + 0.01 * (i % 2), 1.0, False) for i in range(16)])
    assert not fired[True] and warm.counts["divergences"] == 0  # the warm-up left out: no roll-back
    assert fired[False] and settled.counts["divergences"] >= 1  # the same losses all settled: judged a rise


def test_one_risen_block_after_a_lucky_best_is_no_divergence_and_two_in_a_row_are() -> None:
    # session 52: a noise-free sine's model (test_guard_log's healthy one) had a lucky block of 0.0065 per step, its
    # neighbours 0.023 to 0.035; the next ordinary block, 0.036, rose 3.1 times (|best| + sd) and was rolled back
    params = [torch.nn.Parameter(torch.zeros(2))]
    guard = InstabilityGuard(params)
    blocks = [(0.023, 0.003), (0.0065, 0.003), (0.036, 0.003), (0.028, 0.003), (0.2, 0.01), (0.2, 0.01)]
    fired = []
    for mean, half in blocks:  # 8 losses a block, mean +- half: a block's sd about half
        fired.append(any(guard.accepted(1.0, mean + half * (-1) ** i, 1.0, False) for i in range(LOSS_WINDOW)))
    assert fired == [False, False, False, False, False, True]  # 0.036 alone (rise 3.1) no; 0.2 twice, yes
    assert guard.counts["divergences"] == 1


def test_an_update_that_scored_nothing_starts_the_loss_record_again() -> None:
    """Session 42: a model that learned well before a gap of 600 missing values was rolled back
    after it (its first block after the gap 0.063 per step, its best before 0.011 +- 0.003): the
    losses on each side of a run of missing values are not comparable."""
    fired = {}
    for gap in (True, False):
        guard = InstabilityGuard([torch.nn.Parameter(torch.zeros(2))])
        before = [guard.accepted(1.0, 0.011 + 0.003 * (i % 2), 1.0, False) for i in range(16)]
        if gap:
            assert not guard.accepted(0.0, 0.0, 1.0, False, scored=False)  # every value of its window missing
            assert guard.best == [] and guard.losses == [] and guard.rise == 0.0
        fired[gap] = any(before + [guard.accepted(1.0, 0.063 + 0.01 * (i % 2), 1.0, False) for i in range(16)])
    assert not fired[True]  # after the gap: its first block is the new record
    assert fired[False]  # the same losses with no gap between: judged a rise


def two_series(f: Forecaster, ticks: range, rng: random.Random) -> list:
    results = []
    for t in ticks:
        items = [("bad", 5.0 + math.sin(t / 3) + 0.1 * rng.gauss(0, 1))]
        items.append(("healthy", 10.0 + math.sin(2 * math.pi * t / 24) + 0.2 * rng.gauss(0, 1)))
        results = f.observe_many(items)
    return results


@pytest.mark.parametrize(
    ("field", "value", "hybrid"),
    [
        ("x_level", math.inf, True),
        ("x_level", math.nan, True),
        ("carried_h", math.nan, True),
        ("carried_h", math.nan, False),
    ],
)
def test_a_series_whose_state_blew_up_starts_again_and_the_others_keep_their_updates(field, value, hybrid) -> None:
    # A runaway series (a hostile test's: its state went NaN) served None for good and, its network
    # input NaN, had every update of the shared weights skipped for the series ticking with it.
    f, rng = Forecaster(ForecasterConfig(hybrid=hybrid)), random.Random(0)
    two_series(f, range(300), rng)
    f.store.tensors[field][f.store.slots["bad"]] = value  # the state past repair
    before = f.update_stats()
    restarted = two_series(f, range(300, 301), rng)[0]
    check_state(f.state_dict())  # at once: the probe's rings no longer hold the NaN of that tick
    served = f.forecast("bad", 1)  # what is served now: nothing (hybrid), the fresh state's forecast (network)
    assert restarted.step == 301 and restarted.forecast_next.mean == served.mean[0]
    assert (restarted.forecast_next.mean is None) == hybrid
    results = two_series(f, range(301, 400), rng)
    after = f.update_stats()
    assert after.updates - before.updates > 40 and after.skipped == before.skipped  # 25 of 25 skipped before
    bad = f.series_stats("bad")
    assert bad.restarts == 1 and bad.count == 400 and results[0].step == 400 and f.forecast("bad", 3).step == 400
    assert abs(results[0].forecast_next.mean - 5.0) < 2.0 and f.series_stats("healthy").restarts == 0
    check_state(f.state_dict())
    g = Forecaster.from_state_dict(f.state_dict())  # its step goes on after a load too (offsets from the stats)
    assert g.forecast("bad", 2).step == 400 and g.observe("bad", 5.0).step == 401 == f.observe("bad", 5.0).step
    f.forget("bad")
    check_state(f.state_dict())


def test_a_forecast_that_blows_up_only_steps_ahead_restarts_the_series() -> None:
    # A review (session 43): seasons of 24 and 25 made a forecaster serve 2.2e15 twelve steps ahead
    # on values of 100 to 220; the restart read the next mean only. Here every seasonal index but the
    # one of the next value (step 302: phase 302 % 24 = 14) is past repair: before the fix the next
    # value was served 9.74 and the path 1e285 to 1e288 at h = 2..12, the series never restarted.
    f = Forecaster(ForecasterConfig(season_length=24, seed=0))
    for t in range(300):
        f.observe("a", 10 + math.sin(2 * math.pi * t / 24))
    slot = f.store.slots["a"]
    f.store.tensors["x_season"][slot, :, 0, 0, [j for j in range(24) if j != 302 % 24]] = 1e9
    restarted = f.observe("a", 10 + math.sin(2 * math.pi * 300 / 24))
    assert f.series_stats("a").restarts == 1
    assert restarted.forecast_next.mean is None and f.forecast("a", 12).mean == [None] * 12  # a new series' nothing
    for t in range(301, 500):
        f.observe("a", 10 + math.sin(2 * math.pi * t / 24))
    path = f.forecast("a", 12).mean
    assert f.series_stats("a").restarts == 1 and max(abs(m - 10) for m in path) < 2  # it learns again
    check_state(f.state_dict())


def test_the_blow_up_bound_grows_with_the_horizon_up_to_the_far_one() -> None:
    # by hand: last value 0, sd 0 (no values kept), factor 1e6: h steps ahead blows up past h^2 1e6, at a
    # horizon up to `far` (2 here); past it only a mean that is not finite
    stats = blank_stats(1, 1)
    stats[0, STAT["last_value"], 0] = 0.0
    observed = np.ones((1, 1), dtype=bool)
    cases = (([2e6, 2e6, 2e6], True), ([1e6, 4e6, 1e300], False), ([0.0, 4.1e6, 0.0], True), ([0, 0, math.inf], True))
    for path, expected in cases:
        out = np.empty(1, dtype=np.bool_)
        blown_up(np.array(path, dtype=np.float64)[None, :, None], stats.numpy(), observed, 1e6, True, 2, out)
        assert bool(out[0]) == expected
    nan_ahead = np.array([0.0, math.nan])[None, :, None]  # not finite at h = 2: blown up where observed only
    assert any_blown_up(nan_ahead, stats.numpy(), observed, 1e6, True, 2)
    assert not any_blown_up(nan_ahead, stats.numpy(), ~observed, 1e6, True, 2)


@pytest.mark.parametrize("rate", [1.8, 2.0])
def test_a_series_doubling_for_a_while_is_not_restarted_at_a_long_calibrated_horizon(rate) -> None:
    # a review of session 44's path check (h 1e6 (...) at every horizon to calibrated_horizon): a doubling
    # series restarted at values 15, 31, 47, 63, 79, 95 with a calibrated horizon of 200 (its damped
    # multiplicative path is 2^49 its last value far out), losing a next forecast within 0.5 % of the value
    f = Forecaster(ForecasterConfig(calibrated_horizon=200))
    for t in range(100):
        f.observe("a", rate**t)
    assert f.series_stats("a").restarts == 0
    served = f.forecast("a", 1).mean[0]
    assert served is not None and abs(served / rate**100 - 1) < 0.05


def test_a_forgotten_series_leaves_its_row_blank() -> None:
    # a freed row kept its last owner's fields, which a checkpoint holds: NaN there made the model's
    # own checkpoint fail check_state after the broken series was forgotten
    f, rng = Forecaster(ForecasterConfig(guards=False)), random.Random(1)
    two_series(f, range(50), rng)
    f.store.tensors["carried_h"][f.store.slots["bad"]] = math.nan
    f.forget("bad")
    check_state(f.state_dict())
    assert torch.equal(f.store.tensors["carried_h"][0], torch.zeros_like(f.store.tensors["carried_h"][0]))


def test_a_spiky_series_without_the_normaliser_never_restarts() -> None:
    # without normalize the values' sd is not kept: the far test read a spike's next mean as blown up
    # (19 restarts in 200 values of zeros with a spike of 5e7 every 10 in a review)
    f = Forecaster(ForecasterConfig(normalize=False))
    for t in range(200):
        f.observe("s", 5e7 if t % 10 == 9 else 0.0)
    assert f.series_stats("s").restarts == 0


def moved(f: Forecaster, before: list[torch.Tensor]) -> float:
    return max(float((a - b).abs().max()) for a, b in zip(weights(f), before, strict=True))


@pytest.mark.parametrize("hybrid", [True, False])
def test_a_long_run_of_missing_values_does_not_stop_the_learning(hybrid) -> None:
    # fix: an update whose window scored no target (every value missing) has loss 0 and gradient 0;
    # recorded, 280 of them made the median norm 0, so every later update was an "explosion" clipped
    # to 0 (the weights never moved again), and their block of 0 losses made the next ordinary block a
    # divergence (a roll-back, the learning rate backed off). A hostile audit, session 34.
    f = Forecaster(ForecasterConfig(hybrid=hybrid, seed=0))
    for t in range(300):
        f.observe("a", 10 + value(t, 1))
    counts = f.update_stats()
    for _ in range(600):
        f.observe("a", None)
    stats = f.update_stats()
    assert (stats.explosions, stats.rollbacks) == (counts.explosions, counts.rollbacks)  # none in the gap
    assert f.engine.guard.median_norm() > 0
    before = weights(f)
    for t in range(300, 700):
        f.observe("a", 10 + value(t, 1))
    stats = f.update_stats()
    assert stats.explosions <= counts.explosions + 5 and stats.rollbacks == 0  # (the gap's end may explode)
    assert moved(f, before) > 1e-3


def test_a_quiet_series_does_not_freeze_the_learning_of_a_busy_one() -> None:
    # the same through a second series: "b" sends nothing for 1,400 ticks, "a" learns on
    f = Forecaster(ForecasterConfig(seed=0))
    for t in range(1500):
        f.observe("a", 10 + value(t, 1))
        f.observe("b", None if t >= 100 else value(t, 2))
    before = weights(f)
    for t in range(1500, 1700):
        f.observe("a", 10 + value(t, 1))
    assert f.update_stats().explosions <= 5 and f.engine.guard.median_norm() > 0
    assert moved(f, before) > 1e-3


def test_the_guard_keeps_no_zero_norm_and_judges_no_rise_by_a_block_of_zero_losses() -> None:
    guard = InstabilityGuard([])
    for _ in range(40):
        assert not guard.accepted(0.0, 0.0, 1.0, exploded=False)  # exact hits: norm 0, loss 0
    assert len(guard.norms) == 0 and guard.explosion_limit() == math.inf and guard.best == []
    for norm in (1.0, 2.0, 3.0) * 6:
        assert not guard.accepted(norm, 0.5, 1.0, exploded=False)
    assert guard.median_norm() == 2.0 and guard.counts["divergences"] == 0 and guard.best[0] == 0.5
    state = guard.state_dict()
    state["norms"], state["best"] = [0.0] * 40 + [4.0], [0.0, 0.0]  # a checkpoint of the frozen guard
    guard.load_state_dict(state)
    assert list(guard.norms) == [4.0] and guard.best == []  # it loads unfrozen


def test_new_series_first_values_do_not_stop_the_learning() -> None:
    # the same through new series (a hostile client's route): a hybrid series' first value has no
    # forecast, so an update over it alone scores nothing; 20 of them used to zero 64 of the next 65
    f = Forecaster(ForecasterConfig(seed=0))
    for i in range(20):
        f.observe(f"new{i}", 1.0)
    before = weights(f)
    run(f, range(300))
    stats = f.update_stats()
    assert stats.explosions <= 5 and f.engine.guard.median_norm() > 0
    assert moved(f, before) > 1e-3


def test_a_run_of_skipped_updates_rolls_back_before_the_guards_have_a_history() -> None:
    # a hostile test (session 48): sgd, no clipping, an MSE loss and lr = 1 took the weights to 3.7e16 within 9
    # updates, before the guards had the MIN_HISTORY norms they judge by; every later update was skipped (a loss
    # that is not finite), the weights stayed, and half the forecasts of five series were null for good (195
    # skipped updates, no roll-back). A run of SKIPPED_RUN skipped updates now rolls back.
    f = Forecaster(ForecasterConfig(optimizer="sgd", clip_norm=None, loss="mse", lr=1.0))
    rng = np.random.default_rng(0)
    nulls = []
    for t in range(200):
        v = 10 + 5 * math.sin(t / 3) + rng.normal()
        results = f.observe_many([(s, v + i) for i, s in enumerate("abcde")])
        nulls.append(sum(r.forecast_next.mean is None for r in results))
    stats = f.update_stats()
    assert stats.rollbacks >= 1 and stats.lr < 1.0 and stats.skipped < 10, stats
    assert sum(nulls[-100:]) == 0  # every series forecasts again
    assert all(torch.isfinite(p).all() and p.abs().max() < 1e3 for p in f.network.parameters())
    g = Forecaster.from_state_dict(f.state_dict())  # the run is read from the records: a restored engine goes on alike
    more = [("a", 11.0), ("b", 12.0)]
    assert g.observe_many(more) == f.observe_many(more)


def test_updates_skipped_for_what_no_weights_compute_do_not_roll_back() -> None:
    # a review (session 48): a network on raw values with an MSE loss, values times 1e25 for 20 ticks (their
    # squares pass float32's range): 4 updates skipped for the data, and the new guard rolled back and cut the
    # rate to 0.0015; it now rolls back only where the good copy computes a finite loss of the same windows
    f = Forecaster(ForecasterConfig(hybrid=False, normalize=False, loss="mse"))
    for t in range(200):
        scale = 1e25 if 150 <= t < 170 else 1.0
        f.observe_many([(s, (10 + 5 * math.sin(t / 3) + 0.1 * i) * scale) for i, s in enumerate("ab")])
    stats = f.update_stats()
    assert stats.skipped >= 3 and stats.rollbacks == 0 and stats.lr == f.config.lr, stats
