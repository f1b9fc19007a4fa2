"""The update rule is the contract: the library's weights after every update equal an
independent oracle (tests/tbptt_online/oracle.py) to 1e-10 in float64 with plain SGD."""

from __future__ import annotations

import math

import pytest
import torch

from tbptt_online import Forecaster, ForecasterConfig, engine, gru_rows, gru_window, network
from tests.tbptt_online.oracle import (
    StreamOracle,
    detach_state,
    max_abs_diff,
    previous_inputs,
    truncated_window_loss,
)
from tests.tbptt_online.streams import staggered_ticks

TOL = 1e-10
K1_K2 = [(1, 1), (1, 5), (4, 4), (2, 5), (3, 7), (5, 2)]


def exact_config(**overrides) -> ForecasterConfig:
    base = dict(
        hidden_size=5, k1=2, k2=5, optimizer="sgd", lr=0.05, clip_norm=None, loss="gaussian",
        normalize=False, dtype="float64", seed=3, hybrid=False, warmup_updates=0, guards=False,
    )  # fmt: skip
    base.update(overrides)
    return ForecasterConfig(**base)


def stream_for(k1: int, k2: int, n_series: int, **kwargs):
    """Staggered starts: s1 enters k1 ticks after s0 (their updates share ticks while
    their window lengths differ in the warm-up), s2 one tick later (updates of its own)."""
    starts = [0, k1, k1 + 1][:n_series]
    return staggered_ticks(starts, n_ticks=starts[-1] + 2 * k2 + k1 + 1, **kwargs)


def assert_follows_oracle(config: ForecasterConfig, ticks) -> StreamOracle:
    """Feed ``ticks`` to the library and the oracle; compare after every tick: the
    weights, the update's loss and gradient norm, which series updated, and the served
    one-step forecasts."""
    f = Forecaster(config)
    oracle = StreamOracle(f.network, config)
    initial = StreamOracle(f.network, config).net
    shared_update_seen = padded_update_seen = False
    seen: dict[str, list[bool]] = {}  # per series and feature: a value observed yet
    for i, tick in enumerate(ticks):
        for name, value in tick:
            values = value if isinstance(value, list) else [value] * config.n_features  # None: every feature
            seen[name] = [
                a or v is not None for a, v in zip(seen.get(name, [False] * len(values)), values, strict=True)
            ]
        results = f.observe_many(tick)
        oracle.tick(tick)
        diff = max_abs_diff(f.network, oracle.net)
        assert diff <= TOL, f"tick {i}: weights differ from the oracle by {diff:.3e}"
        stats = f.update_stats()
        assert stats.updates == len(oracle.records) and stats.skipped == 0
        if oracle.last_due:
            loss, norm = oracle.records[-1]
            assert abs(stats.last_loss - loss) <= TOL * max(1.0, abs(loss)), (i, stats.last_loss, loss)
            assert abs(stats.last_grad_norm - norm) <= TOL * max(1.0, norm), (i, stats.last_grad_norm, norm)
            shared_update_seen |= len(oracle.last_due) > 1
            lengths = {min(oracle.series[n].t, config.k2) for n in oracle.last_due}
            padded_update_seen |= len(lengths) > 1  # one replay mixing windows of different lengths
        for r, (name, _) in zip(results, tick, strict=True):
            assert r.series == name and r.step == oracle.series[name].t
            assert r.updated == (name in oracle.last_due)
            served = oracle.served_in_units(name)
            got = r.forecast_next.mean if isinstance(r.forecast_next.mean, list) else [r.forecast_next.mean]
            assert [a is None for a in got] == [not known for known in seen[name]], (i, name, got)  # none: nothing seen
            pairs = [(a, b) for a, b, known in zip(got, served, seen[name], strict=True) if known]
            assert max((abs(a - b) for a, b in pairs), default=0.0) <= TOL, (i, name, got, served)
    # the comparison is not vacuous: updates ran, with a gradient, and moved the weights
    assert len(oracle.records) >= 2
    assert sum(norm > 0 for _, norm in oracle.records) >= 2  # (a fully missing window has none)
    if config.lr > 0:
        assert max_abs_diff(initial, oracle.net) > 1e-6
    else:
        assert max_abs_diff(initial, oracle.net) == 0.0
    if len({name for tick in ticks for name, _ in tick}) > 1 and config.k1 < 5:
        assert shared_update_seen, "the stream should batch updates of several series"
        if config.k1 < config.k2:
            assert padded_update_seen, "the stream should batch warm-up windows of different lengths"
    return oracle


