"""An independent oracle of the TBPTT(k1, k2) update rule and of live serving.

It shares nothing with the library's window logic, losses or stores: it keeps every
series' inputs and every live state ĥ_s in plain Python lists, rebuilds each
truncated window itself and differentiates it with ``torch.autograd.grad``. Only
the network's one-step ``advance`` / ``predict`` (the model's definition, not the
training rule) are reused, on a private deep copy of the initial weights.

The rule (issue 2, warm-up from issue 10, K_t from issue 12): at step t of a series with
t % k1 == 0 or t <= W (the warm-up), K_t the update's window (k2, or the adaptive choice,
which the caller sets in ``window``), m_t = the steps since the series' previous update
(at most K_t),

    g_t = ∇θ  Σ_{s = t-m_t+1 .. t}  L_s(θ_t ; h_{t-K_t} = stopgrad(ĥ_{t-K_t}))   (h_0 if t <= K_t)

series due at the same tick share one step on the mean of their window sums. With the
hybrid (issue 10) the inputs x_s and the targets differ: they are data the library makes
before the network sees them (the experts' features and error), and the oracle takes
them as given (``tick(..., given=...)``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

MIN_VARIANCE = 1e-6


# -- values -------------------------------------------------------------------------
def parse_row(value: Any, d: int) -> list[float]:
    """A value as d floats, NaN where missing (None, NaN, or a None feature)."""
    if value is None:
        return [math.nan] * d
    items = [value] if isinstance(value, int | float) else list(value)
    assert len(items) == d
    return [math.nan if v is None else float(v) for v in items]


def direct_scale(observed: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std of ``observed`` computed directly (std 1 while n < 2 or 0)."""
    n = len(observed)
    if n == 0:
        return 0.0, 1.0
    mean = sum(observed) / n
    if n < 2:
        return mean, 1.0
    var = sum((v - mean) ** 2 for v in observed) / (n - 1)
    return mean, math.sqrt(var) if var > 0 else 1.0


# -- the loss, written out per feature ------------------------------------------------
def oracle_step_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """L_s for one row: pred [1, p], target [d] (NaN = missing) -> a scalar.

    gaussian: 0.5 * (log var + (x - mu)^2 / var), var = softplus(raw) + 1e-6;
    mse: (x - mu)^2; the sum over observed features divided by d (missing ones add 0).
    ``target`` may require grad (the cut-off test differentiates w.r.t. the values).
    """
    d = target.shape[0]
    total = pred.new_zeros(())
    for i in range(d):
        if bool(torch.isnan(target[i])):
            continue
        x, mu = target[i], pred[0, i]
        if kind == "gaussian":
            var = torch.logaddexp(pred[0, d + i], pred.new_zeros(())) + MIN_VARIANCE  # exact softplus
            total = total + 0.5 * (torch.log(var) + (x - mu) ** 2 / var)
        elif kind == "absolute":
            total = total + torch.abs(x - mu)
        else:
            total = total + (x - mu) ** 2
    return total / d


def detach_state(state: Any) -> Any:
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def truncated_window_loss(
    network: torch.nn.Module,
    start: Any,
    inputs: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
    m: int,
    kind: str,
    bases: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Σ of the last m step losses of a window: h starts at ``start`` (taken as is:
    the caller decides whether it is detached); ``inputs`` x_s [1, d] are what the
    live forward consumed, ``targets`` [d] what L_s is scored against (NaN = missing);
    ``bases`` [1, d] per position: the residual head's x_{s-1}, added to the mean."""
    h = start
    total = inputs[0].new_zeros(())
    n = len(inputs)
    for j, (x, target) in enumerate(zip(inputs, targets, strict=True)):
        if j >= n - m:
            pred = network.predict(h)
            if bases is not None:
                d = target.shape[0]
                pred = torch.cat([pred[:, :d] + bases[j], pred[:, d:]], dim=1)
            total = total + oracle_step_loss(pred, target, kind)
        h = network.advance(x, h)
    return total


def previous_inputs(inputs: Sequence[torch.Tensor], lo: int, hi: int) -> list[torch.Tensor]:
    """x_{s-1} for the window inputs[lo:hi] (x_0 = 0: nothing came before the first value)."""
    before = inputs[lo - 1] if lo >= 1 else torch.zeros_like(inputs[0])
    return [before, *inputs[lo : hi - 1]]


def max_abs_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert pa.keys() == pb.keys()
    return max(float((pa[k].detach() - pb[k].detach()).abs().max()) for k in pa)


def sgd_step(network: torch.nn.Module, loss: torch.Tensor, lr: float) -> tuple[float, float]:
    """θ -= lr * ∇θ loss; returns (loss, gradient norm)."""
    params = list(network.parameters())
    if loss.requires_grad:
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]
    else:  # every step of every window missing: nothing to learn
        grads = [torch.zeros_like(p) for p in params]
    with torch.no_grad():
        for p, g in zip(params, grads, strict=True):
            p -= lr * g
    norm = math.sqrt(sum(float((g**2).sum()) for g in grads))
    return float(loss.detach()), norm


