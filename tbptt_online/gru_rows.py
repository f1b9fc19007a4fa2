"""A GRU window over many rows, forward and backward without autograd: an update of many series.

The update of 10,000 series replays a window of 32 steps for every one of them (``engine``).
Through torch's ops that is a loop of ``gru_cell`` calls, each recording its autograd nodes,
and a backward pass of some twenty small operations a step (the gate gradients, their
concatenation, the state's gradient, the weights' products step by step), with the cell's tanh
in MKL's high-accuracy form: 215-240 ms an update on one core, a quarter of the library's CPU at
10,000 series (session 60's profile). Here the same function and the same gradient in math,
with the rows of the batch as the columns of every array (a gate's values for a step: one
contiguous row per hidden unit, which the compiled loops read and write as vectors):

- the cell's four weights as one matrix (``augmented``, [4H, H + I + 1]) applied to the step's
  (h, x, 1): one product a step gives r's and z's pre-activations, ``W_hn h + b_hn`` and
  ``W_in x + b_in`` (torch's BLAS);
- the gates in one compiled pass over the step (``gates_forward``), kept for the backward;
- the head and the absolute loss of the scored steps as a few large operations;
- backward, per step one compiled pass (``gates_backward``: the gates' gradients, no
  transcendental) and one product with ``W_hh`` for the state's gradient;
- the weights' gradients as one product over all steps and rows ([4H, L C] x [L C, H + I + 1]:
  the four matrices and both biases at once).

The cell is torch's ``GRUCell`` (the formulas in ``gru_window``'s docstring). In float64 the
gates use ``math.tanh`` (``sigmoid(v) = (1 + tanh(v / 2)) / 2``); in float32 ``fast_tanh``, a
rational function within 6 float32 ulps of tanh that the compiler turns into vector
instructions, where a library call per element would not be (and torch's ``gru_cell`` calls
MKL's tanh, six times its sigmoid's cost). The sums run in another order than torch's: the
result differs from the ops' replay by float32 rounding (tested against autograd in float64).
Rows go ``CHUNK_ROWS`` at a time, into arrays reused by the next chunk; each chunk's weights'
gradients are its own, added up in chunk order at the end. On several torch threads the chunks
run on as many threads at once, each chunk on one (``one_thread``): the same bits as on one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
from numba.extending import overload

from tbptt_online import one_thread
from tbptt_online.compiled import compiled, unsigned

# Rows replayed at a time, a chunk on one thread: a chunk's arrays (products, gates, states: 270 KB a step,
# 8.4 MB a window of 31 steps at 256 rows of hidden 32) stay in the core's caches from the step that writes
# them to the one that reads them and to the weights' gradient product. Measured (one thread, 10,000 rows,
# 31 steps, an update's gradients, best of 4 alternated): 128 rows 150 ms, 192 140, 256 138, 384 148, 512
# 157, 1,024 159, 2,048 179, 4,096 214. On T threads the chunks go T at a time to threads of their own
# (``one_thread``), each with torch on one thread, and the same size whatever T: the same products, the
# same bits. (Chunks of 256 T rows whose products torch's threads shared lost on two threads to torch's
# own replay, session 61: the compiled passes and the Python of each step ran on one thread while the
# other waited at the end of every product)
CHUNK_ROWS = 256
# Fewer rows than this take the engine's other ways (gru_window's kernels up to its FEW_ROWS, torch's
# ops). Here from 9 rows on is faster than torch's ops (one thread, 31 steps: 9 rows 0.86 ms against
# 2.44, 64 rows 1.62 against 4.35, 65 rows 1.73 against 5.09, 1,000 rows 22 against 29), but up to
# network.SEQUENCE_OP_MAX_ROWS a replay is two Python calls through torch's sequence op where this is
# some 130, each one a release of the GIL that the service's other threads may hold on to: the
# service's updates of tens of series keep their measured way until a service benchmark says otherwise
MIN_ROWS = 65


def fast_tanh(v: float) -> float:
    """tanh(v): float64 as ``math.tanh``; float32 by the rational function of ``_rational_tanh``."""
    return math.tanh(v)


# Eigen's fast float tanh (``generic_fast_tanh_float``): an odd polynomial of degree 13 over an even
# one of degree 6 on [-7.9, 7.9] (beyond it tanh is +-1 in float32)
_CLAMP = 7.90531110763549805
_ALPHA = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08,
          -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16)  # fmt: skip
_BETA = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06)


@overload(fast_tanh, jit_options={"error_model": "numpy"}, inline="always")
def _fast_tanh(v):  # (numba's overload: v is a numba type, the implementation returned)
    if getattr(v, "bitwidth", 64) != 32:
        return lambda v: math.tanh(v)
    a1, a3, a5, a7, a9, a11, a13 = (np.float32(a) for a in _ALPHA)
    b0, b2, b4, b6 = (np.float32(b) for b in _BETA)
    clamp = np.float32(_CLAMP)

    def _rational_tanh(v):
        x = min(max(v, -clamp), clamp)  # (NaN stays NaN)
        x2 = x * x
        p = ((((((a13 * x2 + a11) * x2 + a9) * x2 + a7) * x2 + a5) * x2 + a3) * x2 + a1) * x
        q = ((b6 * x2 + b4) * x2 + b2) * x2 + b0
        return p / q

    return _rational_tanh


@compiled
def gates_forward(pre, gates, z_rows, t: int) -> None:
    """Step ``t`` of the cell for every column (row of the batch): ``pre`` [4H, L, C] holds the
    step's products (the augmented weights' rows: r's and z's pre-activations, W_hn h + b_hn,
    W_in x + b_in), ``z_rows`` [H + I + 1, L + 1, C] the state before the step in its first H
    rows; writes r, z, n into ``gates`` [3H, L, C] and the state after into ``z_rows``' step t + 1."""
    hidden, columns = gates.shape[0] // 3, gates.shape[2]
    half = pre.dtype.type(0.5)
    for j in range(hidden):
        jz, jh, ji = unsigned(hidden + j), unsigned(2 * hidden + j), unsigned(3 * hidden + j)
        for c in range(columns):
            r = half + half * fast_tanh(half * pre[j, t, c])  # sigmoid(v) = (1 + tanh(v / 2)) / 2
            z = half + half * fast_tanh(half * pre[jz, t, c])
            n = fast_tanh(pre[ji, t, c] + r * pre[jh, t, c])
            gates[j, t, c] = r
            gates[jz, t, c] = z
            gates[jh, t, c] = n
        # (a loop of its own: with the state's read and write in the loop above, which the compiler
        # cannot tell apart, nothing was vectorised, 0.8 ms a step of 2,048 rows instead of 0.08)
        for c in range(columns):
            n, z = gates[jh, t, c], gates[jz, t, c]
            z_rows[j, t + 1, c] = (z_rows[j, t, c] - n) * z + n


