"""The TBPTT engine: replay a window from a detached state, backpropagate, clip, step.

This file holds the project's only ``.backward()`` (and the truncation probe's
``torch.autograd.grad``, which reads gradients of states and never touches the weights).
Everything about *which* windows to replay (stateful anchors, stateless samples) is decided by the caller; the engine
only knows the rule for one batch of windows aligned at their last step:

    loss = mean over windows i of  sum over the last m steps s of  L_s

(windows whose sum is not finite are left out of the mean, unless all are)

where ``L_s`` is the loss of ``predict(h_{s-1})`` against ``x_s``, and ``h`` starts
from a state that carries no gradient (the truncation). More than ``CHUNK_ROWS`` windows are
replayed a chunk of rows at a time, each chunk's share of the mean backpropagated on its
own (``chunk_losses``): the gradients add up in ``.grad`` to the same gradient, to rounding.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from tbptt_online import gru_rows
from tbptt_online.config import ForecasterConfig
from tbptt_online.gru_window import GRUWindowLoss, mean_loss_gradients
from tbptt_online.guards import SKIPPED_RUN, InstabilityGuard, _clone_state
from tbptt_online.losses import shift_mean, step_loss
from tbptt_online.network import RecurrentNetwork, State, few_rows_gru, many_rows_gru, states_before
from tbptt_online.results import UpdateRecord, UpdateStats

RECENT_RECORDS = 256
# An update over more windows than this replays them in chunks of this many (``chunk_losses``):
# measured on the CPU (GRU 64, 32 steps, forward and backward, one thread, 10,000 rows) 2,048
# rows took 668 ms, 1,024 747 ms, 4,096 704 ms and one pass over all 10,000 868 ms.
CHUNK_ROWS = 2048


def _rows(windows: tuple, rows: slice | torch.Tensor) -> tuple:
    """``window_sums``' arguments for the windows ``rows`` (a slice, or row indices [n]):
    start [B, ...] (or (h, c)) and active_from [B] along dim 0, x, y, mask and base [L, B, ...]
    along dim 1."""
    start, x, y, mask, active_from, loss_steps, base = windows
    start = tuple(t[rows] for t in start) if isinstance(start, tuple) else start[rows]
    base = None if base is None else base[:, rows]
    return start, x[:, rows], y[:, rows], mask[:, rows], active_from[rows], loss_steps, base


def _build_optimizer(params: list[nn.Parameter], config: ForecasterConfig) -> torch.optim.Optimizer:
    # fused: one kernel for all parameters instead of ~10 small ops each (the same
    # update; a third of the cost of a step of a small network on the CPU)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, fused=True)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, fused=True)
    return torch.optim.Adam(params, lr=config.lr, fused=True)


class ProbeWindows(NamedTuple):
    """Probe windows as the updates would score their last step t (``Forecaster.probe_windows``):
    start [B, layers, H] (or (h, c)): h_{t-K}, the state before each window; x [K - 1, B, i]: the
    inputs x_{t-K+1} .. x_{t-1}; y, mask [B, d]: the target of step t, whose loss ``L_t`` is
    that of ``predict(h_{t-1})``, plus base [B, d] (x_{t-1}) for the residual head of a
    network-only model, else None."""

    start: State
    x: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor
    base: torch.Tensor | None = None

    def rows(self, keep: torch.Tensor) -> ProbeWindows:
        """The windows of ``keep`` [B] bool only."""
        start = tuple(t[keep] for t in self.start) if isinstance(self.start, tuple) else self.start[keep]
        base = None if self.base is None else self.base[keep]
        return ProbeWindows(start, self.x[:, keep], self.y[keep], self.mask[keep], base)


def _detached(layers: list) -> list:
    """A state's layers (tensors, or (h, c) tuples) as constants: the gradient stops there."""
    return [tuple(t.detach() for t in s) if isinstance(s, tuple) else s.detach() for s in layers]