# -- the live stream ------------------------------------------------------------------
class SeriesTrace:
    """Everything the oracle knows of one series: inputs x_1..x_t fed to the live
    forward, their targets (NaN = missing), and ĥ_0..ĥ_t."""

    def __init__(self, h0: Any, served: torch.Tensor) -> None:
        self.inputs: list[torch.Tensor] = []  # x_s [1, d] as fed (normalised; a forecast where missing)
        self.targets: list[torch.Tensor] = []  # [d] the loss targets (NaN = missing)
        self.states: list[Any] = [h0]  # ĥ_0 .. ĥ_t, detached
        self.served = served  # [1, p] predict(ĥ_t) after the tick: the forecast of x_{t+1}
        self.observed: list[list[float]] = []  # raw observed values per feature (for the scale)
        self.scale_before: tuple[list[float], list[float]] = ([], [])  # (centres, stds) before the last value
        self.last_update = 0  # the step of the series' previous update (0: none yet)

    @property
    def t(self) -> int:
        return len(self.inputs)


class StreamOracle:
    """Simulates ``observe_many`` tick by tick (each tick: distinct series).

    stateful: the rule above. stateless: every k1 observations of the model one step on
    the windows ``draw()`` returns [(series, last step)], each from h_0, summing all
    k2 losses; the carried state is a fresh run over the last min(t, k2) inputs.
    """

    def __init__(self, network: torch.nn.Module, config: Any) -> None:
        self.net = copy.deepcopy(network)  # private weights; the library's are never read again
        self.cfg = config
        self.d = config.n_features
        self.series: dict[str, SeriesTrace] = {}
        self.observations = 0
        self.records: list[tuple[float, float]] = []  # (loss, grad norm) of every update
        self.last_due: list[str] = []
        self.window: int | None = None  # K_t of the next stateful update (None: the config's k2)

    # the network's definition, run without a graph
    def _advance(self, x: torch.Tensor, h: Any) -> Any:
        with torch.no_grad():
            return self.net.advance(x, h)

    def _predict(self, h: Any) -> torch.Tensor:
        with torch.no_grad():
            return self.net.predict(h)

    def _serve(self, h: Any, last_input: torch.Tensor) -> torch.Tensor:
        """The served forecast [1, p]: with the residual head, the change added to x_t."""
        pred = self._predict(h)
        if not self.cfg.residual or self.cfg.hybrid:  # the hybrid's output is a correction: nothing added
            return pred
        return torch.cat([pred[:, : self.d] + last_input, pred[:, self.d :]], dim=1)

    def _bases(self, trace: SeriesTrace, lo: int, hi: int) -> list[torch.Tensor] | None:
        return previous_inputs(trace.inputs, lo, hi) if self.cfg.residual and not self.cfg.hybrid else None

    def _scale(self, trace: SeriesTrace) -> tuple[list[float], list[float]]:
        columns = [[row[i] for row in trace.observed if not math.isnan(row[i])] for i in range(self.d)]
        pairs = [direct_scale(c) for c in columns]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def tick(
        self,
        items: Sequence[tuple[str, Any]],
        draw: Callable[[], list[tuple[str, int]]] | None = None,
        given: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> None:
        """One tick; ``given``: per series (x [1, i], target [d] with NaN where undefined), the
        hybrid's input and target, used as they are instead of the normalised value."""
        names = [name for name, _ in items]
        assert len(set(names)) == len(names), "a tick holds distinct series"
        dtype = next(self.net.parameters()).dtype
        for name, value in items:
            if name not in self.series:
                h0 = self.net.initial_state(1)
                self.series[name] = SeriesTrace(h0, self._predict(h0))
            trace = self.series[name]
            raw = parse_row(value, self.d)
            trace.scale_before = self._scale(trace)
            trace.observed.append(raw)
            if self.cfg.normalize:
                centres, stds = self._scale(trace)  # the statistics including this value
                target = [(v - c) / s for v, c, s in zip(raw, centres, stds, strict=True)]
            else:
                target = raw
            served_mean = trace.served[0, : self.d].tolist()
            fed = [mu if math.isnan(v) else v for v, mu in zip(target, served_mean, strict=True)]
            x = torch.tensor([fed], dtype=dtype)  # [1, d]; a missing feature: the served forecast mean
            target = torch.tensor(target, dtype=dtype)
            if given is not None:
                x, target = given[name]
            trace.inputs.append(x)
            trace.targets.append(target)
            if self.cfg.mode == "stateful":
                trace.states.append(self._advance(x, trace.states[-1]))  # ĥ_t with the weights in force
        if self.cfg.mode == "stateful":
            self._stateful_update(names)
        else:
            self._stateless_updates(len(items), draw)
        for name in names:
            trace = self.series[name]
            if self.cfg.mode == "stateless":
                trace.states.append(self._fresh_run(trace, trace.t))
            trace.served = self._serve(trace.states[-1], trace.inputs[-1])  # with the updated weights

    def _stateful_update(self, names: list[str]) -> None:
        k1, k2 = self.cfg.k1, self.cfg.k2 if self.window is None else self.window  # K_t
        warmup = self.cfg.resolved_warmup_updates
        due = [n for n in names if self.series[n].t % k1 == 0 or self.series[n].t <= warmup]
        self.last_due = due
        if not due:
            return
        sums = []
        for name in due:
            trace, t = self.series[name], self.series[name].t
            m = min(t - trace.last_update, k2)  # the losses since the previous update
            trace.last_update = t
            first = max(0, t - k2)  # the window holds x_{first+1} .. x_t
            start = detach_state(trace.states[first])  # stopgrad(ĥ_{t-k2}); ĥ_0 = h_0
            bases = self._bases(trace, first, t)
            sums.append(
                truncated_window_loss(
                    self.net, start, trace.inputs[first:], trace.targets[first:], m, self.cfg.loss, bases
                )
            )
        self.records.append(sgd_step(self.net, sum(sums) / len(sums), self.cfg.lr))

    def _stateless_updates(self, n_new: int, draw: Callable[[], list[tuple[str, int]]] | None) -> None:
        k1, k2 = self.cfg.k1, self.cfg.k2
        before, self.observations = self.observations, self.observations + n_new
        self.last_due = []
        for _ in range(self.observations // k1 - before // k1):
            assert draw is not None
            windows = draw()
            if not windows:
                continue
            sums = []
            for name, end in windows:
                trace = self.series[name]
                assert k2 <= end <= trace.t
                h0 = self.net.initial_state(1)
                lo = end - k2
                bases = self._bases(trace, lo, end)
                sums.append(
                    truncated_window_loss(
                        self.net, h0, trace.inputs[lo:end], trace.targets[lo:end], k2, self.cfg.loss, bases
                    )
                )
            self.records.append(sgd_step(self.net, sum(sums) / len(sums), self.cfg.lr))

    def _fresh_run(self, trace: SeriesTrace, t: int) -> Any:
        h = self.net.initial_state(1)
        for x in trace.inputs[max(0, t - self.cfg.k2) : t]:
            h = self._advance(x, h)
        return h

    def served_in_units(self, name: str) -> list[float]:
        """The served one-step mean in the series' units."""
        trace = self.series[name]
        mean = trace.served[0, : self.d].tolist()
        if not self.cfg.normalize:
            return mean
        centres, stds = self._scale(trace)
        return [mu * s + c for mu, c, s in zip(mean, centres, stds, strict=True)]