@pytest.mark.parametrize("lr", [0.0, 0.05])
@pytest.mark.parametrize("n_series", [1, 3])
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize(("k1", "k2"), K1_K2)
def test_weights_after_every_update_equal_oracle(k1, k2, cell, n_series, lr):
    config = exact_config(cell=cell, k1=k1, k2=k2, lr=lr)
    assert_follows_oracle(config, stream_for(k1, k2, n_series))


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize(("k1", "k2"), [(1, 5), (3, 7), (5, 2)])
def test_mse_loss_updates_equal_oracle(k1, k2, cell):
    config = exact_config(cell=cell, k1=k1, k2=k2, loss="mse", lr=0.02)
    assert_follows_oracle(config, stream_for(k1, k2, 3))


@pytest.mark.parametrize("loss", ["gaussian", "mse"])
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize(("k1", "k2"), [(1, 5), (2, 5), (4, 4), (5, 2)])
def test_missing_values_feed_the_served_forecast_and_mask_their_loss(k1, k2, cell, loss):
    # s0 misses its first value (fed predict(h_0)), values inside windows and a due step;
    # s1 misses two in a row; s2 misses the value of a shared tick.
    missing = [(0, 1), (0, 4), (0, 5), (1, 2), (1, 3), (2, 6), (0, 2 * k1)]
    config = exact_config(cell=cell, k1=k1, k2=k2, loss=loss, lr=0.05)
    assert_follows_oracle(config, stream_for(k1, k2, 3, missing=missing))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_multivariate_partial_missing_updates_equal_oracle(cell):
    # d = 3; a missing feature contributes 0 and the step's loss is divided by d
    partial = [(0, 2, 1), (1, 3, 0), (2, 4, 2), (0, 5, 0)]
    config = exact_config(cell=cell, k1=2, k2=5, n_features=3)
    assert_follows_oracle(config, stream_for(2, 5, 3, d=3, missing=[(1, 5)], partial=partial))


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_two_layer_network_updates_equal_oracle(cell):
    config = exact_config(cell=cell, k1=2, k2=5, num_layers=2)
    assert_follows_oracle(config, stream_for(2, 5, 3, missing=[(0, 3)]))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_normalised_stream_updates_equal_oracle(cell):
    # the oracle normalises with a direct mean / std of the values so far (not Welford)
    config = exact_config(cell=cell, k1=3, k2=7, normalize=True)
    assert_follows_oracle(config, stream_for(3, 7, 3, missing=[(0, 4), (2, 2)]))


