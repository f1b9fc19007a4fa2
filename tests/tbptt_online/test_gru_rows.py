"""gru_rows: an update's replay of many rows without autograd, against the same loss's mean and its
gradients through torch's ops and autograd (float64: to 1e-12; float32: to its rounding)."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch
from numba import njit

from tbptt_online import gru_rows
from tests.tbptt_online.test_gru_window import case, torch_window_sums


def torch_mean_and_gradients(x, h0, weights, base, y, mask):
    """The windows' mean summed loss and its gradients in the six weights, through autograd."""
    loss = torch_window_sums(x, h0, weights, base, y, mask).mean()
    return loss.detach(), torch.autograd.grad(loss, weights)


@pytest.mark.parametrize(("rows", "length", "m", "d", "chunk"), [(1, 31, 8, 1, 1), (23, 9, 3, 2, 5), (40, 5, 4, 1, 40)])
@pytest.mark.parametrize("with_base", [False, True])
def test_mean_loss_and_gradients_equal_torchs_autograd(
    rows, length, m, d, chunk, with_base, monkeypatch, torch_threads
):
    # chunks of 5 rows for 23 (the last one of 3), one chunk of 40, and one row (one thread: CHUNK_ROWS a chunk)
    torch_threads(1)
    monkeypatch.setattr(gru_rows, "CHUNK_ROWS", chunk)
    chunks = []

    def counted(x, *args, original=gru_rows._chunk):
        chunks.append(x.shape[1])
        return original(x, *args)

    monkeypatch.setattr(gru_rows, "_chunk", counted)
    x, h0, weights, base, y, mask = case(rows, length, m, d, with_base, torch.float64)
    sums, mean, grads = gru_rows.mean_loss_gradients(x, h0, *weights, base, y, mask)
    assert chunks == [chunk] * (rows // chunk) + ([rows % chunk] if rows % chunk else [])
    want_sums = torch_window_sums(x, h0, weights, base, y, mask)
    want_mean, want_grads = torch_mean_and_gradients(x, h0, weights, base, y, mask)
    assert sums.dtype == torch.float64 and sums.shape == (rows,)
    assert torch.allclose(sums, want_sums.detach(), rtol=0, atol=1e-12)
    assert abs(float(mean) - float(want_mean)) <= 1e-12
    for got, want, weight in zip(grads, want_grads, weights, strict=True):
        assert got.shape == weight.shape and not got.requires_grad
        assert torch.allclose(got, want, rtol=0, atol=1e-12)
    assert not any(w.grad is not None for w in weights)  # the weights' .grad untouched


def test_float32_gives_float32_within_its_rounding():
    x, h0, weights, base, y, mask = case(300, 31, 8, 1, False, torch.float32)
    sums, mean, grads = gru_rows.mean_loss_gradients(x, h0, *weights, base, y, mask)
    want_mean, want_grads = torch_mean_and_gradients(x, h0, weights, base, y, mask)
    assert sums.dtype == mean.dtype == torch.float32
    assert abs(float(mean) - float(want_mean)) <= 1e-5 * abs(float(want_mean))
    for got, want in zip(grads, want_grads, strict=True):
        assert got.dtype == torch.float32
        assert float((got - want).norm()) <= 1e-5 * float(want.norm())


@pytest.mark.parametrize(("dtype", "rows", "chunk"), [(torch.float64, 23, 5), (torch.float32, 300, 64)])
def test_two_threads_give_one_threads_bits(dtype, rows, chunk, monkeypatch, torch_threads):
    # on two threads each chunk runs on a pool thread with torch on one thread (its products the same
    # as on one), and the chunks' gradients are added in chunk order: the same bits as one thread
    monkeypatch.setattr(gru_rows, "CHUNK_ROWS", chunk)
    seen = []

    def counted(x, *args, original=gru_rows._chunk):
        seen.append((x.shape[1], threading.current_thread().name, torch.get_num_threads()))
        return original(x, *args)

    monkeypatch.setattr(gru_rows, "_chunk", counted)
    x, h0, weights, base, y, mask = case(rows, 9, 3, 1, True, dtype)
    torch_threads(1)
    one = gru_rows.mean_loss_gradients(x, h0, *weights, base, y, mask)
    assert all(name == threading.current_thread().name for _, name, _ in seen)
    seen.clear()
    torch_threads(2)
    two = gru_rows.mean_loss_gradients(x, h0, *weights, base, y, mask)
    assert torch.get_num_threads() == 2  # (the caller's setting as it was)
    sizes = [chunk] * (rows // chunk) + [rows % chunk]
    assert sorted(size for size, _, _ in seen) == sorted(sizes)
    assert all(name.startswith("tbptt-chunks") and threads == 1 for _, name, threads in seen)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])
    assert all(torch.equal(a, b) for a, b in zip(one[2], two[2], strict=True))


def test_missing_targets_give_no_loss_and_no_gradient():
    # every scored target missing (NaN where missing: never read): the loss 0 and every gradient exactly 0
    x, h0, weights, _, y, mask = case(30, 6, 2, 1, False, torch.float64)
    mask[:] = False
    y[:] = math.nan
    sums, mean, grads = gru_rows.mean_loss_gradients(x, h0, *weights, None, y, mask)
    assert float(mean) == 0.0 and torch.equal(sums, torch.zeros(30, dtype=torch.float64))
    assert all(torch.equal(g, torch.zeros_like(g)) for g in grads)


@njit
def _tanh_all(values, out):
    for i in range(values.size):
        out[i] = gru_rows.fast_tanh(values[i])


def test_fast_tanh_is_within_six_float32_ulps_and_exact_in_float64():
    grid = np.concatenate([np.linspace(-12, 12, 200_001), np.geomspace(1e-8, 12, 20_001)])
    values = np.concatenate([grid, -grid]).astype(np.float32)
    out = np.empty_like(values)
    _tanh_all(values, out)
    exact = np.tanh(values.astype(np.float64))
    ulps = np.abs(out - exact) / np.spacing(np.abs(exact).astype(np.float32))
    assert out.dtype == np.float32 and float(ulps.max()) <= 6.0  # 5.7 at -5.88
    special = np.array([np.nan, np.inf, -np.inf, 0.0, 20.0, -20.0], dtype=np.float32)
    got = np.empty_like(special)
    _tanh_all(special, got)
    assert math.isnan(got[0]) and list(got[1:]) == [1.0, -1.0, 0.0, 1.0, -1.0]
    wide = np.linspace(-9, 9, 1001)
    wide_out = np.empty_like(wide)
    _tanh_all(wide, wide_out)
    assert list(wide_out) == [math.tanh(v) for v in wide]  # float64: math.tanh itself
