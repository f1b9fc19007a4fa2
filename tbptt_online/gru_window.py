"""A GRU run over a window of few rows, forward and backward compiled: the replay of an update
of one series (or a few) without autograd's per-operation cost.

A replay of one series' 32 steps through ``torch.gru`` records some 20 autograd nodes per
step; at one row each costs microseconds of bookkeeping around nanoseconds of arithmetic,
so the backward pass took 3 ms of the 5.6 ms of an update (issue 10's single-series p99).
Here the same function is one ``torch.autograd.Function``: ``forward`` runs the cell over the
window in a compiled kernel and keeps its gates; ``backward`` runs the textbook GRU
backward (below) over the window in another, and returns the weights' gradients. The engine's
``.backward()`` reaches it like any other node. ``network.states_before`` takes it for
windows of at most ``FEW_ROWS`` rows without padding, one GRU layer, nothing asking for
the gradient of the inputs or of the window's first state (which is detached: the
truncation); everything else goes through torch's ops. The oracle tests run through it
(the default cell).

``GRUWindowLoss`` goes one step further for the default loss: the linear head and the
absolute loss of the scored steps run in the same node (``head_loss_kernel`` after the
window's forward, ``head_backward_kernel`` before its backward), so a one-series update's
replay is one autograd node instead of a dozen (the head's product, the residual's shift,
the loss's ``where``s, ``abs``, sums and mean): in an update's context its loss 0.47 ->
0.41 ms and its backward 0.45 -> 0.36 ms (``engine.window_sums`` takes it where the
compiled window applies, the loss is ``absolute`` and the head a point forecast).

``mean_loss_gradients`` is that node's forward and backward of the windows' mean loss called
straight, without a graph: an update of few rows (``engine.TBPTTEngine._direct_gradients``)
takes its gradients from it, the same bits as the node's ``.backward()`` (tested), without
autograd's own cost around one node (a graph, the backward engine, the gradients' buffers).

``step`` and ``head`` are the forward kernel over a window of one step and the head's sums on
their own: a tick of few rows advances the carried state through ``step``, and every forecast
read without a graph goes through ``head`` (``network.RecurrentNetwork.advance`` and ``predict``),
without torch's cell and linear ops.

The cell, as torch's ``GRUCell`` (gates in the weights' row blocks r, z, n):

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (h - n) * z + n

and its backward from dh' (the step's own gradient plus what flows back from the next):
``dn = dh' (1 - z) (1 - n^2)``, ``dz = dh' (h - n) z (1 - z)``, ``dr = dn (W_hn h + b_hn)
r (1 - r)``; the input projection's gradient is ``(dr, dz, dn)``, the hidden one's ``(dr,
dz, dn * r)``; ``dh = dh' z + W_hh^T (dr, dz, dn * r)``; the weights' gradients are the
products of those with x and h summed over steps and rows. Sums run in float64 and in a
fixed order (inner loops over independent outputs: no reassociation), so a replay gives the
same bits every time; they differ from torch's kernels' float32 sums by rounding.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tbptt_online.compiled import compiled, inlined

# Up to this many rows a window replays here; more go through torch's ops. Measured (one thread, GRU
# 64, float32, 31 steps, forward and backward with a head and an absolute loss): 1 row 0.45 ms here
# against 2.66 ms through torch.gru, 4 rows 0.98 against 2.98, 16 rows 3.52 against 3.62, 64 rows
# 14.4 against 6.5 (the kernels' loops are per row; torch's matrix products share the rows)
FEW_ROWS = 8


@compiled
def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


@compiled
def forward_kernel(x, h0, w_ih, w_hh, b_ih, b_hh, out, gates) -> None:
    """``out`` [L, B, H]: the state after each step of ``x`` [L, B, I] from ``h0`` [B, H];
    ``gates`` [L, B, 5, H]: r, z, n, ``W_hn h + b_hn`` and the state before each step (in
    float64, as the kernel carries it), for the backward. ``w_ih`` [3H, I], ``w_hh`` [3H, H],
    ``b_ih``, ``b_hh`` [3H]: the cell's weights as the network holds them (float32 or 64:
    each element widened to float64 exactly where it is used)."""
    length, rows, inputs = x.shape
    hidden = h0.shape[1]
    w_ih_t = np.ascontiguousarray(w_ih.T)  # [I, 3H], [H, 3H]: contiguous rows for the inner loops
    w_hh_t = np.ascontiguousarray(w_hh.T)
    gi = np.empty(3 * hidden)
    gh = np.empty(3 * hidden)
    h = np.empty(hidden)
    for b in range(rows):
        for j in range(hidden):
            h[j] = h0[b, j]
        for t in range(length):
            for i in range(3 * hidden):
                gi[i] = np.float64(b_ih[i])
                gh[i] = np.float64(b_hh[i])
            for j in range(inputs):
                v = np.float64(x[t, b, j])
                for i in range(3 * hidden):
                    gi[i] += v * w_ih_t[j, i]
            for j in range(hidden):
                v = h[j]
                for i in range(3 * hidden):
                    gh[i] += v * w_hh_t[j, i]
            for j in range(hidden):
                r = _sigmoid(gi[j] + gh[j])
                z = _sigmoid(gi[hidden + j] + gh[hidden + j])
                n = math.tanh(gi[2 * hidden + j] + r * gh[2 * hidden + j])
                gates[t, b, 0, j] = r
                gates[t, b, 1, j] = z
                gates[t, b, 2, j] = n
                gates[t, b, 3, j] = gh[2 * hidden + j]
                gates[t, b, 4, j] = h[j]
                h[j] = (h[j] - n) * z + n
                out[t, b, j] = h[j]


@compiled
def backward_kernel(x, gates, grad_out, w_hh, d_w_ih, d_w_hh, d_b_ih, d_b_hh) -> None:
    """The weights' gradients (added into ``d_w_ih`` [3H, I], ``d_w_hh`` [3H, H], ``d_b_ih``,
    ``d_b_hh`` [3H], float64) of a loss whose gradient with respect to the states ``out`` [L,
    B, H] is ``grad_out``; ``w_hh`` [3H, H] float64; ``x`` and ``gates`` as ``forward_kernel``
    had and left them."""
    length, rows, inputs = x.shape
    hidden = w_hh.shape[1]
    dh = np.empty(hidden)
    back = np.empty(hidden)
    gi = np.empty(3 * hidden)
    gh = np.empty(3 * hidden)
    for b in range(rows):
        dh[:] = 0.0
        for t in range(length - 1, -1, -1):
            for j in range(hidden):
                r, z, n = gates[t, b, 0, j], gates[t, b, 1, j], gates[t, b, 2, j]
                hn, before = gates[t, b, 3, j], gates[t, b, 4, j]  # W_hn h + b_hn, the state before
                d = dh[j] + np.float64(grad_out[t, b, j])
                dn = d * (1.0 - z) * (1.0 - n * n)
                dz = d * (before - n) * z * (1.0 - z)
                dr = dn * hn * r * (1.0 - r)
                gi[j], gi[hidden + j], gi[2 * hidden + j] = dr, dz, dn
                gh[j], gh[hidden + j], gh[2 * hidden + j] = dr, dz, dn * r
                back[j] = d * z
            for i in range(3 * hidden):  # dh = dh' z + W_hh^T gh
                g = gh[i]
                for j in range(hidden):
                    back[j] += g * w_hh[i, j]
            for i in range(3 * hidden):
                g, g_in = gh[i], gi[i]
                d_b_ih[i] += g_in
                d_b_hh[i] += g
                for j in range(inputs):
                    d_w_ih[i, j] += g_in * np.float64(x[t, b, j])
                for j in range(hidden):
                    d_w_hh[i, j] += g * gates[t, b, 4, j]
            for j in range(hidden):
                dh[j] = back[j]


@inlined
def _held(v: float, single: bool) -> float:
    """``v`` as the network's dtype holds it (float32 where ``single``), widened back."""
    return np.float64(np.float32(v)) if single else v