@pytest.mark.parametrize(("k1", "k2"), [(2, 5), (3, 3)])
def test_one_observe_many_call_puts_the_kth_value_of_each_series_in_tick_k(k1, k2):
    ticks = staggered_ticks([0, 1, 3], n_ticks=2 * k2 + k1 + 3, missing=[(1, 2)])
    flat = [item for tick in ticks for item in tick]  # interleaved, staggered
    per_series: dict[str, list] = {}
    for name, value in flat:
        per_series.setdefault(name, []).append(value)
    depth = max(len(v) for v in per_series.values())
    grouped = [[(n, v[k]) for n, v in per_series.items() if k < len(v)] for k in range(depth)]

    config = exact_config(k1=k1, k2=k2)
    f = Forecaster(config)
    oracle = StreamOracle(f.network, config)
    results = f.observe_many(flat)
    served = {}
    for tick in grouped:
        oracle.tick(tick)
        served.update({name: (oracle.series[name].t, oracle.served_in_units(name)[0]) for name, _ in tick})
    assert len(oracle.records) >= 2 and f.update_stats().updates == len(oracle.records)
    assert max_abs_diff(f.network, oracle.net) <= TOL
    seen: dict[str, int] = {}
    for r, (name, _) in zip(results, flat, strict=True):  # results in the order given
        seen[name] = seen.get(name, 0) + 1
        assert (r.series, r.step) == (name, seen[name])
    last = {r.series: r for r in results}
    for name, (t, mean) in served.items():
        assert last[name].step == t and abs(last[name].forecast_next.mean - mean) <= TOL


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize(("k1", "k2_min", "k2_max"), [(2, 3, 7), (3, 2, 8), (1, 1, 4)])
def test_varying_windows_k_t_equal_oracle_with_k_t_from_the_record(k1, k2_min, k2_max, cell):
    """k2="adaptive": each update's window K_t is recorded; the oracle, told K_t from the
    record, replays from ĥ_{t-K_t} and agrees to 1e-10. K_t is set here in a cycle over the
    candidates (the adaptive choice itself is tested in test_truncation.py), so that every
    window length starts at its kept state, also right after a change of K."""
    config = exact_config(cell=cell, k1=k1, k2="adaptive", k2_min=k2_min, k2_max=k2_max, probe_every=0)
    f = Forecaster(config)
    oracle = StreamOracle(f.network, config)
    candidates = config.window_candidates
    used = set()
    for i, tick in enumerate(stream_for(k1, k2_max, 3, missing=[(0, 3)]) * 2):
        f.probe.window = candidates[(i * 7) % len(candidates)]
        before = f.engine.attempts
        f.observe_many(tick)
        if f.engine.attempts > before:
            oracle.window = f.engine.recent[-1].window  # K_t, from the record
            used.add(oracle.window)
        oracle.tick(tick)
        assert max_abs_diff(f.network, oracle.net) <= TOL, f"tick {i}: K_t={oracle.window}"
        assert f.update_stats().updates == len(oracle.records)
    assert used == set(candidates) and len(oracle.records) >= 8


