"""Online combination of forecasters: per series, per horizon, two combiners of the members,
one by their linearised regrets (BOA) and one by their discounted absolute losses (an
exponentially weighted average, EWA), and a third EWA over those two.

- The **gradient** combiner (BOA, Wintenberger 2017, with the gradient trick, as in the R
  package ``opera``; discount ``GRADIENT_DISCOUNT``). When a target ``y`` arrives, its own
  forecast ``G`` (made h steps before) had the loss ``|y - G|``, whose slope in the
  forecast is ``g = sign(G - y)``; each member's *regret* is the linearised gain of having
  moved towards it, in the series' units (what a stream's MAE measures), ``r_e = g * (G -
  F_e)``, clamped to +-CAP local scales (a non-finite forecast counts as -CAP local scales,
  a non-finite ``G`` scores nothing), and

      R_e <- rho R_e + r_e,   V_e <- rho V_e + r_e^2,   B_e <- max(rho B_e, |r_e|),

  ``eta_e = min(1 / (2 B_e), sqrt(ln K / V_e))`` (K the members allowed to take weight, at
  least 2) and ``w_e ∝ eta_e exp(eta_e R_e - eta_e^2 V_e)`` over the allowed ones: free
  of the series' scale (eta_e R_e and eta_e^2 V_e are ratios). Its learning rates are per
  member and set by the evidence: a member whose regret is large
  and steady against its spread sharpens the weights quickly, a noisy one does not (the
  ratio of losses with a fixed eta, as the slow combiner has, keeps a member 3 % worse at
  half the leader's weight after 1,000 values as after 10). Linearised, it competes with
  the best convex combination of the members, not only with the best member. Every member
  is scored, allowed or not, so a member let in later (a season found) comes with its
  record. Before anything is scored its weights are equal.
- The **slow** combiner (``rho = SLOW_DISCOUNT``, about the last 1,000 targets) scores the
  members' errors in the series' units, ``L_e <- rho L_e + min(|y - F_e|, CAP * scale)``,
  ``N <- rho N + 1``, with weights ``∝ exp(-ETA L_e / min_e' L_e')`` over the allowed
  members (``L_e / N`` is the discounted mean, and the ratio makes ``ETA`` free of the
  series' scale: a member whose loss is 10 % above the best one's gets ``exp(-ETA / 10)``
  of its weight): what the MAE of a stream measures. It cannot fall far behind the member
  whose MAE is lowest over the long run.
- The **mixture**: the combiners' own forecasts ``G_i = sum_e w_ie F_e`` are scored as the
  slow one scores members (``rho = META_DISCOUNT``) and weighted ``mu_i ∝ exp(-META_ETA *
  M_i / min M)``; the served weights are ``w_e = mu_grad w_grad,e + mu_slow w_slow,e``
  (online aggregation over several combiners, as in Fixed Share over combiners or BOA
  with several learning rates).

Before anything is scored at a horizon the slow combiner's (and the mixture's) weights
are equal. Beyond the last scored horizon the weights of that horizon hold.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tbptt_online.compiled import compiled, inlined, readable

GRADIENT_DISCOUNT = 0.999  # rho of the gradient combiner's sums (BOA): about the last 1,000 targets
SLOW_DISCOUNT = 0.999  # rho of the slow combiner: about the last 1,000
ETA = 25.0  # the slow combiner's
META_DISCOUNT = 0.999  # rho of the combiners' own losses
META_ETA = 10.0  # 25 (the slow combiner's) before the gradient combiner: see README
CAP = 50.0  # one target adds at most this (in units of the scale) to a member's loss: a spike, or a
# scale still unknown in a series' first values, cannot dominate the discounted sums
RANGE_FLOOR = 1e-300  # a member's regret range B (series' units) is at least this: eta_e stays finite
COMBINERS = 2  # gradient, slow


@compiled
def regret(combined: float, member: float, y: float, unit: float) -> float:
    """A member's linearised regret ``sign(G - y) * (G - F_e)`` in the series' units
    (``combined`` = G, the gradient combiner's forecast of ``y``), clamped to +-CAP local
    scales ``unit``; a non-finite member's forecast counts as -CAP local scales (following it
    would have been the worst)."""
    if not math.isfinite(member):
        return -CAP * unit
    if combined > y:
        gain = combined - member
    elif combined < y:
        gain = member - combined
    else:  # no slope: nothing to learn
        return 0.0
    return min(max(gain, -CAP * unit), CAP * unit)


@inlined
def gradient_fold(regrets, squares, ranges, b, h, e, k, r, rho) -> None:
    """Fold regret ``r`` into member e's sums at [b, h, e, k]: ``R <- rho R + r``, ``V <- rho V +
    r^2``, ``B <- max(rho B, |r|)`` (each [B, Hc, E, d])."""
    regrets[b, h, e, k] = rho * regrets[b, h, e, k] + r
    squares[b, h, e, k] = rho * squares[b, h, e, k] + r * r
    ranges[b, h, e, k] = max(rho * ranges[b, h, e, k], abs(r))


@inlined
def gradient(regrets, squares, ranges, b, k, allowed, logits, weights, row) -> None:
    """At every horizon h of series ``b`` and feature ``k``: BOA's weights ``weights[h, row, :M]``
    of the M members from their regret sums ``regrets``, ``squares`` and ranges ``ranges``
    [B, Hc, M, d] (the module docstring) over the allowed ones ``allowed`` [M] (at least one):
    ``softmax(ln eta_e + eta_e R_e - eta_e^2 V_e)``, ``eta_e = min(1 / (2 B_e), sqrt(ln K /
    V_e))``; equal before anything is scored (all sums 0). The logits are left in ``logits[h,
    row, :M]`` (-inf where not allowed). Elements indexed, never sliced (see ``ewa``)."""
    horizons, members = regrets.shape[1], regrets.shape[2]
    allowed_count = 0
    for e in range(members):
        if allowed[e]:
            allowed_count += 1
    log_k = math.log(max(allowed_count, 2))
    for h in range(horizons):
        top = -np.inf
        for e in range(members):
            if allowed[e]:
                spread = max(ranges[b, h, e, k], RANGE_FLOOR)
                eta = 1.0 / (2.0 * spread)
                if squares[b, h, e, k] > 0.0:
                    eta = min(eta, math.sqrt(log_k / squares[b, h, e, k]))
                logits[h, row, e] = math.log(eta) + eta * regrets[b, h, e, k] - eta * (eta * squares[b, h, e, k])
            else:
                logits[h, row, e] = -np.inf
            top = max(top, logits[h, row, e])
        total = 0.0
        for e in range(members):
            x = logits[h, row, e] - top
            weights[h, row, e] = 0.0 if x == -np.inf else math.exp(x)
            total += weights[h, row, e]
        for e in range(members):
            weights[h, row, e] /= total


@compiled
def discounted(loss: float, error: float, cap: float, rho: float) -> float:
    """A member's loss after one scored target: ``rho * L + min(|error|, cap)`` (a
    non-finite error counts as the cap)."""
    capped = error
    if not capped < cap:  # NaN, inf
        capped = cap
    return rho * loss + capped


@compiled
def _fold(loss, count, error, scored, scale, rho) -> None:
    n_rows, horizons, members, d = loss.shape
    for b in range(n_rows):
        for h in range(horizons):
            for k in range(d):
                if scored[b, h, k]:
                    for e in range(members):
                        loss[b, h, e, k] = discounted(loss[b, h, e, k], error[b, h, e, k], CAP * scale[b, k], rho)
                    count[b, h, k] = rho * count[b, h, k] + 1.0


def fold(
    loss: torch.Tensor,
    count: torch.Tensor,
    error: torch.Tensor,
    scored: torch.Tensor,
    scale: torch.Tensor,
    rho: float = SLOW_DISCOUNT,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The slow combiner's step: discount by ``rho`` and add one target's absolute errors in
    the series' units, each capped at ``CAP`` local scales (``discounted``).

    loss [B, H, E, d], count [B, H, d]; error [B, H, E, d] absolute errors of the members'
    forecasts of that target made h steps before (a non-finite one counts as the cap); scored
    [B, H, d]: which horizons had a forecast to score (and an observed target); scale [B, d] > 0.

    >>> loss, count = fold(torch.zeros(1, 1, 2, 1), torch.zeros(1, 1, 1), torch.tensor([[[[1.0], [300.0]]]]),
    ...                    torch.tensor([[[True]]]), torch.tensor([[2.0]]))
    >>> loss.flatten().tolist(), count.flatten().tolist()
    ([1.0, 100.0], [1.0])
    """
    f64 = torch.float64
    new_loss, new_count = loss.to(f64, copy=True).contiguous(), count.to(f64, copy=True).contiguous()
    arrays = _array(error), _array(scored), _array(scale)
    _fold(new_loss.numpy(), new_count.numpy(), *arrays, float(rho))
    return new_loss.to(loss.dtype), new_count.to(count.dtype)