@compiled
def head_loss_kernel(out, head_w, head_b, base, has_base, y, mask, single, slope, sums) -> None:
    """The linear head and the absolute loss over the last m states of ``out`` [L, B, H]: the
    forecast of scored step s (s = 0 .. m - 1) is ``head_w`` [d, H] @ h + ``head_b`` [d] (+
    ``base`` [m, B, d] float64 where ``has_base``), h = ``out[L - m + s]``; its loss the sum
    over the observed features (``mask`` [m, B, d]) of |y - forecast| (``y`` [m, B, d]
    float64), over d. ``sums`` [B] float64: each window's summed loss; ``slope`` [m, B, d]
    float64: d loss / d forecast, -sign(y - forecast) / d where observed (0 at an exact hit,
    as torch's ``abs``), 0 where missing. ``single``: a float32 network, whose forecast, its
    shift by the base and its error are rounded to float32 as torch's ops round them (an error
    that is exactly 0 there, a forecast within half an ulp of a large base, gives no gradient
    here either); the sums run in float64."""
    steps, rows, d = y.shape
    first = out.shape[0] - steps
    hidden = out.shape[2]
    for b in range(rows):
        total = 0.0
        for s in range(steps):
            step = 0.0
            for k in range(d):
                slope[s, b, k] = 0.0
                if not mask[s, b, k]:
                    continue
                forecast = np.float64(head_b[k])
                for j in range(hidden):
                    forecast += np.float64(head_w[k, j]) * np.float64(out[first + s, b, j])
                forecast = _held(forecast, single)
                if has_base:
                    forecast = _held(forecast + base[s, b, k], single)
                error = _held(y[s, b, k] - forecast, single)
                step += abs(error)
                slope[s, b, k] = -np.sign(error) / d
            total += step / d
        sums[b] = total