# -- the truncation ------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize(("k1", "k2"), K1_K2)
def test_gradient_stops_at_t_minus_k2(k1, k2, cell):
    """In the oracle's graph, values at or before t-k2 get exactly zero gradient and
    the value at t-k2+1 a nonzero one; without the stopgrad, x_{t-k2} would get one."""
    config = exact_config(cell=cell, k1=k1, k2=k2)
    net = Forecaster(config).network
    t = k2 + 2 * k1 + 1
    t -= t % k1  # an update step
    m = min(k1, k2)
    xs = [
        torch.tensor([[math.sin(0.8 * s) + 0.1 * s]], dtype=torch.float64, requires_grad=True) for s in range(1, t + 1)
    ]
    states = [net.initial_state(1)]  # ĥ_0 .. ĥ_t unrolled WITHOUT detach
    for x in xs:
        states.append(net.advance(x, states[-1]))
    window, targets = xs[t - k2 :], [x[0] for x in xs[t - k2 :]]  # x_{t-k2+1} .. x_t, as inputs and targets

    truncated = truncated_window_loss(net, detach_state(states[t - k2]), window, targets, m, config.loss)
    grads = torch.autograd.grad(truncated, xs, allow_unused=True)
    for s in range(1, t - k2 + 1):  # x_s at or before t-k2: no path to the loss
        assert grads[s - 1] is None or bool((grads[s - 1] == 0).all()), s
    assert grads[t - k2] is not None and bool((grads[t - k2] != 0).all())  # x_{t-k2+1}

    untruncated = truncated_window_loss(net, states[t - k2], window, targets, m, config.loss)
    grads = torch.autograd.grad(untruncated, xs, allow_unused=True)
    assert grads[t - k2 - 1] is not None and bool((grads[t - k2 - 1] != 0).all())  # x_{t-k2}: the check can fail


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize(("k1", "k2"), [(2, 5), (5, 2), (4, 4)])
def test_library_replays_start_from_the_detached_live_state(k1, k2, cell, monkeypatch):
    """Every replay the library runs starts at stopgrad(ĥ_{t-k2}) (h_0 while t <= k2) and
    holds exactly x_{t-min(t,k2)+1} .. x_t, with m = min(k1, k2) loss steps."""
    config = exact_config(cell=cell, k1=k1, k2=k2)
    f = Forecaster(config)
    oracle = StreamOracle(f.network, config)
    calls = []
    original = f.engine.replay_update

    def recording(start, x, y, mask, active_from, loss_steps, base, window=None, settled=True):
        calls.append((start, x.clone(), mask.clone(), active_from.clone(), loss_steps, base))
        return original(start, x, y, mask, active_from, loss_steps, base, window, settled)

    monkeypatch.setattr(f.engine, "replay_update", recording)
    for tick in stream_for(k1, k2, 3, missing=[(0, 3)]):
        calls.clear()
        f.observe_many(tick)
        oracle.tick(tick)
        assert len(calls) == (1 if oracle.last_due else 0)
        if not calls:
            continue
        start, x, mask, active_from, loss_steps, base = calls[0]
        assert loss_steps == min(k1, k2)
        assert base is not None and base.shape == (loss_steps, *x.shape[1:])  # the residual head's x_{s-1}
        parts = start if isinstance(start, tuple) else (start,)
        assert all(p.grad_fn is None and not p.requires_grad for p in parts)  # the truncation
        for row, name in enumerate(oracle.last_due):
            trace = oracle.series[name]
            first = max(0, trace.t - k2)
            expected_start = trace.states[first]
            wants = expected_start if isinstance(expected_start, tuple) else (expected_start,)
            for got, want in zip(parts, wants, strict=True):
                assert float((got[row] - want[0]).abs().max()) <= TOL
            a = int(active_from[row])
            assert a == x.shape[0] - (trace.t - first)
            window = torch.cat(trace.inputs[first:])  # [w, d]
            assert float((x[a:, row] - window).abs().max()) <= TOL
            assert not bool(mask[:a, row].any())  # padding is never scored
            observed = ~torch.isnan(torch.stack(trace.targets[first:]))
            assert torch.equal(mask[a:, row], observed)
            previous = torch.cat(previous_inputs(trace.inputs, first, trace.t)[-loss_steps:])  # [m, d]
            assert float((base[:, row] - previous).abs().max()) <= TOL


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize(("k1", "k2"), [(1, 5), (3, 7), (5, 2)])
def test_level_head_updates_equal_oracle(k1, k2, cell):
    """residual=False: the mean head predicts the level itself (no x_{s-1} added)."""
    assert_follows_oracle(exact_config(cell=cell, k1=k1, k2=k2, residual=False), stream_for(k1, k2, 3))


