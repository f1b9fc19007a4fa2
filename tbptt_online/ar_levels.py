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
that the fit is the one the same values would give in the new units (but for ``rls.LOADING``, added
in each step's units; the constant
c' = g (c + delta (sum a - 1)), the lags' coefficients unchanged, P' = T P T' / g^2, with
g = s0 / s1, delta = (r1 - r0) / s0 and T the linear part of theta -> theta'); the ridge
prior is the one of the units at its first step. A move too large to re-express (g outside
``MAX_RESCALE``, or a non-finite result) restarts the fit from the prior. So the units change
only what is clamped and bounded: its inputs and forecasts at +-``LEVELS_CLAMP`` local scales
from the reference (a spike), its path within 1.5 times the window's farthest value from the
reference (``path_start``). Known, not fixed: after a burst thousands of local scales high, the mean
stays far from the values for hundreds of values, every input sits at the clamp, and the member
is off (after 100 values of 1e6 in a series of N(10, 1): 6,500 for the next 1,000 values); it
takes no weight then, and the served forecast is the one before this expert (the served MAE of
the 100 values after the burst 1.13, 1.12 without the expert; unclamped inputs left it stuck
there too). **A change of the order of magnitude starts it again there**: a level shift
(``shifted``: the ``outlier_run``-th value in a row beyond its bound on one side,
``outliers.clean``) whose value and the mean are ``RESTART_RATIO`` times apart or more (a change of
units, a drop to 0 and back), or, in a series with a level (a mean ``LEVEL_SCALES`` local scales
from 0 or more: not one about 0, whose every value is far from its mean in magnitude), three values
in a row that far from the mean (after a drop by 1e6 the old scale's outlier bound let the values
after the first through: no level shift, a review's): the mean starts again at the value, the fit's
constant is 0 in the new units (the fit's own mean is the new level; its lags' coefficients, the
shape of the series' dynamics, are kept), and the values before the shift count as the reference
(``x_arl_from``, the step from which its lags are read as they are). Without it a daily series that
dropped by 1e6 was forecast by this member near the old level for 1,000 values (3.5e6 200 values
later, its mean forgetting 0.995 a value), and the weight it kept, 5e-4 to 1e-3 (the slow combiner's
losses, in the series' units, still those of the old level), made the served one-step MAE 130 to
16,000 times the naive's (a hostile test, session 39). Tried and not kept: restarting the
fit from the prior too (a daily flow's forecasts a day after a six-hour outage to 0 read 29 off
its cycle, 15 allowed: ``test_excursions.py``); a ratio of 100 (the outage's return was not
taken for one: the mean was about 1, the first value back having been taken at its bound, and
the fit learned the ramp, the same 29 off); starting again at every level shift (a seasonal
series shifted by 1,000 noise deviations, a factor of 11: its 30 errors after the shift summed
over 8 seeds to 1,845 against 1,713). The discounted mean lags a trend by 1 / (1 - 0.995) = 200 of its steps,
so a trend's values stay within 200 local scales of it, inside the clamp; its errors are not
clamped, or a level shift would move its constant too slowly. (Its first version clamped both
at ``ar_changes.CLAMP``, 50: on a trend of half a local scale a step every input sat at the
clamp and its MAE was 70 where the changes' AR's was 1e-7, and 300 values after a shift of
1,000 noise deviations it forecast 52 below; a review's. The trend member's level for
reference, which follows a trend closely, was tried too: the path's bound then cut the way back
to a mean far from that level, server_metrics 0.836 -> 0.846 and nile at h=1..12 0.842 ->
0.852, over three seeds.)

**The short AR on the levels** (``ar_short``) is the same fit with ``SHORT_ORDER`` (2) lags and a
constant, an ARIMA(2, 0, 0) with a mean, made at every value beside the long one (``fit``) on the
same mean and local scale, re-expressed and restarted alike, its path bounded alike, by the same
window of ORDER values (its own 2 cut a slow cycle's turn, a review's). On a short stationary series
the long fit's 13 coefficients, fitted on 100-200 values, are noise, where the classical low-order AR
wins (sktime's quarterly US changes: the long fit one step 1.138 times naive's MAE on production, the
short one 0.964, river's SNARIMAX p = 1, d = 0 0.954); on a long one the long fit reaches what 2 lags
cannot (yearly sunspots' cycle). Each fits from the series' K-th value on (its own K).

Its state, per series and feature: the coefficients ``x_arl`` [n, d, K] (K = ORDER + 1, the
constant first), ``x_arl_p`` [n, d, K, K], the discounted mean ``x_arl_mean`` and its
discounted count ``x_arl_count``, and the units the coefficients are in: the reference
``x_arl_ref`` and the scale ``x_arl_unit`` (0 until the first step), and ``x_arl_from`` (int64:
the step of the last change of order of magnitude, before which its lags are the reference; 0:
none). The short fit's: ``x_ars`` [n, d, SHORT_K], ``x_ars_p`` and its units
``x_ars_ref``, ``x_ars_unit`` (it shares the mean, its count and ``x_arl_from``). It fits from
the series' K-th value on; a lag older than the values ring holds (a ring shorter than K:
``max_season_length`` 2 or 3) counts as the reference, 0 in its units. It reads the values
ring of ``experts``; ``advance`` and the path's steps (``path_start``, then ``path_next`` a step
at a time) work on one series and feature (a row ``b`` of the rows' arrays, feature ``k``), called
from the experts' kernels.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tbptt_online.ar_changes import FORGET, MAX_TRACE, PRIOR, path_bound
from tbptt_online.compiled import compiled, inlined, ring_value, within
from tbptt_online.rls import rls_step, semidefinite
from tbptt_online.values import MAX_ABS_VALUE

ORDER = 12  # lags of the values: a cycle of a yearly quasi-cycle, a monthly year
K = ORDER + 1  # and the constant
SHORT_ORDER = 2  # the short fit's lags (``ar_short``): an AR(2), a damped cycle at most
SHORT_K = SHORT_ORDER + 1
REFERENCE_FORGET = 0.995  # the reference: the series' mean over about its last 200 values
LEVELS_CLAMP = 1e3  # inputs and forecasts, in local scales from the reference (a trend's: within 200)
MAX_RESCALE = 1e6  # a scale that moves by more than this factor at once restarts the fit
CANCELLING_MOVE = 1.0  # a reference moved by more units than this: the re-expressed P is checked (``reexpress``)
LEVEL_SCALES = 3.0  # a series whose mean is this many local scales from 0 or more has a level (module doc)
RESTART_RATIO = 20.0  # a level shift by this factor of the mean's magnitude or more starts it again (module doc)


def fields(n: int, d: int) -> dict[str, torch.Tensor]:
    """Blank rows for ``n`` series: no coefficients, the prior's P, no mean, no units yet."""
    f64 = torch.float64
    return {
        "x_arl": torch.zeros(n, d, K, dtype=f64),
        "x_arl_p": PRIOR * torch.eye(K, dtype=f64).expand(n, d, K, K).clone(),
        "x_arl_mean": torch.zeros(n, d, dtype=f64),
        "x_arl_count": torch.zeros(n, d, dtype=f64),
        "x_arl_ref": torch.zeros(n, d, dtype=f64),
        "x_arl_unit": torch.zeros(n, d, dtype=f64),
        "x_arl_from": torch.zeros(n, d, dtype=torch.int64),  # lags before this step count as the reference
        # the short fit (``ar_short``): its coefficients [n, d, SHORT_K], P and units, on the same mean
        "x_ars": torch.zeros(n, d, SHORT_K, dtype=f64),
        "x_ars_p": PRIOR * torch.eye(SHORT_K, dtype=f64).expand(n, d, SHORT_K, SHORT_K).clone(),
        "x_ars_ref": torch.zeros(n, d, dtype=f64),
        "x_ars_unit": torch.zeros(n, d, dtype=f64),
    }


@compiled
def _lag(ring: np.ndarray, slot: int, k: int, step: int, t: int, ref: float, unit: float, start: int) -> float:
    """The value at ``step`` in the units, seen from step ``t``: 0 (the reference) where the ring
    no longer holds it, or it is before the first step or before ``start`` (a level shift's)."""
    if step < max(start, 1) or step <= t - ring.shape[1]:
        return 0.0
    return _unit(ring, slot, k, step, ref, unit)


@compiled
def _restart(theta: np.ndarray, p: np.ndarray, b: int, k: int) -> None:
    size = theta.shape[2]  # K or SHORT_K
    for i in range(size):
        theta[b, k, i] = 0.0
        for j in range(size):
            p[b, k, i, j] = PRIOR if i == j else 0.0


@compiled
def reexpress(theta, p, b, k, ref0, unit0, ref1, unit1, scratch) -> None:
    """theta [B, d, K] and p [B, d, K, K] at [b, k], fitted on u = (y - ref0) / unit0,
    re-expressed for u' = (y - ref1) / unit1 in place (the module docstring); restarted from
    the prior where the move is too large, the result not finite, or, for a move of the reference
    past ``CANCELLING_MOVE`` units, not positive semi-definite (K: theta's last size, the long
    fit's or the short one's). ``scratch`` [3 + K, >= K] (``rls_step``'s): row 1 and rows 3 .. 3 + K.

    Why the check: T P T' is semi-definite where P is, but its corner sums P's entries times
    delta and delta^2, and a reference moved by millions of units (a spike of -999999999 among
    values about 20, a hostile test, session 54) cancels there: an eigenvalue of -8.3 beside 6.0,
    and the model's own export refused by ``state_check`` on import for 14 values."""
    K = theta.shape[2]
    g = unit0 / unit1
    if not (1.0 / MAX_RESCALE <= g <= MAX_RESCALE):
        _restart(theta, p, b, k)
        return
    delta = (ref1 - ref0) / unit0
    if g == 1.0 and delta == 0.0:
        return
    # theta' = T theta - g delta e_0, T = [[g, g delta 1'], [0, I]]
    lags = 0.0
    for i in range(1, K):
        lags += theta[b, k, i]
    constant = g * (theta[b, k, 0] + delta * (lags - 1.0))
    # P' = T P T' / g^2: row 0 of T P is g (P[0] + delta sum_{i>=1} P[i]), the others stay
    for j in range(K):
        acc = 0.0
        for i in range(1, K):
            acc += p[b, k, i, j]
        scratch[1, j] = g * (p[b, k, 0, j] + delta * acc)  # (T P)[0, j]
    corner = 0.0
    for j in range(1, K):
        corner += scratch[1, j]
    corner = g * (scratch[1, 0] + delta * corner)  # (T P T')[0, 0]
    scale = 1.0 / (g * g)
    if not (math.isfinite(constant) and math.isfinite(corner * scale)):
        _restart(theta, p, b, k)
        return
    for j in range(K):
        if not math.isfinite(scratch[1, j] * scale):
            _restart(theta, p, b, k)
            return
    if abs(delta) > CANCELLING_MOVE:
        scratch[3, 0] = corner * scale  # the new P's lower triangle, as it is written below
        for i in range(1, K):
            scratch[3 + i, 0] = scratch[1, i] * scale
            for j in range(1, i + 1):
                scratch[3 + i, j] = p[b, k, i, j] * scale
        if not semidefinite(scratch, K):
            _restart(theta, p, b, k)
            return
    theta[b, k, 0] = constant
    # (T P T')[0, 0] >= 0 where P is semi-definite: below 0 it is rounding's cancellation (-4.8e-17 beside entries of
    # 1e-6 after a young series' glitches, a hostile test, session 57), which state_check refuses: the model's own
    # export refused on import for 30 values
    p[b, k, 0, 0] = max(corner * scale, 0.0)
    for j in range(1, K):  # (T P T')[0, j] = (T P)[0, j] for j >= 1 (T's column j >= 1 below row 0 is e_j)
        p[b, k, 0, j] = scratch[1, j] * scale
        p[b, k, j, 0] = scratch[1, j] * scale
        for i in range(1, K):
            p[b, k, i, j] *= scale


@compiled
def _unit(ring: np.ndarray, slot: int, k: int, step: int, ref: float, unit: float) -> float:
    return within((ring_value(ring, slot, k, step) - ref) / unit, LEVELS_CLAMP)


@compiled
def _far(value: float, mean: float) -> bool:
    """Whether a level shift to ``value`` from the ``mean`` changes the order of magnitude by
    ``RESTART_RATIO`` or more (a change of units: the module doc)."""
    a, b = abs(value), abs(mean)
    return max(a, b) >= RESTART_RATIO * min(a, b)


@compiled
def _changed(
    ring, slot: int, k: int, t: int, value: float, mean: float, start: int, shifted: bool, scale: float
) -> bool:
    """Whether the value at step ``t`` changes the series' order of magnitude (the module doc): a
    level shift (``shifted``) ``_far`` from the ``mean``, or, in a series with a level (its mean
    at least ``LEVEL_SCALES`` local scales ``scale`` from 0), this value and the two before it
    (since ``start``) all ``_far`` from it: a drop by 1e6 whose values after the first fell within
    its outlier bound (the old scale's) made no level shift (a review's)."""
    if shifted:
        return _far(value, mean)
    if t - 2 < max(start, 1) or abs(mean) < LEVEL_SCALES * scale:
        return False
    return (
        _far(value, mean)
        and _far(ring_value(ring, slot, k, t - 1), mean)
        and _far(ring_value(ring, slot, k, t - 2), mean)
    )


@compiled
def advance(
    theta, p, mean, count, ref, unit_in, start, short, short_p, short_ref, short_unit,
    ring, slot, b, k, t, observed, shifted, scale, work,
) -> None:  # fmt: skip
    """Fold the value at step ``t`` (just written to the ring ``ring`` [C, R, d] at row
    ``slot``) where it was ``observed``: the discounted ``mean`` [B, d] (``count`` [B, d]) moves
    toward it, and each fit (``fit``: the long one, theta [B, d, K], p [B, d, K, K] in the
    units ``ref``, ``unit_in`` [B, d]; the short one, ``short`` [B, d, SHORT_K], ``short_p``,
    ``short_ref``, ``short_unit``) makes its step on the mean and the local scale ``scale`` > 0.
    Where the value changes the order of magnitude (``_changed``: a level shift, ``shifted`` by
    ``outliers.clean``, or three values in a row) the mean starts again at it, each fit's
    re-expressed constant is 0 and ``start`` is this step (the module doc). ``work`` [3 + K, >= K]
    scratch (``rls_step``).

    The inputs, the values at t - 1 .. t - (K - 1) in the units (the mean and the local scale, the
    same for both fits), and the target are read once, into ``work``'s row 0 (the long fit's phi; the short
    one's is its first ``SHORT_K``), which ``reexpress`` and ``rls_step`` leave as it is: each fit is handed
    three arrays, not seven (every array a call is handed costs two atomic reference counts, and this
    runs twice per series and value, session 58)."""
    if not observed:
        return
    value = ring_value(ring, slot, k, t)
    again = _changed(ring, slot, k, t, value, mean[b, k], start[b, k], shifted, scale)
    if again:  # the mean starts at this value (as a count from 0 would, without its rounding: a value at the
        count[b, k], mean[b, k], start[b, k] = 1.0, value, t  # bound stays within it); earlier lags: the reference
    else:  # (within the values' bound: a value taken at its outlier bound may lie past it, and after a
        count[b, k] = REFERENCE_FORGET * count[b, k] + 1.0  # start a mean of few values follows it there)
        mean[b, k] = within(mean[b, k] + (value - mean[b, k]) / count[b, k], MAX_ABS_VALUE)
    if t < SHORT_K:  # each fits from the series' K-th value on (its own K)
        return
    reference, first = mean[b, k], start[b, k]
    work[0, 0] = 1.0  # phi: the constant, then the values at t - 1 .. t - (K - 1) in the units
    for i in range(1, K if t >= K else SHORT_K):
        work[0, i] = _lag(ring, slot, k, t - i, t, reference, scale, first)
    target = _unit(ring, slot, k, t, reference, scale)
    if t >= K:
        fit(theta, p, b, k, ref[b, k], unit_in[b, k], again, reference, scale, target, work)
        ref[b, k], unit_in[b, k] = reference, scale
    fit(short, short_p, b, k, short_ref[b, k], short_unit[b, k], again, reference, scale, target, work)
    short_ref[b, k], short_unit[b, k] = reference, scale


@compiled
def fit(theta, p, b, k, ref, unit, again, reference, scale, target, work) -> None:
    """One fit's step at a value (its order: theta's last size less the constant, K - 1): theta
    [B, d, K] and p [B, d, K, K] at [b, k] are re-expressed from the units ``ref``, ``unit`` (0 before
    the fit's first step) to the mean ``reference`` and the local scale ``scale``, which become the units
    (the caller keeps them), and one recursive-least-squares step is made on the ``target`` value and the
    K - 1 before it in ``work``'s row 0 after the constant's 1 (its error not clamped), those before the
    series' ``start`` counting as the reference (``advance``); ``again`` (the mean started again at this
    value): the re-expressed constant is 0."""
    if unit > 0.0:
        reexpress(theta, p, b, k, ref, unit, reference, scale, work)
    if again:  # the fit's own mean is the new level (theta[0] / (1 - sum of the lags' coefficients) = 0)
        theta[b, k, 0] = 0.0
    rls_step(theta, p, b, k, work, target, FORGET, MAX_TRACE, math.inf)  # the error unclamped (module doc)


@compiled
def path_start(theta, ref, unit_in, start, ring, slot, b, k, t, buffer) -> float:
    """The start of the forecasts' path (``path_next``): the values are rolled forward with their own
    predictions from the last ORDER (theta [B, d, K] in the units ``ref``, ``unit_in`` [B, d]), each within
    +-PATH_BOUND times the largest of those ORDER in the units: an explosive fit cannot run off (bounding
    the path's changes instead, as ``ar_changes`` does, cut the turns of yearly sunspots' cycle: 0.581 ->
    0.594 at h=1..12). No floor: ``ar_changes``' floor, its drift, would here be the constant, which after a
    burst of thousands of local scales is re-expressed huge (a review: 300 values of N(10, 1), then 1e6, and
    the member forecast 4e8, the served forecast 8.6e7). The short fit's path alike (its order: theta
    [B, d, SHORT_K]'s last size less the constant), bounded by the same window of ORDER values. Writes the
    recursion's lags into ``buffer`` [>= ORDER + H] (the caller's scratch), ``buffer[order - 1]`` the value at
    t in the units, and returns the bound; nothing before the fit's first step (``unit_in`` 0: its path is
    the last value)."""
    order = theta.shape[2] - 1
    unit, mean = unit_in[b, k], ref[b, k]
    if unit <= 0.0:
        return 0.0
    span = max(order, ORDER)  # the bound's window: ORDER values for either fit (the short fit's own 2 cut a
    # slow cycle's turn: from a crossing of its mean, a period of 40 was forecast within 1.5 times its last two
    # values' distance from the mean, 9.75 off at the top of an amplitude of 10, a review's)
    for j in range(span):  # oldest first: buffer[span - 1] is the value at t
        buffer[j] = _lag(ring, slot, k, t - (span - 1 - j), t, mean, unit, start[b, k])
    bound = path_bound(buffer, span, 0.0)  # of the window's values, in the units; no floor (module doc)
    for j in range(order):  # the recursion's lags: buffer[order - 1] is the value at t
        buffer[j] = buffer[span - order + j]
    return bound


@inlined
def path_next(theta, ref, unit_in, b, k, buffer, h, bound, last) -> float:
    """The forecast of step t + h + 1 (``h`` from 0, one after the other: ``path_start``), its value in the
    units kept in ``buffer[order + h]``; ``last``, the value at t, before the fit's first step."""
    unit = unit_in[b, k]
    if unit <= 0.0:
        return last
    order = theta.shape[2] - 1
    n = order + h
    acc = theta[b, k, 0]
    for j in range(order):  # buffer[n - 1 - j] is lag j + 1, coefficient theta[1 + j]
        acc += theta[b, k, 1 + j] * buffer[n - 1 - j]
    buffer[n] = within(within(acc, LEVELS_CLAMP), bound)
    return ref[b, k] + buffer[n] * unit