def _array(tensor: torch.Tensor) -> np.ndarray:
    """A contiguous numpy array of ``tensor`` (float tensors as float64), for reading."""
    return readable(tensor.to(torch.float64) if tensor.is_floating_point() else tensor)[0]


@inlined
def ewa(loss, count, b, k, allowed, eta, logits, weights, row) -> None:
    """At every horizon h of series ``b`` and feature ``k``: the convex weights
    ``weights[h, row, :M]`` of the M members of ``loss`` [B, Hc, M, d], from their losses,
    their discounted count ``count[b, h, k]`` (``count`` [B, Hc, d]) and which members may
    take weight ``allowed`` [M] (at least one): ``softmax(-eta L_e / min L)`` over the
    allowed ones (the count N is shared by the members, so A_e / min A = L_e / min L), equal
    before anything is scored (N = 0); min A >= 1e-12 (a flat series' zero losses). The
    logits are left in ``logits[h, row, :M]`` (-inf where not allowed). One call per series
    and feature, elements indexed, never sliced: each array handed to a call (or a view
    made) costs two atomic reference counts, as much as the exps when it was per horizon."""
    horizons, members = loss.shape[1], loss.shape[2]
    for h in range(horizons):
        n = count[b, h, k]
        best = np.inf
        for e in range(members):
            if allowed[e] and loss[b, h, e, k] < best:
                best = loss[b, h, e, k]
        factor = -eta / max(best, 1e-12 * max(n, 1e-12)) if n > 0 else 0.0
        top = -np.inf
        for e in range(members):
            logits[h, row, e] = loss[b, h, e, k] * factor if allowed[e] else -np.inf
            top = max(top, logits[h, row, e])
        total = 0.0
        for e in range(members):
            x = logits[h, row, e] - top
            weights[h, row, e] = 0.0 if x == -np.inf else math.exp(x)  # exp(-inf) is +0 exactly: no call for it
            total += weights[h, row, e]
        for e in range(members):
            weights[h, row, e] /= total


