"""Batched forecasts: ``forecast_many`` answers each request with what ``forecast`` returns
alone (to float64 rounding: a batch of rows runs other BLAS kernels than one row), a bad
request fails alone, and nothing of the forecaster changes."""

from __future__ import annotations

import math

import pytest

from tbptt_online import Forecast, Forecaster, ForecasterConfig
from tbptt_online import view as view_module
from tests.tbptt_online.snapshots import assert_close, assert_identical, snapshot
from tests.tbptt_online.streams import staggered_ticks

TOL = 1e-12  # float64; measured differences are a few ulp


def config_for(**overrides) -> ForecasterConfig:
    base = dict(hidden_size=6, k1=2, k2=5, optimizer="adam", lr=0.01, seed=3, dtype="float64", replay_batch=4)
    base.update(overrides)
    return ForecasterConfig(**base)


def fed(config: ForecasterConfig, d: int = 1) -> Forecaster:
    """Series entering at different ticks (s3 has fewer values than k2: a short, padded
    stateless window), with missing values, and updates during the stream."""
    f = Forecaster(config)
    for tick in staggered_ticks([0, 1, 4, 9], 12, d=d, missing=[(0, 3), (1, 5), (2, 2)]):
        f.observe_many(tick)
    assert f.update_stats().updates > 0
    return f


@pytest.mark.parametrize("mode", ["stateful", "stateless"])
@pytest.mark.parametrize("loss", ["gaussian", "mse"])
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_each_batched_forecast_equals_its_lone_forecast(cell, loss, mode):
    f = fed(config_for(cell=cell, loss=loss, mode=mode))
    view = f.view()
    requests = [("s0", 4), ("s3", 7, 0.5), ("s1", 1), ("s2", 3, 0.99), ("s0", 2, None), ("s3", 7)]
    answers = view.forecast_many(requests)
    assert len(answers) == len(requests)
    for request, answer in zip(requests, answers, strict=True):
        assert isinstance(answer, Forecast) and len(answer.mean) == request[1]
        assert_close(answer, view.forecast(*request), TOL)
    assert_close(f.forecast_many(requests), answers, TOL)  # the Forecaster's delegate


def test_batched_forecasts_of_several_features_equal_lone_forecasts():
    f = fed(config_for(n_features=3, loss="mse"), d=3)
    view = f.view()
    answers = view.forecast_many([("s1", 5), ("s2", 2, 0.8)])
    assert all(len(row) == 3 for row in answers[0].mean)
    assert_close(answers, [view.forecast("s1", 5), view.forecast("s2", 2, 0.8)], TOL)


def test_a_bad_request_fails_alone_with_the_error_forecast_raises():
    f = fed(config_for())
    view = f.view()
    bad = [("ghost", 3), ("s0", 0), ("s1", 2, 1.5), ("s1",), ("s1", True), (7, 2), "s0"]
    requests = [("s0", 3), *bad, ("s2", 2)]
    answers = view.forecast_many(requests)
    assert_close(answers[0], view.forecast("s0", 3), TOL)
    assert_close(answers[-1], view.forecast("s2", 2), TOL)
    messages = [str(a) for a in answers[1:-1]]
    assert all(isinstance(a, ValueError) for a in answers[1:-1])
    for request, message in zip(bad[:3], messages, strict=False):
        with pytest.raises(ValueError) as raised:
            view.forecast(*request)
        assert str(raised.value) == message
    assert messages[0] == "series 'ghost' is unknown"
    assert messages[3].startswith("request ('s1',) is invalid") and "horizon=True" in messages[4]
    assert messages[5] == "series 7 is unknown" and messages[6].startswith("request 's0' is invalid")
    assert view.forecast_many([]) == []


