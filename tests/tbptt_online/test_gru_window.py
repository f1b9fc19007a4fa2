"""gru_window: the compiled replay of a few rows, and its fusion with the head and the absolute
loss (GRUWindowLoss), against the same computation in torch's ops and autograd."""

from __future__ import annotations

import pytest
import torch

from tbptt_online import gru_window


def torch_window_sums(x, h0, weights, base, y, mask):
    """Each window's summed absolute loss [B] over its last m states, in torch's ops (as
    engine.window_sums computes it for a GRU of one layer and a linear head)."""
    w_ih, w_hh, b_ih, b_hh, head_w, head_b = weights
    h, states = h0, []
    for t in range(x.shape[0]):
        h = torch.gru_cell(x[t], h, w_ih, w_hh, b_ih, b_hh)
        states.append(h)
    m, _, d = y.shape
    forecast = torch.nn.functional.linear(torch.stack(states)[-m:], head_w, head_b)  # [m, B, d]
    if base is not None:
        forecast = forecast + base
    error = torch.where(mask, torch.where(mask, y, forecast.detach()) - forecast, 0.0)
    return (error.abs().sum(dim=2) / d).sum(dim=0)


def case(rows, length, m, d, with_base, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden, inputs = 6, 3

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    weights = [rand(3 * hidden, inputs), rand(3 * hidden, hidden), rand(3 * hidden), rand(3 * hidden)]
    weights += [rand(d, hidden), rand(d)]
    weights = [w.mul(0.5).requires_grad_() for w in weights]
    mask = torch.rand(m, rows, d, generator=g) > 0.25
    y = torch.where(mask, rand(m, rows, d), torch.nan)  # a missing target is NaN: never read
    base = rand(m, rows, d) if with_base else None
    return rand(length, rows, inputs), rand(rows, hidden), weights, base, y, mask


@pytest.mark.parametrize(("rows", "length", "m", "d"), [(1, 31, 8, 1), (3, 6, 6, 2), (2, 5, 1, 1)])
@pytest.mark.parametrize("with_base", [False, True])
def test_fused_loss_and_gradient_equal_torch_ops(rows, length, m, d, with_base):
    x, h0, weights, base, y, mask = case(rows, length, m, d, with_base, torch.float64)
    upstream = torch.tensor([0.5, -2.0, 1.0][:rows], dtype=torch.float64)  # each window's weight in the loss
    fused = gru_window.GRUWindowLoss.apply(x, h0, *weights, base, y, mask)
    expected = torch_window_sums(x, h0, weights, base, y, mask)
    assert torch.allclose(fused, expected, rtol=0, atol=1e-12)
    got = torch.autograd.grad((fused * upstream).sum(), weights)
    want = torch.autograd.grad((expected * upstream).sum(), weights)
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_fused_loss_in_float32_returns_float32_within_its_rounding():
    x, h0, weights, base, y, mask = case(2, 12, 4, 1, True, torch.float32)
    fused = gru_window.GRUWindowLoss.apply(x, h0, *weights, base, y, mask)
    assert fused.dtype == torch.float32
    got = torch.autograd.grad(fused.sum(), weights)
    expected = torch_window_sums(x, h0, weights, base, y, mask)
    want = torch.autograd.grad(expected.sum(), weights)
    assert torch.allclose(fused, expected, rtol=1e-5, atol=1e-5)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == torch.float32 and torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_an_exact_hit_and_a_missing_target_give_no_gradient():
    # |y - forecast| at y == forecast: torch's abs has the slope sgn(0) = 0 there; a missing
    # target scores nothing. With the head's weights zero the forecast is its bias exactly.
    x, h0, weights, _, _, _ = case(1, 4, 1, 1, False, torch.float64)
    with torch.no_grad():
        weights[4].zero_()
    bias = weights[5].detach().view(1, 1, 1)
    for y, observed in ((bias.clone(), True), (torch.full((1, 1, 1), torch.nan, dtype=torch.float64), False)):
        mask = torch.full((1, 1, 1), observed)
        fused = gru_window.GRUWindowLoss.apply(x, h0, *weights, None, y, mask)
        assert fused.tolist() == [0.0]
        assert all(g.abs().max().item() == 0.0 for g in torch.autograd.grad(fused.sum(), weights))
        expected = torch_window_sums(x, h0, weights, None, y, mask)
        assert all(g.abs().max().item() == 0.0 for g in torch.autograd.grad(expected.sum(), weights))


def test_a_float32_forecast_within_half_an_ulp_of_a_large_base_is_a_hit_as_in_torch():
    # A flat series at 1000 (unnormalised, residual head): predict(h) = 1e-6 is under half an ulp
    # of 1000 in float32, so torch's forecast 1000 + 1e-6 is 1000 exactly, the error 0 and the
    # gradient 0. Summed in float64 without rounding, the kernel's slope was +-1 (a step each update).
    x, h0, weights, _, _, _ = case(1, 5, 2, 1, False, torch.float32)
    with torch.no_grad():
        weights[4].zero_()
        weights[5].fill_(1e-6)
    base = torch.full((2, 1, 1), 1000.0)
    y, mask = base.clone(), torch.ones(2, 1, 1, dtype=torch.bool)
    fused = gru_window.GRUWindowLoss.apply(x, h0, *weights, base, y, mask)
    expected = torch_window_sums(x, h0, weights, base, y, mask)
    assert fused.tolist() == expected.tolist() == [0.0]
    assert all(g.abs().max().item() == 0.0 for g in torch.autograd.grad(fused.sum(), weights))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("rows", "with_base"), [(1, False), (1, True), (3, True)])