_BOTH = np.ones(COMBINERS, dtype=np.bool_)
MIXTURE = COMBINERS  # the row of ``mixed_weights``' scratch that holds the mixture's


@inlined
def mixed_weights(
    regrets,
    squares,
    ranges,
    slow_loss,
    slow_count,
    meta_loss,
    meta_count,
    allowed,
    b,
    k,
    logits,
    combiners,
    weights,
) -> None:
    """The served weights ``weights`` [Hc, E] of one series ``b`` and feature ``k`` at every
    horizon (the module docstring): each combiner's weights into ``combiners[:, i]``: i = 0
    the gradient one's from its sums ``regrets``, ``squares``, ``ranges`` [B, Hc, E, d], 1 the
    slow one's from its losses [B, Hc, E, d] and count [B, Hc, d]; their mixture mu into
    ``combiners[:, MIXTURE, :2]`` from the combiners' losses ``meta_loss`` [B, Hc, 2, d] and
    count ``meta_count`` [B, Hc, d]; the logits into the same places of ``logits``
    (``combiners`` and ``logits`` are [Hc, 3, E] scratch); ``allowed`` [E] which members may
    take weight."""
    gradient(regrets, squares, ranges, b, k, allowed, logits, combiners, 0)
    ewa(slow_loss, slow_count, b, k, allowed, ETA, logits, combiners, 1)
    ewa(meta_loss, meta_count, b, k, _BOTH, META_ETA, logits, combiners, MIXTURE)
    for h in range(weights.shape[0]):
        mu = combiners[h, MIXTURE, 0], combiners[h, MIXTURE, 1]
        for e in range(weights.shape[1]):
            weights[h, e] = mu[0] * combiners[h, 0, e] + mu[1] * combiners[h, 1, e]


@compiled
def softmax(x: np.ndarray) -> None:
    """``x`` [n] replaced by its softmax (at least one finite entry)."""
    top = -np.inf
    for e in range(x.shape[0]):
        top = max(top, x[e])
    total = 0.0
    for e in range(x.shape[0]):
        x[e] = math.exp(x[e] - top)
        total += x[e]
    for e in range(x.shape[0]):
        x[e] /= total