@compiled
def gates_backward(pre, gates, z_rows, dh, own, t: int) -> None:
    """Step ``t``'s backward for every column: from ``dh`` [H, C], the gradient of the state
    after the step (plus ``own`` [H, C], the step's own from the head, where it has one: a
    [0, 0] array for none), with ``gates`` (r, z, n), ``pre`` (W_hn h + b_hn in rows 2H .. 3H)
    and ``z_rows`` (the state before) as ``gates_forward`` left them. Overwrites ``pre``'s step
    with the gradients of the products (dr, dz, dn r, dn: the augmented weights' rows) and
    ``dh`` with ``d z``, the state's gradient but for the product with W_hh (the caller's)."""
    hidden, columns = dh.shape
    one = dh.dtype.type(1.0)
    mine = own.shape[0] > 0
    for j in range(hidden):
        jz, jh, ji = unsigned(hidden + j), unsigned(2 * hidden + j), unsigned(3 * hidden + j)
        for c in range(columns):
            r, z, n = gates[j, t, c], gates[jz, t, c], gates[jh, t, c]
            d = dh[j, c] + own[j, c] if mine else dh[j, c]
            dn = d * (one - z) * (one - n * n)
            dz = d * (z_rows[j, t, c] - n) * z * (one - z)
            dr = dn * pre[jh, t, c] * r * (one - r)
            pre[j, t, c] = dr
            pre[jz, t, c] = dz
            pre[jh, t, c] = dn * r
            pre[ji, t, c] = dn
            dh[j, c] = d * z


def augmented(w_ih, w_hh, b_ih, b_hh) -> torch.Tensor:
    """The cell's weights as one matrix [4H, H + I + 1] applied to (h, x, 1): rows r and z
    (W_h, W_i, b_i + b_h), n's hidden part (W_hn, 0, b_hn) and its input part (0, W_in, b_in)."""
    three, inputs = w_ih.shape
    hidden = three // 3
    a = w_ih.new_zeros(4 * hidden, hidden + inputs + 1)
    rz = slice(0, 2 * hidden)
    a[rz, :hidden], a[rz, hidden:-1], a[rz, -1] = w_hh[rz], w_ih[rz], b_ih[rz] + b_hh[rz]
    n = slice(2 * hidden, 3 * hidden)
    a[n, :hidden], a[n, -1] = w_hh[n], b_hh[n]
    a[3 * hidden :, hidden:-1], a[3 * hidden :, -1] = w_ih[n], b_ih[n]
    return a