def test_mean_loss_gradients_are_the_bits_of_the_nodes_mean_backward(rows, with_base, dtype):
    # the engine's update of few rows takes the node's kernels without autograd: the sums, their
    # mean and the six gradients must be what GRUWindowLoss.apply(...).mean().backward() leaves
    x, h0, weights, base, y, mask = case(rows, 9, 4, 2, with_base, dtype, seed=3)
    sums, loss, grads = gru_window.mean_loss_gradients(x, h0, *weights, base, y, mask)
    node = gru_window.GRUWindowLoss.apply(x, h0, *weights, base, y, mask)
    node.mean().backward()
    assert torch.equal(sums, node.detach()) and torch.equal(loss, node.detach().mean())
    assert loss.dtype == dtype and not loss.requires_grad
    for got, weight in zip(grads, weights, strict=True):
        assert got.dtype == dtype and torch.equal(got, weight.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rows", [1, 3])
def test_one_compiled_step_is_the_windows_first_state_and_torchs_cell_to_rounding(rows, dtype):
    # a tick of few rows advances through gru_window.step: forward_kernel over a window of one
    # step, the same bits as a longer window's first state, torch's GRU cell to rounding
    x, h0, weights, _, _, _ = case(rows, 4, 1, 1, False, dtype, seed=5)
    cell = weights[:4]
    with torch.no_grad():
        got = gru_window.step(x[0], h0, tuple(cell))
        window_first = gru_window._run(x, h0, tuple(cell))[0][0]
        torchs = torch.gru_cell(x[0], h0, *cell)
    assert got.dtype == dtype and got.shape == (rows, 6)
    assert torch.equal(got, window_first)
    assert torch.allclose(got, torchs, rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-14)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_compiled_head_is_the_losses_forecast_and_torchs_linear_to_rounding(dtype):
    # gru_window.head sums as head_loss_kernel does: with y = 0 and a mask of ones, a window's
    # loss is |forecast|, so the head's forecast of the window's last state has the loss's bits
    x, h0, weights, _, _, _ = case(2, 3, 1, 2, False, dtype, seed=6)
    with torch.no_grad():
        states = gru_window._run(x, h0, tuple(weights[:4]))[0]  # [L, B, H]
        got = gru_window.head(states[-1], weights[4], weights[5])  # [B, d]
        sums = gru_window.GRUWindowLoss.apply(  # scoring the state after the window's last input
            x, h0, *weights, None, torch.zeros(1, 2, 2, dtype=dtype), torch.ones(1, 2, 2, dtype=torch.bool)
        )
        linear = torch.nn.functional.linear(states[-1], weights[4], weights[5])
    assert got.dtype == dtype
    assert torch.equal(got.abs().sum(dim=1) / 2, sums)  # d = 2: the loss is the mean over features
    assert torch.allclose(got, linear, rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-14)