def _window_loss(network: Any, windows: ProbeWindows, loss: str, cut: int) -> tuple[torch.Tensor, list]:
    """The summed last-step loss of probe ``windows`` and the states h_{t-K} .. h_{t-1}, each
    layer's requiring the gradient; the state is taken as a constant after the first ``cut``
    inputs (the truncation at lag K_p - cut)."""
    layers = [tuple(t.detach().requires_grad_() for t in s) if isinstance(s, tuple) else s.detach().requires_grad_()
              for s in network.unstack(windows.start)]  # fmt: skip
    states = [layers]  # states[j]: h_{t-K+j}, per layer
    x = windows.x
    for j in range(x.shape[0]):
        if j == cut:
            layers = _detached(layers)  # the truncation: the value crosses, the gradient does not
        layers = network.step(x[j], layers)
        states.append(layers)
    if cut == x.shape[0]:
        layers = _detached(layers)
    pred = network.predict_top(network.top(layers))  # [B, p] the forecast of y_t from h_{t-1}
    if windows.base is not None:
        pred = shift_mean(pred, windows.base)  # the residual head: the change from x_{t-1}
    return step_loss(pred, windows.y, windows.mask, loss).sum(), states


def state_gradient_norms(
    network: Any,
    start: State,
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    loss: str,
    base: torch.Tensor | None = None,
) -> torch.Tensor:
    """The gradient's reach: ``|| dL_t / dh_{t-k} ||`` for k = 1 .. K per window, [K, B], of the
    windows ``ProbeWindows(start, x, y, mask, base)``. Row k - 1 is lag k (row K - 1: the
    start). The norm is over every layer's state (lstm: h and c together). ``network`` is
    anything with ``unstack`` / ``step`` / ``top`` / ``predict_top`` (a RecurrentNetwork, or a
    test's linear one). The weights' ``.grad`` are not touched: only the states are differentiated.
    """
    return probe_gradients(network, [], ProbeWindows(start, x, y, mask, base), loss)[0]


