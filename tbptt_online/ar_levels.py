"""The long AR on the levels: recursive least squares on the values of a series, with a constant.

``ar_levels`` forecasts the value u_t = (y_t - ref) / unit from the ``ORDER`` values before
it and a constant, fitted by recursive least squares with forgetting, and rolls the forecast
forward: an ARIMA(p, 0, 0) with a mean, p = ``ORDER``. Where ``ar_changes`` (the same AR on
the changes) forecasts a quasi-cycle from its momentum and carries the last level forward,
this one pulls the forecast back toward the mean the fit has learned: a stationary series
(a level plus autocorrelated noise, yearly sunspots around their long-run mean, an index
that oscillates about zero) is forecast back to its mean at far horizons, the classical
AR(p) of Box and Jenkins. On a random walk or a trend its coefficients sum to about 1 and it
forecasts as the changes' AR does; the combination weighs both by their errors.

**Its units move exactly.** Its coefficients are in units of a reference ``ref`` (the
series' discounted mean, forgetting ``REFERENCE_FORGET``) and of the local scale
(``experts.local_scale``), both of which move with the series. Where either moves, from
(r0, s0) to (r1, s1), theta and P are re-expressed in the new units before the step, so
that the fit is the one the same values would give in the new units (the constant
c' = g (c + delta (sum a - 1)), the lags' coefficients unchanged, P' = M P M' / g^2, with
g = s0 / s1, delta = (r1 - r0) / s0 and M the linear part of theta -> theta'); the ridge
prior is the one of the units at its first step. A move too large to re-express (g outside
``MAX_RESCALE``, or a non-finite result) restarts the fit from the prior.

Its state, per series and feature: the coefficients ``x_arl`` [n, d, K] (K = ORDER + 1, the
constant first), ``x_arl_p`` [n, d, K, K], the reference ``x_arl_ref`` and its discounted
count ``x_arl_count``, and the scale the coefficients are in, ``x_arl_unit`` (0 until the
first step). It reads the values ring of ``experts``; ``advance`` and ``path`` work on one
series and feature (a row ``b`` of the rows' arrays, feature ``k``), called from the
experts' kernels.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tbptt_online.ar_changes import CLAMP, FORGET, MAX_TRACE, PRIOR, path_bound
from tbptt_online.compiled import compiled, ring_value, within
from tbptt_online.rls import rls_step

ORDER = 12  # lags of the values: a cycle of a yearly quasi-cycle, a monthly year
K = ORDER + 1  # and the constant
REFERENCE_FORGET = 0.995  # the reference: the series' mean over about its last 200 values
MAX_RESCALE = 1e6  # a scale that moves by more than this factor at once restarts the fit


def fields(n: int, d: int) -> dict[str, torch.Tensor]:
    """Blank rows for ``n`` series: no coefficients, the prior's P, no reference yet."""
    f64 = torch.float64
    return {
        "x_arl": torch.zeros(n, d, K, dtype=f64),
        "x_arl_p": PRIOR * torch.eye(K, dtype=f64).expand(n, d, K, K).clone(),
        "x_arl_ref": torch.zeros(n, d, dtype=f64),
        "x_arl_count": torch.zeros(n, d, dtype=f64),
        "x_arl_unit": torch.zeros(n, d, dtype=f64),
    }


@compiled
def _formed(t: int, r: int) -> bool:
    """The value at t and the ORDER before it are known at t: steps >= 1 and in the ring."""
    return t - ORDER >= 1 and t - ORDER > t - r


@compiled
def _restart(theta: np.ndarray, p: np.ndarray, b: int, k: int) -> None:
    for i in range(K):
        theta[b, k, i] = 0.0
        for j in range(K):
            p[b, k, i, j] = PRIOR if i == j else 0.0


