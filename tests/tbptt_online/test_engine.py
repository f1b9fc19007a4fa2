"""The engine's own optimizer step and clipping are torch's, bit for bit, and a step that
would leave a weight non-finite is undone with the optimizer's state as it was."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tbptt_online import Forecaster, ForecasterConfig, engine
from tests.tbptt_online.snapshots import assert_identical, snapshot
from tests.tbptt_online.streams import staggered_ticks


def torch_step(self: engine.TBPTTEngine) -> None:
    self.optimizer.step()


def torch_clip(self: engine.TBPTTEngine, grads: list[torch.Tensor]) -> torch.Tensor:
    if self.config.clip_norm is None:
        return nn.utils.get_total_norm(grads)
    return nn.utils.clip_grad_norm_(self.params, self.config.clip_norm, error_if_nonfinite=False)


def fed(config: ForecasterConfig) -> Forecaster:
    f = Forecaster(config)
    for tick in staggered_ticks([0, 0, 3], 40):
        f.observe_many(tick)
    return f


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("clip_norm", [1e-3, 1.0, None])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_engines_step_and_clipping_give_torchs_bits(optimizer, clip_norm, dtype, monkeypatch):
    # the engine calls Adam's fused kernel itself and computes the clipping without torch's grouping
    # of the tensors: the weights, the moments, every series field and the recorded norms must equal
    # those of optimizer.step() and nn.utils.clip_grad_norm_ in every byte
    config = ForecasterConfig(k1=4, k2=8, hidden_size=8, optimizer=optimizer, clip_norm=clip_norm, dtype=dtype)
    ours = fed(config)
    monkeypatch.setattr(engine.TBPTTEngine, "_step", torch_step)
    monkeypatch.setattr(engine.TBPTTEngine, "_clip", torch_clip)
    theirs = fed(config)
    assert ours.update_stats().updates >= 10
    assert_identical(snapshot(ours), snapshot(theirs))


def test_an_adam_step_that_would_make_a_weight_infinite_is_undone_with_its_moments() -> None:
    # the undo restores the weights and Adam's step counts and moments from the copies taken before
    # the step (kept from step to step, not cloned): after a learning rate of 3e38 they are as before
    config = ForecasterConfig(k1=2, k2=4, hidden_size=4, hybrid=False, warmup_updates=0, clip_norm=None)
    f = Forecaster(config)
    for v in (0.1, 0.5, 0.2, 0.7, 0.3, 0.9):
        f.observe("a", v)
    assert f.update_stats().updates == 3
    before = snapshot(f)
    f.engine.optimizer.param_groups[0]["lr"] = 3e38  # Adam's step is about lr per weight: past float32's range
    f.observe("a", 0.4)
    f.observe("a", 1.1)  # t = 8: an update
    stats = f.update_stats()
    assert (stats.updates, stats.skipped) == (3, 1)
    assert math.isfinite(stats.last_loss) and math.isfinite(stats.last_grad_norm)
    after = snapshot(f)
    assert_identical(after["parameters"], before["parameters"])
    assert_identical(after["optimizer"]["state"], before["optimizer"]["state"])
    f.engine.optimizer.param_groups[0]["lr"] = config.lr
    f.observe("a", 0.5)
    f.observe("a", 0.6)
    assert f.update_stats().updates == 4
    assert all(bool(torch.isfinite(p).all()) for p in f.network.parameters())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hybrid", [False, True])
def test_updates_of_few_rows_without_autograd_give_the_bits_of_the_backward_pass(hybrid, dtype, monkeypatch):
    # an update of few rows with the absolute loss takes the fused window's gradients straight from
    # its kernels (_direct_gradients): every weight, moment, series field and recorded loss and norm
    # must equal those of the same updates through chunk_losses and .backward()
    config = ForecasterConfig(k1=4, k2=8, hidden_size=8, hybrid=hybrid, loss="absolute", dtype=dtype)
    taken, original = [], engine.TBPTTEngine._direct_gradients

    def counted(self, *windows):
        answer = original(self, *windows)
        taken.append(answer is not None)
        return answer

    monkeypatch.setattr(engine.TBPTTEngine, "_direct_gradients", counted)
    ours = fed(config)
    assert sum(taken) >= 10  # most updates went the direct way
    monkeypatch.setattr(engine.TBPTTEngine, "_direct_gradients", lambda self, *windows: None)
    theirs = fed(config)
    assert ours.update_stats().updates >= 10
    assert [(r.loss, r.grad_norm) for r in ours.engine.recent] == [(r.loss, r.grad_norm) for r in theirs.engine.recent]
    assert_identical(snapshot(ours), snapshot(theirs))


@pytest.mark.parametrize(("rows", "threads"), [(2, 1), (70, 1), (70, 2)])  # gru_window's kernels, gru_rows
def test_an_update_whose_window_is_not_finite_goes_the_backward_way(rows, threads, torch_threads):
    # _direct_gradients declines a replay where a window's sum is not finite (an infinite target):
    # chunk_losses leaves that window out and the other series' windows still make the update
    torch_threads(threads)  # (gru_rows on two: its chunks on the pool's threads)
    config = ForecasterConfig(k1=2, k2=4, hidden_size=4, hybrid=False, warmup_updates=0, normalize=False)
    net = Forecaster(config).network
    eng = engine.TBPTTEngine(net, config)
    g = torch.Generator().manual_seed(0)
    start = torch.zeros(rows, 1, 4)  # [B, layers, H]
    x = torch.randn(4, rows, net.cells[0].weight_ih.shape[1], generator=g)  # [L, B, I]
    y, mask = torch.randn(4, rows, 1, generator=g), torch.ones(4, rows, 1, dtype=torch.bool)
    active_from = torch.zeros(rows)
    with torch.enable_grad():
        assert eng._direct_gradients(start, x, y, mask, active_from.long(), 2, None) is not None
        y[3, 1, 0] = math.inf
        assert eng._direct_gradients(start, x, y, mask, active_from.long(), 2, None) is None
    before = [p.detach().clone() for p in eng.params]
    record = eng.replay_update(start, x, y, mask, active_from.long(), 2)
    assert not record.skipped and math.isfinite(record.loss)
    assert all(bool(torch.isfinite(p).all()) for p in eng.params)
    assert any(not torch.equal(p, b) for p, b in zip(eng.params, before, strict=True))


@pytest.mark.parametrize("kind", ["register_hook", "register_post_accumulate_grad_hook"])
def test_a_hook_on_a_weight_is_called_by_an_update_of_few_rows(kind):
    # the direct way (no autograd) would skip a user's gradient hook: a weight with one goes the
    # .backward() way, which calls it with the gradient the update uses
    f = Forecaster(ForecasterConfig(hidden_size=4, k1=2, k2=3, hybrid=False, warmup_updates=0))
    seen = []
    hook = (lambda g: seen.append(g.clone())) if kind == "register_hook" else (lambda p: seen.append(p.grad.clone()))
    handle = getattr(f.network.head.bias, kind)(hook)
    for v in (0.1, 0.2, 0.3, 0.4):
        f.observe("a", v)  # updates at t = 2 and 4
    handle.remove()
    assert len(seen) == f.update_stats().updates == 2


def test_a_frozen_weight_keeps_the_update_of_few_rows_on_the_backward_way():
    # the direct way wrote a gradient onto the six weights it knows: a frozen head bias got one,
    # which .backward() never gives it and _clear_grads never cleared (a review)
    f = Forecaster(ForecasterConfig(hidden_size=4, k1=2, k2=3, hybrid=False, warmup_updates=0))
    f.network.head.bias.requires_grad_(False)
    f.engine = engine.TBPTTEngine(f.network, f.config)  # the engine's trainable weights: five
    bias = f.network.head.bias.detach().clone()
    for v in (0.1, 0.2, 0.3, 0.4):
        f.observe("a", v)
    assert f.update_stats().updates == 2
    assert f.network.head.bias.grad is None and torch.equal(f.network.head.bias.detach(), bias)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("clip_norm", [1e-3, 1.0, 7.3, 1e33, 3.5e38])
def test_the_clip_coefficient_has_the_bits_of_torchs_clamped_factor(clip_norm, dtype):
    # clip_coefficient computes clip_grads_with_norm_'s factor on numpy scalars: every norm,
    # below and above the clip, huge, tiny, zero, infinite and NaN, gives torch's value, silently
    # (pytest makes warnings errors: a clip of 1e33 and a norm of 0, from a run of missing values,
    # overflowed float32 with a numpy warning; a review, session 34)
    g = torch.Generator().manual_seed(0)
    norms = [*torch.rand(200, generator=g, dtype=torch.float64).mul(20).tolist(), 0.0, 1e-30, 3e38, math.inf, math.nan]
    for value in norms:
        norm = torch.tensor(value, dtype=dtype)
        want = torch.clamp(clip_norm / (norm + 1e-6), max=1.0).item()
        got = engine.clip_coefficient(norm, clip_norm)
        assert got == want or (math.isnan(got) and math.isnan(want)), (value, got, want)


def test_an_update_whose_targets_require_grad_is_applied_and_recorded() -> None:
    # fix (session 34, a review): the guards read the targets through numpy without a detach, and raised
    # after the optimizer's step, its record lost; before session 34 such targets were taken
    f = Forecaster(ForecasterConfig(k1=2, k2=4, hidden_size=4, hybrid=False, dtype="float64"))
    original = f.engine.replay_update

    def with_grad_targets(start, x, y, *rest, **kwargs):
        return original(start, x, y.clone().requires_grad_(), *rest, **kwargs)

    f.engine.replay_update = with_grad_targets
    for v in (0.1, 0.5, 0.2, 0.7, 0.3, 0.9):
        f.observe("a", v)
    stats = f.update_stats()
    assert stats.updates == len(f.engine.recent) == 5 and stats.skipped == 0  # (the warm-up updates every value)


def test_an_update_that_scores_nothing_moves_no_weight_and_no_moment() -> None:
    # a new user's outage (session 49): with every value of its scored steps missing, an update's gradient is 0,
    # but Adam's step moved the weights on its momentum alone: 200 missing values of a trained series, 25 such
    # updates, moved them by 5.7 % of their norm (40 values of learning: 2.5 %)
    f = Forecaster(ForecasterConfig(seed=0))
    for t in range(400):
        f.observe("a", math.sin(t / 3) + 0.1 * (t % 7))
    weights = [p.detach().clone() for p in f.network.parameters()]
    moments = [{k: v.clone() for k, v in f.engine.optimizer.state[p].items()} for p in f.network.parameters()]
    updates = f.engine.updates
    results = [f.observe("a", None) for _ in range(200)]
    assert f.engine.updates - updates == sum(r.updated for r in results) == 25  # counted, as the rule's updates
    for before, p in zip(weights, f.network.parameters(), strict=True):
        assert torch.equal(before, p)
    for before, p in zip(moments, f.network.parameters(), strict=True):
        assert all(torch.equal(v, f.engine.optimizer.state[p][k]) for k, v in before.items())
    f.observe("a", 1.0)  # a value again: the next update learns from it
    for _ in range(8):
        f.observe("a", 0.5)
    assert any(not torch.equal(before, p) for before, p in zip(weights, f.network.parameters(), strict=True))


def test_an_update_whose_only_scored_windows_are_left_out_as_not_finite_moves_no_weight() -> None:
    # a review (session 49): the first rule read the mask of every window; a series in an outage beside one whose
    # windows are left out as not finite (a raw-value MSE network, values of 3e25: squares past float32) gave
    # updates of loss 0 and gradient 0 on which Adam still stepped on its momentum (7.9 % of the weights' norm)
    config = ForecasterConfig(seed=0, hybrid=False, normalize=False, loss="mse", outlier_sigmas=None)
    f = Forecaster(config)
    for t in range(400):
        f.observe_many([("a", math.sin(t / 3) + 0.1 * (t % 7)), ("b", math.cos(t / 5))])
    weights = [p.detach().clone() for p in f.network.parameters()]
    for _ in range(200):
        f.observe_many([("a", None), ("b", 3e25)])
    records = list(f.engine.recent)[-5:]
    assert all(r.loss == 0.0 and r.grad_norm == 0.0 and not r.skipped for r in records)  # nothing to learn
    for before, p in zip(weights, f.network.parameters(), strict=True):
        assert torch.equal(before, p)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_an_update_of_many_rows_without_autograd_sets_the_backward_passs_gradient_to_rounding(dtype, torch_threads):
    # _direct_gradients of 70 windows (gru_rows): the loss and every weight's gradient of the backward
    # pass through chunk_losses, to float32's or float64's rounding; padded windows (a series younger
    # than the window) and a loss other than the absolute one go the backward way. On two threads the same
    # bits (each chunk on one thread, the chunks' gradients added in their order)
    torch_threads(1)
    config = ForecasterConfig(k1=2, k2=6, hidden_size=8, hybrid=False, warmup_updates=0, normalize=False)
    net = Forecaster(config).network.to(dtype)
    eng = engine.TBPTTEngine(net, config)
    g = torch.Generator().manual_seed(1)
    rows, inputs = 70, net.cells[0].weight_ih.shape[1]
    start = torch.randn(rows, 1, 8, generator=g, dtype=dtype)  # [B, layers, H]
    x = torch.randn(6, rows, inputs, generator=g, dtype=dtype)  # [L, B, I]
    y, mask = torch.randn(6, rows, 1, generator=g, dtype=dtype), torch.rand(6, rows, 1, generator=g) > 0.2
    windows = (start, x, y, mask, torch.zeros(rows, dtype=torch.long), 2, None)
    with torch.enable_grad():
        loss, grads = eng._direct_gradients(*windows)
        eng._clear_grads()
        parts = eng.chunk_losses(*windows)
        for part in parts:
            part.backward()
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert abs(loss - float(sum(p.detach() for p in parts))) <= tol * abs(loss)
    assert set(grads) == set(eng.params)
    for param, grad in grads.items():
        assert grad.dtype == dtype and grad.shape == param.shape
        assert float((grad - param.grad).abs().max()) <= tol * max(1.0, float(param.grad.abs().max()))
    padded = torch.zeros(rows, dtype=torch.long)
    padded[0] = 2  # one window starts two steps late
    with torch.enable_grad():
        assert eng._direct_gradients(start, x, y, mask, padded, 2, None) is None
    torch_threads(2)
    with torch.enable_grad():
        two = eng._direct_gradients(*windows)
    assert two is not None and two[0] == loss
    assert all(torch.equal(two[1][param], grad) for param, grad in grads.items())
    torch_threads(1)
    eng.config = ForecasterConfig(k1=2, k2=6, hidden_size=8, hybrid=False, loss="mse")
    with torch.enable_grad():
        assert eng._direct_gradients(*windows) is None