def _gradients(da: torch.Tensor, hidden: int) -> tuple[torch.Tensor, ...]:
    """The four cell weights' gradients (w_ih, w_hh, b_ih, b_hh) from the augmented matrix's
    ``da`` [4H, H + I + 1] (``augmented``'s layout)."""
    rz, ni = slice(0, 2 * hidden), slice(3 * hidden, 4 * hidden)  # r's and z's rows, n's input part's
    w_ih = torch.cat([da[rz, hidden:-1], da[ni, hidden:-1]])
    b_ih = torch.cat([da[rz, -1], da[ni, -1]])
    return w_ih, da[: 3 * hidden, :hidden].contiguous(), b_ih, da[: 3 * hidden, -1].contiguous()  # (copies)


def _chunk(x, h0, a, w_hh, head_w, head_b, base, y, mask, scale, grads, buffers) -> torch.Tensor:
    """One chunk's window (C rows): forward, loss, backward. Adds the gradients of ``scale``
    times the chunk's summed loss into ``grads`` (the augmented matrix's, transposed: [H + I + 1, 4H];
    head_w's, head_b's; in place) and returns each row's summed loss [C]. x [L, C, I] the inputs
    fed, h0 [C, H] the detached start (the truncation: no gradient flows into it), ``a`` the
    augmented weights, base, y, mask [m, C, d]; ``buffers`` (pre, gates, z_rows) flat, of at
    least 4H L C, 3H L C and (H + I + 1) (L + 1) C elements."""
    length, rows, inputs = x.shape
    hidden, steps, d = h0.shape[1], y.shape[0], y.shape[2]
    width = hidden + inputs + 1
    pre = buffers[0][: 4 * hidden * length * rows].view(4 * hidden, length, rows)
    gates = buffers[1][: 3 * hidden * length * rows].view(3 * hidden, length, rows)
    z_rows = buffers[2][: width * (length + 1) * rows].view(width, length + 1, rows)  # (h, x, 1) of each step
    z_rows[:hidden, 0] = h0.t()
    z_rows[hidden:-1, :length] = x.permute(2, 0, 1)  # [I, L, C]
    z_rows[-1] = 1.0
    pre_a, gates_a, z_a = pre.numpy(), gates.numpy(), z_rows.numpy()
    products, inputs_of = pre.unbind(1), z_rows.unbind(1)  # each step's [4H, C] and [H + I + 1, C] (views)
    for t in range(length):
        torch.mm(a, inputs_of[t], out=products[t])  # the step's products, biases included
        gates_forward(pre_a, gates_a, z_a, t)
    # the head and the absolute loss of the last m states (those that forecast the scored values)
    scored = z_rows[:hidden, length + 1 - steps :].reshape(hidden, steps * rows)  # [H, m C]
    pred = torch.addmm(head_b[:, None], head_w, scored).view(d, steps, rows).permute(1, 2, 0)  # [m, C, d]
    if base is not None:
        pred = pred + base  # the residual head: the change from the last input
    error = torch.where(mask, y - pred, 0.0)  # [m, C, d]; a missing value: no error, no gradient
    sums = (error.abs().sum(dim=2) / d).sum(dim=0)  # [C] each window's summed loss
    slope = error.sign_().mul_(-scale / d).permute(2, 0, 1).reshape(d, steps * rows)  # d loss / d pred [d, m C]
    grads[1].addmm_(slope, scored.t())  # d head_w [d, H]
    grads[2].add_(slope.sum(dim=1))  # d head_b [d]
    own = (head_w.t() @ slope).view(hidden, steps, rows).transpose(0, 1).contiguous().numpy()  # [m, H, C]
    dh = torch.zeros(hidden, rows, dtype=h0.dtype)  # [H, C] d loss / d state after the step
    dh_a, none = dh.numpy(), np.zeros((0, 0), dtype=pre_a.dtype)
    w_back, hidden_grads = w_hh.t(), pre[: 3 * hidden].unbind(1)  # [H, 3H]; each step's [3H, C] (views)
    for t in range(length - 1, -1, -1):
        s = t - (length - steps)  # the scored step whose forecast the state after step t makes
        gates_backward(pre_a, gates_a, z_a, dh_a, own[s] if s >= 0 else none, t)
        if t > 0:  # (at t = 0 the start is a constant: the truncation)
            dh.addmm_(w_back, hidden_grads[t])  # dh = d z + W_hh^T (dr, dz, dn r)  [H, C]
    # every step and row in one product: rows r, z and n's hidden part against (h, x, 1), n's input
    # part against (x, 1) only (its block against h is zero in ``augmented`` and never read); the
    # transposed gradient [H + I + 1, 4H] (the products this way round: 0.82 ms a chunk against 1.08)
    flat_z = z_rows.view(width, (length + 1) * rows)[:, : length * rows]  # [H + I + 1, L C]
    flat_pre = pre.view(4 * hidden, length * rows)
    grads[0][:, : 3 * hidden].addmm_(flat_z, flat_pre[: 3 * hidden].t())  # [H + I + 1, 3H]
    grads[0][hidden:, 3 * hidden :].addmm_(flat_z[hidden:], flat_pre[3 * hidden :].t())  # [I + 1, H]
    return sums