@compiled
def head_backward_kernel(out, head_w, slope, grad_sums, grad_out, d_head_w, d_head_b) -> None:
    """From each window sum's gradient ``grad_sums`` [B] float64: the head's gradients (added
    into ``d_head_w`` [d, H], ``d_head_b`` [d], float64) and the scored states' (added into
    ``grad_out`` [L, B, H] float64, rows L - m .. L - 1), ``slope`` as ``head_loss_kernel``
    left it."""
    steps, rows, d = slope.shape
    first = out.shape[0] - steps
    hidden = out.shape[2]
    for b in range(rows):
        g = grad_sums[b]
        for s in range(steps):
            for k in range(d):
                dp = g * slope[s, b, k]  # d loss / d forecast
                if dp == 0.0:
                    continue
                d_head_b[k] += dp
                for j in range(hidden):
                    d_head_w[k, j] += dp * np.float64(out[first + s, b, j])
                    grad_out[first + s, b, j] += dp * np.float64(head_w[k, j])


@compiled
def head_kernel(h, head_w, head_b, single, pred) -> None:
    """The linear head on states ``h`` [B, H]: ``pred`` [B, p] = ``head_w`` [p, H] @ h +
    ``head_b`` [p], summed in float64 in ``head_loss_kernel``'s order and rounded to float32
    where ``single`` (as the loss computes a window's forecasts)."""
    rows, hidden = h.shape
    for b in range(rows):
        for k in range(head_w.shape[0]):
            forecast = np.float64(head_b[k])
            for j in range(hidden):
                forecast += np.float64(head_w[k, j]) * np.float64(h[b, j])
            pred[b, k] = _held(forecast, single)