@compiled
def _weights(loss: np.ndarray, count: np.ndarray, allowed: np.ndarray, eta: float, out: np.ndarray) -> None:
    n_rows, horizons, members, d = loss.shape
    logits, weights = np.empty((horizons, 1, members)), np.empty((horizons, 1, members))
    for b in range(n_rows):
        for k in range(d):
            ewa(loss, count, b, k, allowed[b, :, k], eta, logits, weights, 0)
            out[b, :, :, k] = weights[:, 0]


def weights(loss: torch.Tensor, count: torch.Tensor, allowed: torch.Tensor, eta: float = ETA) -> torch.Tensor:
    """``[B, H, E, d]`` the convex weights of one EWA (``ewa``) from loss [B, H, E, d] and count
    [B, H, d]; ``allowed`` [B, E, d] says which members may take weight (at least one per row).

    >>> w = weights(torch.tensor([[[[1.0], [1.1]]]]), torch.ones(1, 1, 1), torch.ones(1, 2, 1, dtype=torch.bool))
    >>> round(w[0, 0, 1, 0].item() / w[0, 0, 0, 0].item(), 6) == round(math.exp(-ETA * 0.1), 6)
    True
    """
    out = torch.empty(loss.shape, dtype=torch.float64)
    _weights(_array(loss), _array(count), _array(allowed), float(eta), out.numpy())
    return out


@compiled
def _gradient_weights(regrets, squares, ranges, allowed, out) -> None:
    n_rows, horizons, members, d = regrets.shape
    logits, weights = np.empty((horizons, 1, members)), np.empty((horizons, 1, members))
    for b in range(n_rows):
        for k in range(d):
            gradient(regrets, squares, ranges, b, k, allowed[b, :, k], logits, weights, 0)
            out[b, :, :, k] = weights[:, 0]


def gradient_weights(
    regrets: torch.Tensor, squares: torch.Tensor, ranges: torch.Tensor, allowed: torch.Tensor
) -> torch.Tensor:
    """``[B, H, E, d]`` the gradient combiner's weights (``gradient``) from its sums [B, H, E, d];
    ``allowed`` [B, E, d] says which members may take weight (at least one per row).

    >>> zero = torch.zeros(1, 1, 2, 1)
    >>> gradient_weights(zero, zero, zero, torch.ones(1, 2, 1, dtype=torch.bool)).flatten().tolist()
    [0.5, 0.5]
    """
    out = torch.empty(regrets.shape, dtype=torch.float64)
    _gradient_weights(_array(regrets), _array(squares), _array(ranges), _array(allowed), out.numpy())
    return out


@compiled
def _served(
    regrets, squares, ranges, slow_loss, slow_count, meta_loss, meta_count, allowed, out, combiners, mu
) -> None:
    n_rows, horizons, members, d = regrets.shape
    logits, each = np.empty((horizons, COMBINERS + 1, members)), np.empty((horizons, COMBINERS + 1, members))
    weights = np.empty((horizons, members))
    for b in range(n_rows):
        for k in range(d):
            mixed_weights(
                regrets, squares, ranges, slow_loss, slow_count, meta_loss, meta_count, allowed[b, :, k],
                b, k, logits, each, weights,
            )  # fmt: skip
            out[b, :, :, k] = weights
            combiners[b, :, :, :, k] = each[:, :COMBINERS]
            mu[b, :, :, k] = each[:, MIXTURE, :COMBINERS]


def served_weights(rows: dict[str, torch.Tensor], allowed: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The served weights ``[B, Hc, E, d]``, each combiner's ``[B, Hc, 2, E, d]`` (gradient,
    slow) and their mixture ``[B, Hc, 2, d]`` from the rows' combination fields (``FIELDS``);
    ``allowed`` [B, E, d] which members may take weight."""
    loss = rows["c_slow_loss"]
    b, horizons, members, d = loss.shape
    out = torch.empty(loss.shape, dtype=torch.float64)
    combiners = torch.empty(b, horizons, COMBINERS, members, d, dtype=torch.float64)
    mu = torch.empty(b, horizons, COMBINERS, d, dtype=torch.float64)
    arrays = [_array(rows[name]) for name in FIELDS]
    _served(*arrays, _array(allowed), out.numpy(), combiners.numpy(), mu.numpy())
    return out, combiners, mu


FIELDS = (  # in kernel order
    "c_regret", "c_regret_sq", "c_regret_range", "c_slow_loss", "c_slow_count", "c_meta_loss", "c_meta_count",
)  # fmt: skip