@pytest.mark.parametrize("max_rows", [0, 1000])
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_step_loop_and_sequence_op_replays_both_equal_oracle(cell, max_rows, monkeypatch):
    # Replays without padding run as one sequence op up to SEQUENCE_OP_MAX_ROWS rows, as a
    # loop of steps above: force each way for every replay (padded ones always loop).
    monkeypatch.setattr(network, "SEQUENCE_OP_MAX_ROWS", max_rows)
    monkeypatch.setattr(gru_window, "FEW_ROWS", 0)  # not the compiled GRU window (next test)
    config = exact_config(cell=cell, k1=2, k2=5, num_layers=2)
    assert_follows_oracle(config, stream_for(2, 5, n_series=3))


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize(("hybrid", "loss"), [(False, "gaussian"), (False, "absolute"), (True, "absolute")])
@pytest.mark.parametrize(("k1", "k2"), [(1, 5), (2, 5), (5, 2)])
def test_compiled_gru_window_replays_equal_oracle(k1, k2, hybrid, loss, direct, monkeypatch):
    # Replays of up to gru_window.FEW_ROWS rows without padding (one GRU layer) run forward and
    # backward in gru_window's kernels: count them, and force them for every such replay. With
    # the absolute loss of a point forecast the head and the loss run there too (GRUWindowLoss's
    # kernels, _loss_forward), as an autograd node or, in an update, straight from the engine
    # (_direct_gradients; direct=False: every replay through the node and .backward()).
    monkeypatch.setattr(gru_window, "FEW_ROWS", 1000)
    if not direct:
        monkeypatch.setattr(engine.TBPTTEngine, "_direct_gradients", lambda self, *windows: None)
    calls = {"GRUWindow": [], "GRUWindowLoss": [], "direct": []}
    original = gru_window.GRUWindow.forward

    def counted(ctx, *args):
        calls["GRUWindow"].append(args[0].shape[1])
        return original(ctx, *args)

    def counted_loss(x, *args, original=gru_window._loss_forward):
        calls["GRUWindowLoss"].append(x.shape[1])
        return original(x, *args)

    def counted_direct(*args, original=gru_window.mean_loss_gradients):
        calls["direct"].append(args[0].shape[1])
        return original(*args)

    monkeypatch.setattr(gru_window.GRUWindow, "forward", staticmethod(counted))
    monkeypatch.setattr(gru_window, "_loss_forward", counted_loss)
    monkeypatch.setattr(engine, "mean_loss_gradients", counted_direct)
    if hybrid:
        assert_hybrid_follows_oracle(hybrid_config(k1=k1, k2=k2), stream_for(k1, k2, 3, missing=[(0, 3)]))
    else:
        assert_follows_oracle(exact_config(k1=k1, k2=k2, loss=loss), stream_for(k1, k2, 3))
    fused = calls["GRUWindowLoss"] + calls["direct"]  # the node's forward, or its kernels called straight
    if loss == "gaussian":
        assert not fused
    elif k1 < k2:  # fused where a window's scored states all follow its start (m = min(k1, k2) < L = k2)
        assert len(fused) >= 2 and max(fused) >= 2
        assert (len(calls["direct"]) >= 2) == direct  # the updates' replays, the engine's way or the node's
    replays = calls["GRUWindow"] + fused
    assert len(replays) >= 2 and max(replays) >= 2  # replays of one and of several rows went through it


@pytest.mark.parametrize("hybrid", [False, True])
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_replays_in_chunks_of_rows_equal_oracle(cell, hybrid, monkeypatch):
    # An update over more than CHUNK_ROWS windows backpropagates them a chunk at a time (the
    # gradients add up in .grad): the same loss, gradient norm and weights as one pass.
    monkeypatch.setattr(engine, "CHUNK_ROWS", 1)
    seen, original = [], engine.TBPTTEngine.chunk_losses

    def recording(self, *windows):
        seen.append(original(self, *windows))
        return seen[-1]

    monkeypatch.setattr(engine.TBPTTEngine, "chunk_losses", recording)
    if hybrid:
        assert_hybrid_follows_oracle(hybrid_config(cell=cell, k1=2, k2=5), stream_for(2, 5, 3, missing=[(0, 3)]))
    else:
        assert_follows_oracle(exact_config(cell=cell, k1=2, k2=5, num_layers=2), stream_for(2, 5, n_series=3))
    assert max(len(parts) for parts in seen) >= 2  # updates of several series ran as one chunk each


# -- the warm-up (issue 10): every value updates up to step W, then every k1 -----------------
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize(("k1", "k2", "warmup"), [(2, 5, 5), (3, 7, 4), (4, 4, 4), (5, 2, 2), (3, 6, 1)])
def test_warmup_updates_equal_oracle(k1, k2, warmup, cell):
    """Updates at every step t <= W, then at multiples of k1, each scoring the steps since the
    series' previous update (the oracle counts them itself): every loss is used once."""
    config = exact_config(cell=cell, k1=k1, k2=k2, warmup_updates=warmup)
    oracle = assert_follows_oracle(config, stream_for(k1, k2, 3, missing=[(0, 2)]))
    assert len(oracle.records) >= warmup  # one per warm-up tick at least


# -- the hybrid (issue 10): the network learns the experts' error from their features ------
def hybrid_config(**overrides) -> ForecasterConfig:
    return exact_config(**{"hybrid": True, "loss": "absolute", "warmup_updates": None, "season_length": 4, **overrides})