def step(x: torch.Tensor, h: torch.Tensor, weights: tuple) -> torch.Tensor:
    """One step of the cell for a few rows, without autograd: the next state [B, H] (the
    weights' dtype) from ``x`` [B, I] and ``h`` [B, H]. ``forward_kernel`` over a window of
    one step (its sums in float64, rounded once to the weights' dtype), so a one-series tick
    makes no dozen torch calls of microseconds each around a few thousand multiply-adds."""
    arrays = [w.detach().numpy() for w in weights]
    out, _ = _forward_arrays(x.detach().contiguous().numpy()[None], h.detach().contiguous().numpy(), arrays)
    return torch.from_numpy(out[0])  # [B, H] (the gates, the backward's, are not kept)


def head(h: torch.Tensor, head_w: torch.Tensor, head_b: torch.Tensor) -> torch.Tensor:
    """The linear head on states ``h`` [B, H], without autograd: [B, p] in the head's dtype
    (``head_kernel``: each row's sums alone, so a row's forecast is the same bits in any batch)."""
    w = head_w.detach()
    pred = torch.empty(h.shape[0], w.shape[0], dtype=w.dtype)
    single = w.dtype == torch.float32
    head_kernel(h.detach().contiguous().numpy(), w.numpy(), head_b.detach().numpy(), single, pred.numpy())
    return pred


