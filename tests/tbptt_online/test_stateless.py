"""Stateless mode: every k1 observations of the model, one step on ``replay_batch``
windows of k2 values drawn from the retained history, each from the fresh initial
state; forecasts from a fresh state run over a series' last k2 values."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_online.sampler import UniformWindowSampler
from tests.tbptt_online.oracle import StreamOracle, max_abs_diff
from tests.tbptt_online.streams import staggered_ticks

TOL = 1e-10


class ScriptedSampler:
    """A sampler of our own: uniform over every valid window by Python's ``random``,
    recording each draw as (slot, last step) pairs."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.draws: list[list[tuple[int, int]]] = []

    def __call__(self, steps: torch.Tensor, retained: int, k2: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        valid = [
            (slot, end)
            for slot, count in enumerate(steps.tolist())
            for end in range(max(k2, count - retained + k2), count + 1)  # x_{end-k2+1} is still retained
        ]
        picks = [self.rng.choice(valid) for _ in range(n)] if valid else []
        self.draws.append(picks)
        return (
            torch.tensor([s for s, _ in picks], dtype=torch.int64),
            torch.tensor([e for _, e in picks], dtype=torch.int64),
        )


def stateless_config(**overrides) -> ForecasterConfig:
    base = dict(
        mode="stateless", hidden_size=5, k1=3, k2=4, replay_batch=3, history_size=6, optimizer="sgd", lr=0.05,
        clip_norm=None, loss="gaussian", normalize=False, dtype="float64", seed=5, hybrid=False,
    )  # fmt: skip
    base.update(overrides)
    return ForecasterConfig(**base)


def run_against_oracle(config: ForecasterConfig, ticks) -> tuple[Forecaster, StreamOracle]:
    sampler = ScriptedSampler(seed=11)
    f = Forecaster(config, sampler=sampler)
    oracle = StreamOracle(f.network, config)
    for i, tick in enumerate(ticks):
        seen = len(sampler.draws)
        results = f.observe_many(tick)
        name_of = {slot: name for name, slot in f.store.slots.items()}
        pending = [[(name_of[s], e) for s, e in picks] for picks in sampler.draws[seen:]]
        updates_before = len(oracle.records)

        def draw(pending=pending):
            assert pending, "the oracle expected an update the library did not draw windows for"
            return pending.pop(0)

        oracle.tick(tick, draw=draw)
        assert pending == [], "the library drew windows for an update the oracle did not expect"
        diff = max_abs_diff(f.network, oracle.net)
        assert diff <= TOL, f"tick {i}: weights differ from the oracle by {diff:.3e}"
        stats = f.update_stats()
        assert stats.updates == len(oracle.records)
        if len(oracle.records) > updates_before:
            loss, norm = oracle.records[-1]
            assert abs(stats.last_loss - loss) <= TOL * max(1.0, abs(loss))
            assert abs(stats.last_grad_norm - norm) <= TOL * max(1.0, norm)
        for r, (name, _) in zip(results, tick, strict=True):
            assert r.step == oracle.series[name].t
            assert r.updated == (len(oracle.records) > updates_before)
            assert abs(r.forecast_next.mean - oracle.served_in_units(name)[0]) <= TOL  # fresh run, new weights
    assert len(oracle.records) >= 3
    return f, oracle


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize(("k1", "k2"), [(1, 3), (3, 4), (2, 2), (4, 1)])
def test_stateless_update_equals_oracle_over_the_drawn_windows(k1, k2, cell):
    config = stateless_config(cell=cell, k1=k1, k2=k2, history_size=k2 + 2)
    ticks = staggered_ticks([0, 2, 3], 14, missing=[(0, 2), (1, 3), (2, 5)])
    run_against_oracle(config, ticks)


@pytest.mark.parametrize("loss", ["gaussian", "mse"])
def test_stateless_gradient_equals_oracle_with_lr_zero(loss):
    # lr = 0: the weights never move, so the loss and the gradient norm carry the check
    config = stateless_config(lr=0.0, loss=loss, k1=2)
    _, oracle = run_against_oracle(config, staggered_ticks([0, 1], 12))
    assert all(norm > 0 for _, norm in oracle.records)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_stateless_forecast_is_a_fresh_run_over_the_last_k2_values(cell):
    """Also for a series whose last value came before an update other series caused:
    its forecast uses the weights now, from a fresh run over its last k2 inputs."""
    config = stateless_config(cell=cell, k1=2, k2=3, history_size=5)
    ticks = [*staggered_ticks([0, 1, 2], 9), [("s0", 0.3)], [("s0", -0.2)], [("s0", 0.5)]]
    f, oracle = run_against_oracle(config, ticks)
    for name, trace in oracle.series.items():
        h = oracle.net.initial_state(1)
        with torch.no_grad():
            for x in trace.inputs[-config.k2 :]:
                h = oracle.net.advance(x, h)
            expected = float(oracle.net.predict(h)[0, 0]) + float(trace.inputs[-1][0, 0])  # residual head
        fc = f.forecast(name, horizon=1)
        assert abs(fc.mean[0] - expected) <= TOL, (name, fc.mean[0], expected)


def test_stateless_updates_every_k1_observations_of_the_model():
    config = stateless_config(k1=4, k2=2, replay_batch=2)
    sampler = ScriptedSampler(seed=0)
    f = Forecaster(config, sampler=sampler)
    f.observe_many([("a", 1.0), ("b", 2.0), ("c", 3.0)])  # 3 observations: not yet
    assert len(sampler.draws) == 0
    f.observe_many([("a", 1.5), ("b", 2.5)])  # 5 observations: one update (a and b hold a window of 2)
    assert len(sampler.draws) == 1 and f.update_stats().updates == 1
    f.observe_many([(n, 0.1 * i) for i, n in enumerate("abcdefghi")])  # 14: crosses 8 and 12, two updates
    assert len(sampler.draws) == 3 and f.update_stats().updates == 3


def test_uniform_sampler_draws_every_retained_window_and_nothing_else():
    sampler = UniformWindowSampler(seed=3)
    steps = torch.tensor([2, 9, 0, 4])  # slot 0: too short for k2 = 3; slot 2: empty
    slots, ends = sampler(steps, retained=6, k2=3, n=4000)
    pairs = Counter(zip(slots.tolist(), ends.tolist(), strict=True))
    # slot 1 retains steps 4..9: windows ending at 6..9; slot 3 retains 1..4: ending at 3..4
    assert set(pairs) == {(1, 6), (1, 7), (1, 8), (1, 9), (3, 3), (3, 4)}
    assert min(pairs.values()) > 4000 / 6 * 0.8 and max(pairs.values()) < 4000 / 6 * 1.2  # seeded: deterministic