def fed_at_this_tick(f: Forecaster, names: list[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """What the library fed the network at each series' newest step, and its target (NaN where
    undefined), read from its history ring."""
    st, ring = f.store.tensors, f.config.ring_size
    given = {}
    for name in names:
        slot = f.store.slots[name]
        row = int(st["steps"][slot] - 1) % ring
        target = torch.where(st["hist_mask"][slot, row], st["hist_y"][slot, row], math.nan)
        given[name] = (st["hist_x"][slot, row][None].clone(), target.clone())
    return given


def assert_hybrid_follows_oracle(config: ForecasterConfig, ticks) -> StreamOracle:
    f = Forecaster(config)
    oracle = StreamOracle(f.network, config)
    for i, tick in enumerate(ticks):
        f.observe_many(tick)
        oracle.tick(tick, given=fed_at_this_tick(f, [name for name, _ in tick]))
        diff = max_abs_diff(f.network, oracle.net)
        assert diff <= TOL, f"tick {i}: weights differ from the oracle by {diff:.3e}"
        assert f.update_stats().updates == len(oracle.records)
        for name, _ in tick:  # the network's correction of the next value, as the library stored it
            got = f.store.tensors["n_correction"][f.store.slots[name]]
            want = oracle.series[name].served[0, : config.n_features]
            assert float((got - want).abs().max()) <= TOL, (i, name)
    assert len(oracle.records) >= 2 and sum(norm > 0 for _, norm in oracle.records) >= 2
    assert f.store.tensors["x_season_length"][0, 0, 0] == 4  # the experts ran with the configured season
    return oracle


@pytest.mark.parametrize("loss", ["absolute", "gaussian"])
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize(("k1", "k2"), [(2, 5), (3, 3), (5, 2)])
def test_hybrid_updates_equal_oracle(k1, k2, cell, loss):
    config = hybrid_config(cell=cell, k1=k1, k2=k2, loss=loss)
    assert_hybrid_follows_oracle(config, stream_for(k1, k2, 3, missing=[(0, 3), (2, 6)]))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_hybrid_multivariate_updates_equal_oracle(cell):
    config = hybrid_config(cell=cell, k1=2, k2=5, n_features=2, num_layers=2)
    assert_hybrid_follows_oracle(config, stream_for(2, 5, 3, d=2, missing=[(1, 5)], partial=[(0, 4, 1)]))


@pytest.mark.parametrize(("hybrid", "chunk"), [(False, 1), (False, 2), (True, 2)])
@pytest.mark.parametrize(("k1", "k2"), [(1, 5), (2, 5), (5, 2)])
def test_replays_of_many_rows_without_autograd_equal_oracle(k1, k2, hybrid, chunk, monkeypatch, torch_threads):
    # An update's replay of many rows (one GRU layer, no padding, the absolute loss of a point
    # forecast) takes its loss and gradients from gru_rows (_direct_gradients), no autograd: force
    # it for every such replay (MIN_ROWS 1, none through gru_window), in chunks of 1 or 2 rows (one
    # thread: CHUNK_ROWS rows a chunk)
    torch_threads(1)
    monkeypatch.setattr(gru_rows, "MIN_ROWS", 1)
    monkeypatch.setattr(gru_rows, "CHUNK_ROWS", chunk)
    monkeypatch.setattr(gru_window, "FEW_ROWS", 0)
    calls = []

    def counted(*args, original=gru_rows.mean_loss_gradients):
        calls.append(args[0].shape[1])
        return original(*args)

    monkeypatch.setattr(gru_rows, "mean_loss_gradients", counted)
    if hybrid:
        assert_hybrid_follows_oracle(hybrid_config(k1=k1, k2=k2), stream_for(k1, k2, 3, missing=[(0, 3)]))
    else:
        assert_follows_oracle(exact_config(k1=k1, k2=k2, loss="absolute"), stream_for(k1, k2, 3))
    if k1 < k2:  # (m = min(k1, k2) < L = k2: no scored state is a window's start; k1 >= k2: warm-up's only)
        assert len(calls) >= 2 and max(calls) >= 2  # updates of one and of several rows went through it
