"""Live serving: the one-step forecasts a forecaster hands out, their intervals, multi-step
forecasts, missing values, several features and batched ticks, against a plain
no-grad forward under the same weight schedule."""

from __future__ import annotations

import copy
import math
from statistics import NormalDist

import pytest
import torch

from tbptt_online import Forecaster, ForecasterConfig
from tests.tbptt_online.oracle import direct_scale, parse_row
from tests.tbptt_online.snapshots import assert_close, assert_identical, snapshot
from tests.tbptt_online.streams import staggered_ticks

TOL = 1e-10


def as_list(row):
    return row if isinstance(row, list) else [row]


def close(a, b, tol=TOL) -> bool:
    """Equal within ``tol``; None (nothing served) where the replay has NaN, and only there."""

    def missing(v) -> bool:
        return v is None or math.isnan(v)

    return all(
        missing(x) and missing(y) if missing(x) or missing(y) else abs(x - y) <= tol * max(1.0, abs(y))
        for x, y in zip(as_list(a), as_list(b), strict=True)
    )


class ServingReplay:
    """Recomputes a series' served forecasts with a plain forward: the state advances
    with the weights in force before the tick, the forecast uses the weights after it.
    Normalisation by a direct mean / std; the mse interval by the residuals so far."""

    def __init__(self, config: ForecasterConfig, net_before: torch.nn.Module) -> None:
        self.cfg, self.d = config, config.n_features
        self.z = NormalDist().inv_cdf(0.5 + config.interval_level / 2)
        with torch.no_grad():
            self.h = net_before.initial_state(1)
            self.pred = net_before.predict(self.h)  # [1, p] the forecast of value 1
        self.observed: list[list[float]] = []
        self.last = torch.zeros(1, self.d, dtype=next(net_before.parameters()).dtype)  # x_0 = 0
        self.resid_sq = [0.0] * self.d
        self.scored = [0] * self.d
        self.seen = [False] * self.d  # a value of the feature observed: before it nothing is served

    def scale(self) -> tuple[list[float], list[float]]:
        if not self.cfg.normalize:
            return [0.0] * self.d, [1.0] * self.d
        cols = [[r[i] for r in self.observed if not math.isnan(r[i])] for i in range(self.d)]
        pairs = [direct_scale(c) for c in cols]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def prediction(self, pred: torch.Tensor, z: float, step: int = 1) -> tuple[list, list, list]:
        """(mean, lower, upper) in the series' units of a raw prediction [1, p]."""
        centres, stds = self.scale()
        out = ([], [], [])
        for i in range(self.d):
            mu = float(pred[0, i])
            if self.cfg.loss == "gaussian":
                sd = math.sqrt(math.log1p(math.exp(float(pred[0, self.d + i]))) + 1e-6)
            else:
                sd = math.sqrt(self.resid_sq[i] / self.scored[i]) if self.scored[i] else 1.0
                sd *= math.sqrt(step)
            mean = mu * stds[i] + centres[i]
            if not self.seen[i]:  # nothing known of the feature: no forecast
                mean = sd = math.nan
            out[0].append(mean)
            out[1].append(mean - z * sd * stds[i])
            out[2].append(mean + z * sd * stds[i])
        return out

    def observe(self, value, net_before: torch.nn.Module, net_after: torch.nn.Module):
        """Returns (forecast made for this value, forecast of the next one)."""
        made = self.prediction(self.pred, self.z)
        raw = parse_row(value, self.d)
        self.observed.append(raw)
        centres, stds = self.scale()
        fed = []
        for i, v in enumerate(raw):
            mu = float(self.pred[0, i])
            if math.isnan(v):
                fed.append(mu)  # a missing value: the served forecast is the input
            else:
                x = (v - centres[i]) / stds[i]
                if self.seen[i]:  # a forecast was served for it: scored
                    self.resid_sq[i] += (x - mu) ** 2
                    self.scored[i] += 1
                self.seen[i] = True
                fed.append(x)
        dtype = next(net_before.parameters()).dtype
        x = torch.tensor([fed], dtype=dtype)  # [1, d]
        with torch.no_grad():
            self.h = net_before.advance(x, self.h)
            self.pred = self.shifted(net_after.predict(self.h), x)
        self.last = x
        return made, self.prediction(self.pred, self.z)

    def shifted(self, pred: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """The residual head: the mean is the change added to the last input."""
        if not self.cfg.residual:
            return pred
        return torch.cat([pred[:, : self.d] + last, pred[:, self.d :]], dim=1)

    def rollout(self, net: torch.nn.Module, horizon: int, level: float):
        z = NormalDist().inv_cdf(0.5 + level / 2)
        h, out, last = self.h, [], self.last
        with torch.no_grad():
            for k in range(1, horizon + 1):
                pred = self.shifted(net.predict(h), last)
                last = pred[:, : self.d]
                out.append(self.prediction(pred, z, step=k))
                h = net.advance(pred[:, : self.d], h)  # its own mean, normalised units
        return out


def config_for(**overrides) -> ForecasterConfig:
    base = dict(
        hidden_size=6, k1=3, k2=5, optimizer="adam", lr=0.01, clip_norm=1.0, normalize=True, dtype="float64",
        seed=1, hybrid=False, warmup_updates=0,
    )  # fmt: skip
    base.update(overrides)
    return ForecasterConfig(**base)


@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize("loss", ["gaussian", "mse"])
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_live_forecasts_equal_a_plain_forward_under_the_same_weight_schedule(cell, loss, d):
    config = config_for(cell=cell, loss=loss, n_features=d)
    f = Forecaster(config)
    partial = [(0, 6, 1), (1, 2, 2)] if d == 3 else []
    ticks = staggered_ticks([0, 2, 3], 16, d=d, missing=[(0, 1), (1, 4), (2, 5), (2, 6)], partial=partial)
    replays: dict[str, ServingReplay] = {}
    served: dict[str, object] = {}
    updates = 0
    for tick in ticks:
        before = copy.deepcopy(f.network)  # the weights in force during the tick
        results = f.observe_many(tick)
        after = copy.deepcopy(f.network)  # the weights after the tick's update
        for r, (name, value) in zip(results, tick, strict=True):
            replay = replays.setdefault(name, ServingReplay(config, before))
            made, nxt = replay.observe(value, before, after)
            for got, want in zip((r.forecast_made, r.forecast_next), (made, nxt), strict=True):
                for part, expected in zip((got.mean, got.lower, got.upper), expected_rows(want, d), strict=True):
                    assert close(part, expected), (name, r.step, part, expected)
            if name in served:  # what had been served for this value is what it is scored against
                assert r.forecast_made == served[name]
            served[name] = r.forecast_next
            # intervals: the served forecast is what forecast(horizon=1) says right after
            # (to rounding: the tick predicts a batch of rows, forecast a single row)
            fc = f.forecast(name, horizon=1)
            nxt = r.forecast_next
            assert_close((fc.mean[0], fc.lower[0], fc.upper[0]), (nxt.mean, nxt.lower, nxt.upper), 1e-12)
        updates = f.update_stats().updates
    assert updates >= 4  # weights changed during the stream: the schedule matters

    net = f.network
    for name, replay in replays.items():
        for level in (0.5, 0.95):
            fc = f.forecast(name, horizon=4, level=level)
            want = replay.rollout(net, 4, level)
            for k in range(4):
                for part, expected in zip(
                    (fc.mean[k], fc.lower[k], fc.upper[k]), expected_rows(want[k], d), strict=True
                ):
                    assert close(part, expected), (name, k, part, expected)


def expected_rows(prediction, d):
    return [row[0] if d == 1 else row for row in prediction]


@pytest.mark.parametrize("mode", ["stateful", "stateless"])
@pytest.mark.parametrize("loss", ["gaussian", "mse"])
def test_served_forecast_equals_one_step_forecast_right_after_observing(mode, loss):
    f = Forecaster(config_for(mode=mode, loss=loss, k1=2, k2=3, dtype="float32"))
    for tick in staggered_ticks([0, 1], 12, missing=[(1, 3)]):
        for name, value in tick:  # one series at a time: the same single-row forward, bit for bit
            r = f.observe(name, value)
            fc = f.forecast(name, horizon=1)
            assert fc.mean[0] == r.forecast_next.mean
            assert fc.lower[0] == r.forecast_next.lower < r.forecast_next.mean < r.forecast_next.upper == fc.upper[0]
            assert fc.step == r.step and fc.update_count == r.update_count
        for r in f.observe_many(tick):  # a batched tick: equal to float32 rounding
            fc = f.forecast(r.series, horizon=1)
            assert_close(
                (fc.mean[0], fc.lower[0], fc.upper[0]),
                (r.forecast_next.mean, r.forecast_next.lower, r.forecast_next.upper),
                1e-6,
            )
    assert f.update_stats().updates > 0


@pytest.mark.parametrize("mode", ["stateful", "stateless"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_none_and_nan_are_the_same_missing_value(mode, cell):
    config = config_for(mode=mode, cell=cell, n_features=3, k1=2, k2=4, dtype="float32")
    with_none, with_nan = Forecaster(config), Forecaster(config)
    nan = float("nan")
    stream = [
        ("a", [1.0, 2.0, 3.0]), ("a", None), ("b", [0.5, None, 1.0]), ("a", [1.5, 2.5, None]),
        ("b", [None, None, None]), ("a", [2.0, 1.0, 0.0]), ("b", [1.0, 2.0, 3.0]), ("a", None),
        ("b", [2.0, None, 0.5]), ("a", [0.0, 1.0, 2.0]),
    ]  # fmt: skip
    as_nan = [(n, [nan] * 3 if v is None else [nan if x is None else x for x in v]) for n, v in stream]
    for item, nan_item in zip(stream, as_nan, strict=True):
        r1, r2 = with_none.observe(*item), with_nan.observe(*nan_item)
        assert_identical(r1, r2)
        if item[1] is None:
            assert r1.value == [None, None, None] and all(v is not None for v in r1.forecast_made.mean)
    assert with_none.update_stats().updates > 0
    assert_identical(snapshot(with_none), snapshot(with_nan))
    stats = with_none.series_stats("a")
    assert stats.count == 6  # every value counts as a step, missing or not


def test_missing_value_leaves_the_normaliser_and_scores_alone():
    f = Forecaster(config_for(k1=100, k2=5))
    for v in (1.0, 3.0, 2.0):
        f.observe("a", v)
    before = snapshot(f)
    r = f.observe("a", None)
    after = snapshot(f)
    # the normaliser, the last value and every score sum: all rows of the stats block
    assert_identical(before["store"]["stats"], after["store"]["stats"])
    assert int(after["store"]["steps"][0]) == 4 and r.step == 4
    # the naive forecast of the next value is still the last observed one (2.0)
    f.observe("a", 5.0)
    assert f.series_stats("a").naive_mae == pytest.approx((2.0 + 1.0 + 3.0) / 3)


def test_multivariate_end_to_end():
    config = config_for(n_features=3, k1=2, k2=4, dtype="float32", optimizer="adam", lr=0.01)
    f = Forecaster(config)
    for tick in staggered_ticks([0, 1], 14, d=3, partial=[(0, 3, 2)], missing=[(1, 4)]):
        for r in f.observe_many(tick):
            assert len(r.forecast_next.mean) == 3 and len(r.forecast_made.lower) == 3
            assert all(
                lo < m < hi
                for lo, m, hi in zip(r.forecast_next.lower, r.forecast_next.mean, r.forecast_next.upper, strict=True)
            )
    assert f.update_stats().updates > 0 and f.update_stats().skipped == 0
    fc = f.forecast("s0", horizon=5, level=0.8)
    assert len(fc.mean) == 5 and all(len(row) == 3 and all(math.isfinite(v) for v in row) for row in fc.mean)
    stats = f.series_stats("s1")
    assert stats.count == 13 and stats.mae is not None and 0.0 <= stats.coverage <= 1.0
    r = f.observe("s0", [1.0, None, float("nan")])
    assert r.value == [1.0, None, None]
    g = Forecaster.from_state_dict(f.state_dict())
    assert_identical(g.observe("s1", [0.1, 0.2, 0.3]), f.observe("s1", [0.1, 0.2, 0.3]))


@pytest.mark.parametrize("mode", ["stateful", "stateless"])
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_batched_tick_equals_single_observations_without_an_update(cell, mode):
    # 20 series: more than the store's initial capacity, so it grows mid-stream too
    config = config_for(cell=cell, mode=mode, k1=1000, k2=4)  # float64
    batched, single = Forecaster(config), Forecaster(config)
    names = [f"series-{i}" for i in range(20)]
    for step in range(6):
        tick = [(n, None if (i + step) % 7 == 0 else math.cos(0.3 * i + step)) for i, n in enumerate(names)]
        tick = tick[: 12 + 2 * step]  # the batch grows with new series
        # equal to rounding: a batch of rows and single rows run different BLAS kernels
        assert_close(list(batched.observe_many(tick)), [single.observe(n, v) for n, v in tick], 1e-12)
    assert batched.update_stats().updates == 0
    assert_close(snapshot(batched), snapshot(single), 1e-12)
    for n in names:
        assert_close(batched.forecast(n, horizon=3), single.forecast(n, horizon=3), 1e-12)


def test_a_forecast_of_few_series_after_a_tick_of_many_is_what_the_tick_served_bit_for_bit():
    # fix (session 34, a review): the head ran compiled for up to 8 rows and through torch's linear op
    # for more, so a network-only model's tick of 20 series served other bits than a later forecast of 8
    f = Forecaster(config_for(mode="stateful", loss="gaussian", k1=2, k2=3, dtype="float32", seed=0))
    names = [f"s{i}" for i in range(20)]
    for t in range(12):
        results = f.observe_many([(name, math.sin(t / 3 + i)) for i, name in enumerate(names)])
    served = {r.series: r.forecast_next.mean for r in results}
    few = f.forecast_many([(name, 1) for name in names[:8]])
    assert [fc.mean[0] for fc in few] == [served[name] for name in names[:8]]
    assert all(f.forecast(name, horizon=1).mean[0] == served[name] for name in names)