@compiled
def reexpress(theta, p, b, k, ref0, unit0, ref1, unit1, work) -> None:
    """theta [B, d, K] and p [B, d, K, K] at [b, k], fitted on u = (y - ref0) / unit0,
    re-expressed for u' = (y - ref1) / unit1 in place (the module docstring); restarted from
    the prior where the move is too large or the result not finite. ``work`` [>= K] scratch."""
    g = unit0 / unit1
    if not (1.0 / MAX_RESCALE <= g <= MAX_RESCALE):
        _restart(theta, p, b, k)
        return
    delta = (ref1 - ref0) / unit0
    if g == 1.0 and delta == 0.0:
        return
    # theta' = M theta - g delta e_0, M = [[g, g delta 1'], [0, I]]
    lags = 0.0
    for i in range(1, K):
        lags += theta[b, k, i]
    constant = g * (theta[b, k, 0] + delta * (lags - 1.0))
    # P' = M P M' / g^2: row 0 of M P is g (P[0] + delta sum_{i>=1} P[i]), the others stay
    for j in range(K):
        acc = 0.0
        for i in range(1, K):
            acc += p[b, k, i, j]
        work[j] = g * (p[b, k, 0, j] + delta * acc)  # (M P)[0, j]
    corner = 0.0
    for j in range(1, K):
        corner += work[j]
    corner = g * (work[0] + delta * corner)  # (M P M')[0, 0]
    scale = 1.0 / (g * g)
    if not (math.isfinite(constant) and math.isfinite(corner * scale)):
        _restart(theta, p, b, k)
        return
    for j in range(K):
        if not math.isfinite(work[j] * scale):
            _restart(theta, p, b, k)
            return
    theta[b, k, 0] = constant
    p[b, k, 0, 0] = corner * scale
    for j in range(1, K):  # (M P M')[0, j] = (M P)[0, j] for j >= 1 (M's column j >= 1 below row 0 is e_j)
        p[b, k, 0, j] = work[j] * scale
        p[b, k, j, 0] = work[j] * scale
        for i in range(1, K):
            p[b, k, i, j] *= scale


@compiled
def _unit(ring: np.ndarray, slot: int, k: int, step: int, ref: float, unit: float) -> float:
    return within((ring_value(ring, slot, k, step) - ref) / unit, CLAMP)


@compiled
def advance(theta, p, ref, count, unit_in, ring, slot, b, k, t, observed, scale, work) -> None:
    """Fold the value at step ``t`` (just written to the ring ``ring`` [C, R, d] at row
    ``slot``) where it was ``observed``: the reference ``ref`` [B, d] moves toward it, theta
    [B, d, K] and p [B, d, K, K] are re-expressed in the new reference and the local scale
    ``scale`` > 0 (the units ``unit_in`` [B, d] records), and, where the value and the ORDER
    before it are in the ring, one recursive-least-squares step is made. ``work`` [3, >= K]
    scratch (``rls_step``)."""
    if not observed:
        return
    value = ring_value(ring, slot, k, t)
    old_ref = ref[b, k]
    count[b, k] = REFERENCE_FORGET * count[b, k] + 1.0
    ref[b, k] = old_ref + (value - old_ref) / count[b, k]
    if not _formed(t, ring.shape[1]):
        return
    if unit_in[b, k] > 0.0:
        reexpress(theta, p, b, k, old_ref, unit_in[b, k], ref[b, k], scale, work[1])
    unit_in[b, k] = scale
    work[0, 0] = 1.0  # phi: the constant, then the values at t - 1 .. t - ORDER in the units
    for i in range(1, K):
        work[0, i] = _unit(ring, slot, k, t - i, ref[b, k], scale)
    rls_step(theta, p, b, k, work, _unit(ring, slot, k, t, ref[b, k], scale), FORGET, MAX_TRACE, CLAMP)


@compiled
def path(out, at, theta, ref, unit_in, ring, slot, b, k, t, buffer) -> None:
    """The forecasts ``out[b, :, at, k]`` (``out`` [B, H, E, d]) of steps t + 1 .. t + H: the
    values rolled forward with their own predictions from the last ORDER (theta [B, d, K] in
    the units ``ref``, ``unit_in`` [B, d]), each within +-PATH_BOUND times the largest of those
    ORDER (at least the constant); the last value before the first step (``unit_in`` 0).
    ``buffer`` [>= ORDER + H] the caller's scratch."""
    horizon = out.shape[1]
    unit, mean = unit_in[b, k], ref[b, k]
    if unit <= 0.0:
        last = ring_value(ring, slot, k, t)
        for h in range(horizon):
            out[b, h, at, k] = last
        return
    for j in range(ORDER):  # oldest first: buffer[ORDER - 1] is the value at t
        buffer[j] = _unit(ring, slot, k, max(t - (ORDER - 1 - j), 1), mean, unit)
    bound = path_bound(buffer, ORDER, abs(theta[b, k, 0]))
    for n in range(ORDER, ORDER + horizon):
        acc = theta[b, k, 0]
        for j in range(ORDER):  # buffer[n - 1 - j] is lag j + 1, coefficient theta[1 + j]
            acc += theta[b, k, 1 + j] * buffer[n - 1 - j]
        buffer[n] = within(within(acc, CLAMP), bound)
        out[b, n - ORDER, at, k] = mean + buffer[n] * unit