def probe_gradients(
    network: Any, params: list[torch.Tensor], windows: ProbeWindows, loss: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``state_gradient_norms`` [K, B] of ``windows`` and, from the same backward pass, the
    gradient of the windows' summed loss in ``params`` (flattened, float64: ``measured_bias``'s g)."""
    with torch.enable_grad():
        total, states = _window_loss(network, windows, loss, cut=-1)  # rows are independent
        flat = [t for layers in states for s in layers for t in (s if isinstance(s, tuple) else (s,))]
        batch = windows.y.shape[0]
        if not total.requires_grad:
            return torch.zeros(len(states), batch, dtype=torch.float64), _flat([None] * len(params), params)
        grads = torch.autograd.grad(total, [*flat, *params], allow_unused=True)
    per_state = len(flat) // len(states)
    squares = torch.stack(
        [
            sum((g.detach().double().pow(2).sum(1) if g is not None else torch.zeros(batch, dtype=torch.float64))
                for g in grads[j * per_state : (j + 1) * per_state])
            for j in range(len(states))
        ]
    )  # [K, B], row j: h_{t-K+j}  # fmt: skip
    return squares.sqrt().flip(0), _flat(grads[len(flat) :], params)  # row k - 1: lag k


def _flat(grads: Any, params: list[torch.Tensor]) -> torch.Tensor:
    """The gradients as one float64 vector (zeros for a weight the loss does not reach)."""
    parts = [
        (g if g is not None else torch.zeros_like(p)).detach().double().flatten()
        for g, p in zip(grads, params, strict=True)
    ]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def measured_bias(
    network: Any,
    params: list[torch.Tensor],
    windows: ProbeWindows,
    loss: str,
    window: int,
    full: torch.Tensor | None = None,
) -> float | None:
    """The relative truncation bias of ``window`` measured on probe ``windows`` (the quantity the
    paper's bound estimates, Aicher et al. 2019): ``|| g - g_K || / || g ||``, g the gradient
    in ``params`` of the windows' summed last-step loss through all their K_p steps and g_K
    through the last K = ``window`` only (the state at lag K a constant), both summed over the
    windows before the norms (the bias of the expected gradient, not of each window's).
    ``full``: g when already made (``probe_gradients``). None when K >= K_p (nothing of it can
    be measured within the probe) or g is zero or not finite. What lies beyond the probe's K_p
    steps is not in g: the bound (``truncation.relative_bias``) covers it with the fitted
    decay. ``.grad`` is not touched."""
    inputs = windows.x.shape[0]  # K_p - 1
    if window >= inputs + 1:
        return None
    if full is None:
        full = probe_gradients(network, params, windows, loss)[1]
    with torch.enable_grad():
        total, _ = _window_loss(network, windows, loss, cut=inputs - (window - 1))  # its last K steps
        grads = torch.autograd.grad(total, params, allow_unused=True) if total.requires_grad else [None] * len(params)
    size = float(full.norm())
    bias = float((full - _flat(grads, params)).norm()) / size if size > 0 else math.nan
    return bias if math.isfinite(bias) else None


def clip_coefficient(norm: torch.Tensor, clip_norm: float) -> float:
    """``torch.clamp(clip_norm / (norm + 1e-6), max=1.0)`` (``nn.utils.clip_grads_with_norm_``'s
    factor) for a 0-dim float ``norm``, as a Python float: the same operations on numpy scalars
    of the norm's dtype, each rounded as torch's is (the scalars taken in that dtype, ``x / t``
    being torch's ``t.reciprocal() * x``), so the same bits without four torch calls; the factor
    is a value of that dtype, which ``_foreach_mul_`` multiplies by as by the 0-dim tensor.

    >>> norm = torch.tensor(3.7, dtype=torch.float32)
    >>> clip_coefficient(norm, 1.0) == torch.clamp(1.0 / (norm + 1e-6), max=1.0).item()
    True
    """
    real = np.float32 if norm.dtype == torch.float32 else np.float64
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # inf and NaN as torch's, silently
        factor = real(clip_norm) * (real(1.0) / (real(norm.item()) + real(1e-6)))
    return float(factor) if not factor > 1.0 else 1.0  # (NaN stays NaN, as torch.clamp keeps it)


def _finite(p: torch.Tensor) -> bool:
    """Whether every element of ``p`` is finite (numpy's test on a view: a fifth of the time of
    ``torch.isfinite(...).all()``)."""
    return bool(np.isfinite(p.detach().numpy()).all())


def learned_nothing(loss: float, grad_norm: float) -> bool:
    """Whether an update had nothing to learn: its loss and gradient norm exactly 0 (every scored value
    missing, or every window that scored one left out as not finite). Such an update makes no optimizer
    step once the optimizer holds state, and neither counts in nor ends a run of skipped updates."""
    return loss == 0.0 and grad_norm == 0.0


class TBPTTEngine:
    """Owns the optimizer and the update counters of one network."""

    def __init__(self, network: RecurrentNetwork, config: ForecasterConfig) -> None:
        self.network = network
        self.config = config
        self.params = [p for p in network.parameters() if p.requires_grad]
        self.optimizer = _build_optimizer(self.params, config)
        self.attempts = 0
        self.skipped = 0
        self.recent: deque[UpdateRecord] = deque(maxlen=RECENT_RECORDS)
        self.guard = InstabilityGuard(self.params)
        self._undo_buffers: list[torch.Tensor] = []  # _snapshot's copies, and their shapes and dtypes
        self._undo_shapes: list[tuple[torch.Size, torch.dtype]] = []

    @property
    def updates(self) -> int:
        """Updates applied (not skipped as not finite): those that learned, and those with nothing to learn."""
        return self.attempts - self.skipped

    def stats(self) -> UpdateStats:
        last = self.recent[-1] if self.recent else None
        return UpdateStats(
            updates=self.updates,
            skipped=self.skipped,
            last_loss=None if last is None else last.loss,
            last_grad_norm=None if last is None else last.grad_norm,
            last_window=None if last is None else last.window,
            lr=self.config.lr * self.guard.lr_scale,
            **self.guard.counts,
        )

    def window_sums(
        self,
        start: State,
        x: torch.Tensor,
        y: torch.Tensor,
        mask: torch.Tensor,
        active_from: torch.Tensor,
        loss_steps: int,
        base: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Each window's summed loss [B] (differentiable in the weights only).

        start [B, layers, H] (or (h, c)): the state before each window's first value,
            already detached: the gradient stops here (the truncation).
        x [L, B, i]: the inputs fed; y, mask [L, B, d]: the targets the forecasts are
            scored against. Windows are aligned at their last step; row i is real from
            ``active_from[i]`` on and padding before (its state stays ``start`` there).
        loss_steps m: the losses of the last m steps of every window are summed.
        base [m, B, d]: added to the mean of those m forecasts (the residual head's last
            input before each scored value), or None.
        """
        net = self.network
        length, batch, d = y.shape
        if self._fused(start, x, active_from, loss_steps, d, base):  # the same sums in one autograd node
            return GRUWindowLoss.apply(*self._fused_arguments(start, x, y, mask, loss_steps, base))
        hidden = states_before(net, start, x, active_from, length - loss_steps)  # [m, B, H] h_{s-1} per scored s
        # One predict and one loss over all scored steps at once: [m * B, ...], step-major.
        pred = net.predict_top(hidden.reshape(loss_steps * batch, -1))  # [m * B, p]
        if base is not None:
            pred = shift_mean(pred, base.reshape(-1, d))
        targets = y[length - loss_steps :].reshape(-1, d)  # [m * B, d]
        observed = mask[length - loss_steps :].reshape(-1, d)
        losses = step_loss(pred, targets, observed, self.config.loss).view(loss_steps, batch)  # [m, B]
        return losses.sum(dim=0)  # [B] window sums

    def _fused(
        self,
        start: State,
        x: torch.Tensor,
        active_from: torch.Tensor,
        loss_steps: int,
        d: int,
        base: Any,
        many: bool = False,
    ) -> bool:
        """Whether ``window_sums`` runs as one ``GRUWindowLoss``: a replay that takes the
        compiled GRU window (``network.few_rows_gru``), the absolute loss of a point forecast
        (the head's width d), and no scored state the window's start (m < L). ``many``: the
        same asked of a replay of many rows (``network.many_rows_gru``), which ``gru_rows``
        can take."""
        net = self.network
        return (
            self.config.loss == "absolute"
            and net.head.out_features == d
            and not (base is not None and base.requires_grad)  # (GRUWindowLoss gives no input a gradient)
            and 0 < loss_steps < x.shape[0]
            and (many_rows_gru if many else few_rows_gru)(net, x, start, active_from)
        )

    def _fused_weights(self) -> tuple[nn.Parameter, ...]:
        """The six weights the fused window reads: the GRU cell's four, then the head's two."""
        cell, head = self.network.cells[0], self.network.head
        return cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh, head.weight, head.bias

    def _fused_arguments(
        self, start: State, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, loss_steps: int, base: Any
    ) -> tuple:
        """The arguments of ``GRUWindowLoss.apply`` and ``gru_window.mean_loss_gradients`` for a
        replay (``window_sums``' arguments): x_0 .. x_{L-2}, the start, the six weights, the base,
        and the targets and mask of the last m steps."""
        length = y.shape[0]
        scored = slice(length - loss_steps, length)
        return x[: length - 1], start[:, 0], *self._fused_weights(), base, y[scored], mask[scored]

    def _direct_gradients(
        self,
        start: State,
        x: torch.Tensor,
        y: torch.Tensor,
        mask: torch.Tensor,
        active_from: torch.Tensor,
        loss_steps: int,
        base: torch.Tensor | None,
    ) -> tuple[float, dict[nn.Parameter, torch.Tensor]] | None:
        """Where ``window_sums`` takes ``GRUWindowLoss`` (``_fused``) and every window's sum is
        finite, the update's loss (``window_loss``: the sums' mean) and the gradients its
        backward pass would leave in ``.grad``, per weight (the GRU's four and the head's two;
        the others get none, as from the backward: the loss does not reach them), computed by
        the node's kernels without building a graph (``gru_window.mean_loss_gradients``: the
        same bits). The same for a replay of many rows that could take the node but for their
        number (``_fused(..., many=True)``): ``gru_rows.mean_loss_gradients``, the same
        function without autograd, to rounding (its docstring). None elsewhere: the update goes
        through ``chunk_losses`` and ``.backward()`` (a window whose sum is not finite is handled
        there). A weight with a hook (``register_hook``: torch keeps them in ``_backward_hooks``,
        ``_post_accumulate_grad_hooks``) goes that way too, which calls them."""
        d = y.shape[2]
        if self._fused(start, x, active_from, loss_steps, d, base):
            gradients = mean_loss_gradients  # few rows: gru_window's kernels
        elif self._fused(start, x, active_from, loss_steps, d, base, many=True):
            gradients = gru_rows.mean_loss_gradients
        else:
            return None
        weights = self._fused_weights()
        if any(w._backward_hooks or getattr(w, "_post_accumulate_grad_hooks", None) for w in weights):
            return None
        # only the engine's own six trainable leaves, each once (a frozen, parametrised or tied weight:
        # the gradient would land where .backward() puts none, or miss the tensors it trains)
        if {id(w) for w in weights} != {id(p) for p in self.params} or len({id(w) for w in weights}) != len(weights):
            return None
        arguments = self._fused_arguments(start, x, y, mask, loss_steps, base)
        sums, loss, grads = gradients(*arguments)  # [B], scalar, six gradients
        if not np.isfinite(sums.numpy()).all():  # (numpy: a few rows without torch's per-call cost)
            return None
        return float(loss), dict(zip(weights, grads, strict=True))

    def window_loss(self, *windows: Any) -> torch.Tensor:
        """The scalar loss of a batch of windows (``window_sums``' arguments): their mean.
        A window whose sum is not finite (a series with values past what the network's dtype
        holds) is left out, so it cannot cost the other series their update; all of them
        non-finite: the mean is NaN and the update is skipped."""
        sums = self.window_sums(*windows)
        finite = torch.isfinite(sums.detach())
        if bool(finite.all()) or not bool(finite.any()):
            return sums.mean()
        return self._finite_sums(windows, finite, torch.arange(len(finite))).mean()

    def _finite_sums(self, windows: tuple, finite: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The sums [n] of the windows ``rows`` [B'] whose sums were ``finite`` [B'], replayed
        again without the others: behind a ``where`` their overflowed steps would still give
        the weights NaN gradients (a zero times an infinite derivative, e.g. the gaussian
        loss's variance), and cost every series its update."""
        return self.window_sums(*_rows(windows, rows[finite]))

    def chunk_losses(self, *windows: Any) -> list[torch.Tensor]:
        """The loss of ``window_loss`` as scalars that add up to it, one per chunk of at most
        ``CHUNK_ROWS`` windows (one chunk: exactly ``window_loss``). Backpropagated one at a
        time, each chunk's forward and backward work on arrays that fit the CPU's caches: at
        10,000 series an update is a quarter faster than one pass over all rows, the gradient
        the same sum (to rounding: the chunks' gradients are added). Non-finite windows are
        left out as in ``window_loss``: a chunk of them only, and those of a chunk with finite
        ones, whose finite windows are replayed alone."""
        batch = windows[2].shape[1]  # y [L, B, d]
        if batch <= CHUNK_ROWS:
            return [self.window_loss(*windows)]
        bounds = [(i, min(i + CHUNK_ROWS, batch)) for i in range(0, batch, CHUNK_ROWS)]  # each chunk's rows
        sums = [self.window_sums(*_rows(windows, slice(lo, hi))) for lo, hi in bounds]
        finite = [torch.isfinite(s.detach()) for s in sums]
        count = sum(int(f.sum()) for f in finite)
        if count == 0:
            return [torch.cat(sums).mean()]  # NaN or inf: the update is skipped
        parts = []
        for (lo, hi), chunk_sums, chunk_finite in zip(bounds, sums, finite, strict=True):
            if bool(chunk_finite.all()):
                parts.append(chunk_sums.sum() / count)
            elif bool(chunk_finite.any()):  # as in window_loss: the finite windows replayed alone
                parts.append(self._finite_sums(windows, chunk_finite, torch.arange(lo, hi)).sum() / count)
        return parts

    def replay_update(
        self,
        start: State,
        x: torch.Tensor,
        y: torch.Tensor,
        mask: torch.Tensor,
        active_from: torch.Tensor,
        loss_steps: int,
        base: torch.Tensor | None = None,
        window: int | None = None,
        settled: bool = True,
    ) -> UpdateRecord:
        """One update: loss of the windows, backward, clip, optimizer step.

        A non-finite loss, gradient norm or resulting weight skips the update and
        leaves weights and optimizer state exactly as they were. With ``config.guards``
        a gradient far above its running median is clipped to that median, and a loss
        trending up rolls the weights back (see guards.py). ``window``: the length of
        the replayed windows, recorded (default: x's length). ``settled``: False for an
        update of a series still in its warm-up, whose loss is not a steady level to
        compare later losses with (the guards' loss blocks leave it out).
        """
        self.attempts += 1
        self._clear_grads()
        guards = self.config.guards
        windows = (start, x, y, mask, active_from, loss_steps, base)
        exploded = False
        with torch.enable_grad():
            direct = self._direct_gradients(*windows)
            if direct is None:
                parts = self.chunk_losses(*windows)  # they add up to the loss
                loss_value = float(sum(part.detach() for part in parts))
            else:
                loss_value = direct[0]
            grad_norm = math.nan
            ok = math.isfinite(loss_value)
            if ok:
                if direct is None:
                    for part in parts:
                        part.backward()  # the only backward pass of the project: the chunks' gradients add up in .grad
                else:
                    for param, grad in direct[1].items():
                        param.grad = grad  # what the backward would leave (``_direct_gradients``)
                grads = [p.grad for p in self.params if p.grad is not None]  # the whole gradient: clipped once
                grad_norm = float(self._clip(grads)) if grads else 0.0
                ok = math.isfinite(grad_norm)
                if ok and guards and grad_norm > self.guard.explosion_limit():
                    exploded = True  # clip harder: to the running median of the accepted norms
                    applied = min(grad_norm, self.config.clip_norm or math.inf)  # the norm after clipping
                    with torch.no_grad():
                        torch._foreach_mul_(grads, min(1.0, self.guard.median_norm() / applied))
        # an update with nothing to learn, its loss and gradient exactly 0 (every scored value missing, or
        # every window with one left out as not finite), makes no optimizer step once the optimizer holds
        # state: Adam's momentum alone moved the weights (a 200-value outage of a trained series, 25 such
        # updates, 5.7 % of their norm, more than 40 values of learning; session 49). The gradient says it,
        # not the mask: a first version read the mask of every window, and a peer's windows left out as not
        # finite (a raw-value MSE network, values of 3e25) still let Adam step on momentum (a review's)
        if ok and (not learned_nothing(loss_value, grad_norm) or not self.optimizer.state):
            ok = self._guarded_step()
        self._clear_grads()
        if not ok:
            self.skipped += 1
        elif guards:
            observed = y[-loss_steps:].detach().numpy()[mask[-loss_steps:].numpy()]  # (numpy: the same values)
            target_range = float(np.abs(observed).max()) if observed.size else 0.0
            scored = observed.size > 0  # (none: every value of the scored steps missing, the loss 0)
            if self.guard.accepted(grad_norm, loss_value / loss_steps, target_range, exploded, settled, scored):
                self.rollback()
            elif self.guard.healthy():
                self.keep_good()
        used = x.shape[0] if window is None else window
        record = UpdateRecord(self.attempts, loss_value, grad_norm, x.shape[1], skipped=not ok, window=used)
        self.recent.append(record)
        if guards and not ok and self._skipped_run() == SKIPPED_RUN and self._good_copy_computes(windows):
            self.rollback()  # the weights no longer compute a finite update, the good copy does: back to it
        return record

    def _good_copy_computes(self, windows: tuple[Any, ...]) -> bool:
        """Whether the guard's good copy of the weights computes a finite loss of ``windows`` (the update's
        ``start, x, y, mask, active_from, loss_steps, base``): where it does not either, the data are what
        no weights compute (a stretch of values whose squares pass float32's range, a review's case: a
        network on raw values, MSE, values times 1e25), and a roll-back would only throw learning away.
        The weights are put back as they were."""
        current = [p.detach().clone() for p in self.params]
        try:
            self._set_params(self.guard.good["params"])
            with torch.no_grad():
                loss = float(sum(part.detach() for part in self.chunk_losses(*windows)))
        finally:
            self._set_params(current)
        return math.isfinite(loss)

    def _set_params(self, values: list[torch.Tensor]) -> None:
        """The weights set to ``values`` (one tensor per parameter, in order), in place."""
        with torch.no_grad():
            torch._foreach_copy_(self.params, values)

    def _skipped_run(self) -> int:
        """How many of the last updates were skipped with no update that learned between them (one that
        scored nothing, loss and gradient 0, neither counts nor ends the run: the hostile test's restarted
        series alternated such updates with the skipped ones), at most ``SKIPPED_RUN`` + 1: from the
        records, so that a restored engine goes on alike."""
        run = 0
        for record in reversed(self.recent):
            if run > SKIPPED_RUN:
                break
            if record.skipped:
                run += 1
            elif not learned_nothing(record.loss, record.grad_norm):
                break
        return run

    def _clear_grads(self) -> None:
        """``optimizer.zero_grad(set_to_none=True)`` without its wrapper (torch's dynamo guard
        around it cost 0.1 ms a call, a twentieth of a one-series update)."""
        for p in self.params:
            p.grad = None

    # -- the guards' answers ----------------------------------------------------------
    def keep_good(self) -> None:
        """Keep the current weights and optimizer state as the last good copy."""
        self.guard.keep_good(self.params, _clone_state(self.optimizer.state_dict()["state"]), self.attempts)

    def rollback(self) -> None:
        """Weights and optimizer state back to the last good copy; the learning rate backs off."""
        good = self.guard.good
        self._set_params(good["params"])
        groups = self.optimizer.state_dict()["param_groups"]
        self._load_optimizer({"state": _clone_state(good["optimizer"]), "param_groups": groups})
        self.guard.after_rollback()
        self._set_lr()

    def reset_learning_rate(self) -> None:
        """Undo the guards' back-offs: the configured learning rate again."""
        self.guard.lr_scale = 1.0
        self._set_lr()

    def _set_lr(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * self.guard.lr_scale

    def _load_optimizer(self, state: dict[str, Any]) -> None:
        fused = [group["fused"] for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(state)
        for group, flag in zip(self.optimizer.param_groups, fused, strict=True):
            group["fused"] = flag  # the implementation is this engine's, not the saver's

    def _guarded_step(self) -> bool:
        """Step, and undo it if any weight became non-finite (weights never hold NaN)."""
        layout = self._snapshot()
        self._step()
        if all(_finite(p) for p in self.params):
            return True
        self._undo(layout)
        return False

    def _step(self) -> None:
        """``optimizer.step()``. For Adam and AdamW (fused, as built here) once every weight has
        its state: the two calls its fused path makes (the steps counted, the fused kernel),
        without the Python around them that gathers the same lists and groups them by device
        and dtype, a tenth of a one-series update (the same kernel on the same tensors: the
        same bits, tested). Anything else: the optimizer's own ``step``."""
        opt = self.optimizer
        group = opt.param_groups[0]
        fast = (
            type(opt) in (torch.optim.Adam, torch.optim.AdamW)
            and len(opt.param_groups) == 1
            and group["fused"]
            and not (group["amsgrad"] or group["capturable"] or group["differentiable"])
            and isinstance(group["lr"], float)
            and len(opt.state) == len(self.params)
            and all(p.grad is not None for p in self.params)
            and len({p.dtype for p in self.params}) == 1
        )
        if not fast:
            opt.step()
            return
        states = [opt.state[p] for p in self.params]
        steps = [state["step"] for state in states]
        beta1, beta2 = group["betas"]
        kernel = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
        with torch.no_grad():
            torch._foreach_add_(steps, 1)
            kernel(
                self.params,
                [p.grad for p in self.params],
                [state["exp_avg"] for state in states],
                [state["exp_avg_sq"] for state in states],
                [],
                steps,
                amsgrad=False,
                lr=group["lr"],
                beta1=beta1,
                beta2=beta2,
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=group["maximize"],
                grad_scale=None,
                found_inf=None,
            )

    def _snapshot(self) -> list[tuple[Any, list[tuple[str, Any]]]]:
        """Copy the weights and the optimizer's tensors into buffers kept from step to step (the
        copy a failed step is undone from: no allocation on the steps that succeed), and return
        the optimizer state's layout, per weight its entries (None where a tensor was copied)."""
        live = [p.detach() for p in self.params]
        layout = []
        for param, state in self.optimizer.state.items():
            entries = []
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    live.append(value)
                    value = None
                entries.append((key, value))
            layout.append((param, entries))
        shapes = [(t.shape, t.dtype) for t in live]
        if shapes != self._undo_shapes:
            self._undo_buffers, self._undo_shapes = [torch.empty_like(t) for t in live], shapes
        with torch.no_grad():
            torch._foreach_copy_(self._undo_buffers, live)
        return layout

    def _undo(self, layout: list[tuple[Any, list[tuple[str, Any]]]]) -> None:
        """Weights and optimizer state back to the ``_snapshot`` taken before the step (the
        state's entries rebuilt: a first step had none)."""
        saved = iter(self._undo_buffers)
        with torch.no_grad():
            for p in self.params:
                p.copy_(next(saved))
        restored = {
            param: {key: next(saved).clone() if value is None else value for key, value in entries}
            for param, entries in layout
        }
        self.optimizer.state.clear()  # a defaultdict: clear + update keeps its type
        self.optimizer.state.update(restored)

    def _clip(self, grads: list[torch.Tensor]) -> torch.Tensor:
        """The gradient's total 2-norm, and with ``clip_norm`` the gradients scaled in place to
        at most that norm: ``nn.utils.clip_grad_norm_`` (``get_total_norm`` without clipping),
        the same operations in the same order, without its grouping of the tensors by device
        and dtype (a tenth of a one-series update) when they share one dtype, as a network's do."""
        if len({g.dtype for g in grads}) > 1:
            if self.config.clip_norm is None:
                return nn.utils.get_total_norm(grads)
            return nn.utils.clip_grad_norm_(self.params, self.config.clip_norm, error_if_nonfinite=False)
        with torch.no_grad():
            norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
            if self.config.clip_norm is not None:
                torch._foreach_mul_(grads, clip_coefficient(norm, self.config.clip_norm))
        return norm

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "attempts": self.attempts,
            "skipped": self.skipped,
            "recent": [[r.index, r.loss, r.grad_norm, r.n_windows, r.skipped, r.window] for r in self.recent],
            "guard": self.guard.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._load_optimizer(state["optimizer"])
        self.attempts = int(state["attempts"])
        self.skipped = int(state["skipped"])
        self.recent.clear()
        for index, loss, grad_norm, n_windows, skipped, window in state["recent"]:
            self.recent.append(
                UpdateRecord(int(index), float(loss), float(grad_norm), int(n_windows), bool(skipped), int(window))
            )
        self.guard.load_state_dict(state["guard"])