@pytest.mark.parametrize("mode", ["stateful", "stateless"])
def test_forecast_many_leaves_every_tensor_bit_identical(mode):
    f, twin = fed(config_for(mode=mode, dtype="float32")), fed(config_for(mode=mode, dtype="float32"))
    before = snapshot(f)
    f.forecast_many([("s0", 6), ("s3", 2, 0.7), ("nope", 1)])
    assert_identical(snapshot(f), before)
    tick = [("s0", 1.0), ("s1", 2.0), ("s3", None)]
    assert_identical(list(f.observe_many(tick)), list(twin.observe_many(tick)))


@pytest.mark.parametrize("hybrid", [True, False])
def test_requests_for_the_same_series_and_level_share_one_row(hybrid, monkeypatch):
    # a hostile test (session 48): 8 identical requests at h = 1,000 to a model of 1,024 features took 8 times
    # as long as one; requests that differ only in their horizon, or not at all, now share a row, each answer
    # cut to its own horizon, equal to the lone forecast
    from tbptt_online import view as view_module

    rows: list[int] = []  # the rows each rollout computed: the hybrid's served paths, or the network's
    hybrid_rows, network_rows = view_module._hybrid_forecasts, view_module.roll_out

    def hybrid_counted(tensors, slots, *args):
        rows.append(len(slots))
        return hybrid_rows(tensors, slots, *args)

    def network_counted(network, state, last, *args):
        rows.append(last.shape[0])  # last [B, d]
        return network_rows(network, state, last, *args)

    monkeypatch.setattr(view_module, "_hybrid_forecasts", hybrid_counted)
    monkeypatch.setattr(view_module, "roll_out", network_counted)
    f = fed(config_for(hybrid=hybrid))
    view = f.view()
    requests = [("s0", 5)] * 8 + [("s0", 2), ("s0", 7, 0.5), ("s1", 3), ("s0", 9, 0.5)]
    answers = view.forecast_many(requests)
    assert rows == [3]  # (s0, 0.9), (s0, 0.5), (s1, 0.9)
    rows.clear()
    for request, answer in zip(requests, answers, strict=True):
        alone = view.forecast(*request)
        assert (answer.series, answer.horizon, answer.level, answer.step, answer.update_count) == (
            alone.series, alone.horizon, alone.level, alone.step, alone.update_count
        )  # fmt: skip
        assert len(answer.mean) == len(answer.lower) == len(answer.upper) == request[1]
        for got, expected in ((answer.mean, alone.mean), (answer.lower, alone.lower), (answer.upper, alone.upper)):
            assert_close(got, expected, TOL)


def test_a_batch_is_rolled_out_in_parts_of_at_most_max_horizon_steps_each_answer_the_same(monkeypatch):
    # a hostile test (session 51): a batch was rolled out at once to its longest horizon, every request a row: 32
    # requests of 200,000 steps took 3.1 GB, 40 of 10**6 asked for 7.4 GB and raised torch's allocation error
    forecaster = Forecaster(ForecasterConfig(hidden_size=8, seed=0, dtype="float64"))
    for i in range(30):
        forecaster.observe_many([("a", math.sin(i / 3)), ("b", 2.0 + math.cos(i / 5))])
    view = forecaster.view()
    rolled: list[list[int]] = []
    forecasts = view._forecasts

    def spying(valid):
        rolled.append([horizon for _, _, horizon, _ in valid])
        return forecasts(valid)

    monkeypatch.setattr(view_module, "MAX_HORIZON", 12)
    monkeypatch.setattr(view, "_forecasts", spying)
    requests = [("a", 5), ("b", 2), ("a", 12), ("ghost", 3), ("b", 3, 0.5), ("a", 1)]
    out = view.forecast_many(requests)
    assert all(len(batch) * max(batch) <= 12 for batch in rolled) and sorted(h for batch in rolled for h in batch) == [
        1,
        2,
        3,
        5,
        12,
    ]
    assert isinstance(out[3], ValueError)
    for request, answer in zip(requests, out, strict=True):
        if request[0] != "ghost":
            alone = view.forecast(*request)
            assert max(abs(x - y) for x, y in zip(answer.mean, alone.mean, strict=True)) < 1e-12