def mean_loss_gradients(
    x, h0, w_ih, w_hh, b_ih, b_hh, head_w, head_b, base, y, mask
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """What ``gru_window.mean_loss_gradients`` computes (the same arguments: x [L, B, I] the
    inputs fed, h0 [B, H] the window's start, the GRU cell's four weights and the head's two,
    base or None, y, mask [m, B, d]), for many rows: the window sums [B] (the weights' dtype),
    their mean, and the six weights' gradients of the mean (the weights' dtype). The same
    function, summed in another order (the module docstring). Every argument is read without
    its graph (the weights' values; x and h0 carry no gradient). The same bits on any number of
    torch threads: each chunk runs on one thread, its gradients added to the others' in chunk order."""
    w_ih, w_hh, b_ih, b_hh, head_w, head_b = (w.detach() for w in (w_ih, w_hh, b_ih, b_hh, head_w, head_b))
    x, h0 = x.detach(), h0.detach()  # (h0 is the truncation's constant start)
    length, batch, inputs = x.shape
    hidden, dtype = h0.shape[1], head_w.dtype
    real = np.float32 if dtype == torch.float32 else np.float64
    scale = float(real(1.0) / real(batch))  # d mean / d sum, as torch's mean gives it back
    a = augmented(w_ih, w_hh, b_ih, b_hh)  # [4H, H + I + 1]
    rows = min(batch, CHUNK_ROWS)
    parts = [slice(lo, min(lo + rows, batch)) for lo in range(0, batch, rows)]
    # each chunk's gradients, its own (a's transposed [H + I + 1, 4H], head_w's, head_b's), added up below
    chunk_grads = tuple(w.new_zeros(len(parts), *shape) for w, shape in ((a, a.t().shape), (head_w, head_w.shape),
                                                                          (head_b, head_b.shape)))  # fmt: skip
    sums = torch.empty(batch, dtype=dtype)
    sizes = (4 * hidden * length * rows, 3 * hidden * length * rows, (hidden + inputs + 1) * (length + 1) * rows)

    def run(chunks: Iterable[int]) -> None:
        buffers = tuple(torch.empty(size, dtype=dtype) for size in sizes)  # (pre, gates, z_rows: _chunk's, reused)
        for i in chunks:
            part = parts[i]
            chunk_base = None if base is None else base[:, part].detach()
            sums[part] = _chunk(x[:, part], h0[part], a, w_hh, head_w, head_b, chunk_base, y[:, part].detach(),
                                mask[:, part], scale, tuple(g[i] for g in chunk_grads), buffers)  # fmt: skip

    one_thread.run_chunks(len(parts), run)
    grads = tuple(g[0].clone() for g in chunk_grads)
    for i in range(1, len(parts)):  # (in chunk order, whichever thread ran a chunk: the same bits)
        for total, g in zip(grads, chunk_grads, strict=True):
            total.add_(g[i])
    return sums, sums.mean(), (*_gradients(grads[0].t(), hidden), grads[1], grads[2])


def warm(dtype: torch.dtype = torch.float32) -> None:
    """Compile (or load) the kernels for a network of ``dtype``: an update of one row of two
    steps (for ``warm.warm_kernels``)."""
    w = torch.zeros(3, 1, dtype=dtype)
    b = torch.zeros(3, dtype=dtype)
    y, mask = torch.zeros(1, 1, 1, dtype=dtype), torch.ones(1, 1, 1, dtype=torch.bool)
    mean_loss_gradients(torch.zeros(2, 1, 1, dtype=dtype), torch.zeros(1, 1, dtype=dtype), w, w, b, b,
                        torch.zeros(1, 1, dtype=dtype), torch.zeros(1, dtype=dtype), None, y, mask)  # fmt: skip