def _forward_arrays(xs: np.ndarray, h: np.ndarray, weights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``forward_kernel`` into buffers of its own: the states after each step [L, B, H] (x's
    dtype) and the gates [L, B, 5, H] (float64)."""
    length, rows, _ = xs.shape
    out = np.empty((length, rows, h.shape[1]), dtype=xs.dtype)
    gates = np.empty((length, rows, 5, h.shape[1]))
    forward_kernel(xs, h, *weights, out, gates)
    return out, gates


def _weight_gradient_arrays(xs: np.ndarray, gates: np.ndarray, grad_out: np.ndarray, w_hh: np.ndarray) -> tuple:
    """``backward_kernel`` into zeroed float64 buffers: the four cell weights' gradients."""
    three, hidden = w_hh.shape
    grads = (np.zeros((three, xs.shape[2])), np.zeros((three, hidden)), np.zeros(three), np.zeros(three))
    backward_kernel(xs, gates, grad_out, w_hh, *grads)
    return grads


def _run(x: torch.Tensor, h0: torch.Tensor, weights: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The forward kernel on detached, contiguous tensors: the states after each step [L, B, H]
    (x's dtype), the gates [L, B, 5, H] (float64), and the x it read (for ``_weight_grads``)."""
    x = x.detach().contiguous()  # read by both kernels
    w = [t.detach().contiguous().numpy() for t in weights]  # the weights themselves (no copy)
    out, gates = _forward_arrays(x.numpy(), h0.detach().contiguous().numpy(), w)
    return torch.from_numpy(out), torch.from_numpy(gates), x


def _weight_grads(x: torch.Tensor, gates: torch.Tensor, grad_out: torch.Tensor, w_hh: torch.Tensor) -> tuple:
    """The four cell weights' gradients (in w_hh's dtype) from the states' gradient
    ``grad_out`` [L, B, H] (any float dtype)."""
    grads = _weight_gradient_arrays(x.numpy(), gates.numpy(), grad_out.detach().contiguous().numpy(), w_hh.numpy())
    return tuple(torch.from_numpy(g).to(w_hh.dtype) for g in grads)


class GRUWindow(torch.autograd.Function):
    """``apply(x, h0, w_ih, w_hh, b_ih, b_hh)``: the state after each step [L, B, H] of the
    window ``x`` [L, B, I] from ``h0`` [B, H] (the module docstring). Differentiable in the
    four weights only."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh):  # type: ignore[override]
        out, gates, x = _run(x, h0, (w_ih, w_hh, b_ih, b_hh))
        # W_hh: autograd refuses the backward if a step changed it since
        ctx.save_for_backward(x, gates, w_hh.detach().contiguous())
        return out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        x, gates, w_hh = ctx.saved_tensors
        return None, None, *_weight_grads(x, gates, grad_out, w_hh)


def _loss_arrays(xs, h, weights, head_w, head_b, base, targets, observed) -> tuple[np.ndarray, tuple]:
    """``GRUWindowLoss``'s forward on numpy arrays (``base`` None or float64, ``targets``
    float64): each window's summed loss [B] in float64, and what its backward reads
    (``_gradient_arrays``)."""
    out, gates = _forward_arrays(xs, h, weights)  # [L, B, H]
    wide = np.empty((0, 0, 0)) if base is None else base
    slope, sums = np.empty(targets.shape), np.empty(xs.shape[1])  # [m, B, d], [B]
    single = out.dtype == np.float32
    head_loss_kernel(out, head_w, head_b, wide, base is not None, targets, observed, single, slope, sums)
    return sums, (xs, gates, weights[1], out, head_w, slope)


def _gradient_arrays(saved: tuple, grad_sums: np.ndarray) -> tuple:
    """The six weights' gradients in float64 (w_ih, w_hh, b_ih, b_hh, head_w, head_b) from each
    window sum's float64 gradient ``grad_sums`` [B], ``saved`` as ``_loss_arrays`` left it."""
    xs, gates, w_hh, out, head_w, slope = saved
    grad_out = np.zeros(out.shape)  # [L, B, H] zero but at the scored states
    d_head_w, d_head_b = np.zeros(head_w.shape), np.zeros(head_w.shape[0])
    head_backward_kernel(out, head_w, slope, grad_sums, grad_out, d_head_w, d_head_b)
    return *_weight_gradient_arrays(xs, gates, grad_out, w_hh), d_head_w, d_head_b


def _arrays(*tensors: torch.Tensor | None) -> list[np.ndarray | None]:
    """Detached, contiguous numpy arrays of ``tensors`` (views where they already are; None stays)."""
    return [None if t is None else np.ascontiguousarray(t.detach().numpy()) for t in tensors]


def _loss_forward(x, h0, weights: tuple, head_w, head_b, base, y, mask) -> tuple[torch.Tensor, tuple]:
    """``GRUWindowLoss``'s forward on detached tensors: each window's summed loss [B] in
    float64, and what its backward reads (``_loss_backward``), as tensors for autograd to keep
    (the weights' own: it refuses the backward if a step changed them since)."""
    weights, head_w = [t.detach().contiguous() for t in weights], head_w.detach().contiguous()
    xs, h, hb, wide, targets = _arrays(x, h0, head_b, None if base is None else base.double(), y.double())
    sums, saved = _loss_arrays(xs, h, [w.numpy() for w in weights], head_w.numpy(), hb, wide, targets, _arrays(mask)[0])
    xs, gates, _, out, _, slope = (torch.from_numpy(a) for a in saved)  # (the weights' arrays: their tensors kept)
    return torch.from_numpy(sums), (xs, gates, weights[1], out, head_w, slope)


def _loss_backward(saved: tuple, grad_sums: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The six weights' gradients (w_ih, w_hh, b_ih, b_hh, head_w, head_b; in the weights'
    dtype) from each window sum's gradient ``grad_sums`` [B] (any float dtype)."""
    arrays = tuple(t.numpy() for t in saved)
    grads = _gradient_arrays(arrays, grad_sums.detach().double().contiguous().numpy())
    return tuple(torch.from_numpy(g).to(saved[4].dtype) for g in grads)


class GRUWindowLoss(torch.autograd.Function):
    """``apply(x, h0, w_ih, w_hh, b_ih, b_hh, head_w, head_b, base, y, mask)``: each window's
    summed absolute loss [B] over its last m steps (``head_loss_kernel``): the GRU window,
    the linear head and the loss in one node. x [L, B, I] the inputs x_0 .. x_{L-1} (the
    state after x_{L-1} is the last one scored), h0 [B, H]; head_w [d, H], head_b [d]; base
    (or None), y, mask [m, B, d], m <= L. Differentiable in the six weights only."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, head_w, head_b, base, y, mask):  # type: ignore[override]
        sums, saved = _loss_forward(x, h0, (w_ih, w_hh, b_ih, b_hh), head_w, head_b, base, y, mask)
        ctx.save_for_backward(*saved)
        return sums.to(head_w.dtype)

    @staticmethod
    def backward(ctx, grad_sums):  # type: ignore[override]
        return None, None, *_loss_backward(ctx.saved_tensors, grad_sums), None, None, None


def mean_loss_gradients(
    x, h0, w_ih, w_hh, b_ih, b_hh, head_w, head_b, base, y, mask
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """What ``GRUWindowLoss.apply(...).mean().backward()`` computes (the same arguments),
    without autograd: the window sums [B] (the weights' dtype), their mean, and the six
    weights' gradients of the mean, the same bits (the mean's gradient 1 / B in the
    weights' dtype, as torch's mean gives it back). The engine's update of few rows takes
    this instead of a graph of one node: no graph, no backward engine. The node's kernels on
    numpy arrays throughout (its buffers allocated by numpy, the tensors converted once): the
    two dozen torch allocations and conversions around them cost as much as the kernels."""
    xs, h, *weights, hw, hb = _arrays(x, h0, w_ih, w_hh, b_ih, b_hh, head_w, head_b)
    wide, targets, observed = _arrays(None if base is None else base.double(), y.double(), mask)
    wide_sums, saved = _loss_arrays(xs, h, weights, hw, hb, wide, targets, observed)
    sums = torch.from_numpy(wide_sums.astype(hw.dtype))  # [B] (float64 -> float32 rounds as torch's .to)
    # d mean / d sums, as MeanBackward makes it: 1 / B in the weights' dtype (a correctly rounded division)
    rows = len(wide_sums)
    grad_sums = np.full(rows, hw.dtype.type(1.0) / hw.dtype.type(rows), dtype=hw.dtype).astype(np.float64)
    grads = _gradient_arrays(saved, grad_sums)
    return sums, sums.mean(), tuple(torch.from_numpy(g.astype(hw.dtype, copy=False)) for g in grads)


def warm(dtype: torch.dtype = torch.float32) -> None:
    """Compile (or load) the kernels for a network of ``dtype``: one step of one row of zeros,
    as ``GRUWindow`` and ``GRUWindowLoss`` call them (for ``warm.warm_kernels``; no autograd)."""
    x = np.zeros((1, 1, 1), dtype=torch.empty(0, dtype=dtype).numpy().dtype)
    h0 = np.zeros((1, 1), dtype=x.dtype)
    w, b = np.zeros((3, 1), dtype=x.dtype), np.zeros(3, dtype=x.dtype)
    gates, wide = np.zeros((1, 1, 5, 1)), np.zeros((1, 1, 1))
    out = np.zeros((1, 1, 1), dtype=x.dtype)
    forward_kernel(x, h0, w, w, b, b, out, gates)
    for grad_out in (np.zeros((1, 1, 1), dtype=x.dtype), wide):  # GRUWindow's, GRUWindowLoss's
        backward_kernel(x, gates, grad_out, w, np.zeros((3, 1)), np.zeros((3, 1)), np.zeros(3), np.zeros(3))
    head_w, head_b, mask = np.zeros((1, 1), dtype=x.dtype), np.zeros(1, dtype=x.dtype), np.ones((1, 1, 1), np.bool_)
    head_loss_kernel(
        out, head_w, head_b, wide, True, wide, mask, x.dtype == np.float32, np.zeros((1, 1, 1)), np.zeros(1)
    )
    head_backward_kernel(out, head_w, np.zeros((1, 1, 1)), np.zeros(1), wide, np.zeros((1, 1)), np.zeros(1))
    head_kernel(out[0], head_w, head_b, x.dtype == np.float32, np.zeros((1, 1), dtype=x.dtype))
