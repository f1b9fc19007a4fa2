"""Intervals calibrated online at every horizon from the prequential errors.

Per series, feature and horizon h, ``q_h`` tracks the ``level`` quantile of the absolute
error of the served forecast made h steps before each value (adaptive conformal
inference on the log scale, Gibbs & Candès 2021): after each scored target,

    q_h <- q_h * exp(RATE * (1{|y - F| > q_h} - (1 - level)))

so that the share of values outside ``F +- q_h`` is driven to ``1 - level``. A miss is
judged against the half-width that was *served* with the forecast, h steps before, not
against the current ``q_h`` (the delayed feedback of a multi-step forecast): the misses
of one burst at a long horizon arrive together, and by the time the later ones are
scored ``q_h`` has already grown, so judging them against it counted too few (TrumpApproval,
h = 12: 82 % of the served intervals covered while the count saw 90 %). Except where the
horizon had no width of its own when the forecast was served (``q_h`` still 0, its width taken
from the shorter horizons): that forecast is remembered with width 0 (``tick_kernels.served``) and
its miss judged against ``q_h`` itself; judged against those narrow widths, each late miss grew
``q_h`` by 43 % and a heart rate's 12-step width reached 198 on errors of at most 13. So is a
forecast served with a width not above the floor (a flat stretch's): after 100 values of 5.0 and
a step to 50, the twelve 12-step forecasts made on the flat, each a point, were judged misses one
after the other and grew ``q_12`` from 90 (the first error's) to 4,700. The first
scored error above the floor sets ``q_h = 2 |error|`` (a series that starts 84, 84, 84 scores
errors of 0 first: taking them as its start left a width of 1e-6 that grew by 43 % a miss, and
a heart rate's first 28 one-step intervals all missed). Not covered: a flat stretch in
mid-series shrinks ``q_h`` by 4 % a value while the floor, a share of the local scale, shrinks
faster, so ``q_h`` stays above it and the first moves after the stretch are missed until it
has grown back (400 flat values after a random walk: 0 of the next 30 covered, as before);
before any, ``q_h`` is taken from the shorter
horizons (``q_1 sqrt(h)``); before anything is scored (one value seen, or none) there is
no interval: its bounds are NaN (``None`` in results, ``null`` in the API's JSON). A half-width
is at least ``SLACK`` of the widest at a shorter horizon.

Past the tracked horizons (``calibrated_horizon`` H) the same ``q`` is tracked at a few far
horizons, ``far_horizons(H)`` (2H and 4H: 24 and 48 by default), from the forecast served
there at every other origin (``FAR_EVERY``; ``c_far_q``, ``c_far_origin``: ``hybrid_kernels.score_far``). A horizon
between two known widths (H's and the far ones scored so far) is served their log-log
interpolation, ``q_a (h / a)^(log(q_b / q_a) / log(b / a))``; past the last known one, ``q_L
sqrt(h / L)`` (``beyond``). Until session 45 every horizon past H was ``q_H sqrt(h / H)``: the
random walk's growth, which errors that level off (a season's) or grow faster (a trend's, a
quasi-cycle's) do not follow; on the accuracy work's 33 series of 150 values or more the 90 %
intervals at h = 18, 24, 36 and 48 held 52.6 to 97.6 % of the values, 50 of the 132 more than
5 points from 90 (README, "Intervals past the calibrated horizon").

Another level ``p`` is served as ``q_h r_h(p)``: per horizon, the ratios at ``SHAPE_LEVELS``
track, with the same log-scale step (``shape_stepped``, ``SHAPE_RATE``), the p quantile of the
scored error over the half-width served with the forecast at the tracked level, so that a
share p of the values falls within ``r_h(p)`` of those widths; they start at the normal
distribution's ``z(p) / z(level)`` (kept relative to it: ``c_shape`` is 1 for a new series) and
``level_ratios`` reads a ratio at any level from them. Served as the normal ratio, the 50 %
intervals of the accuracy work's 29 streams held 59-67 % of the values (errors are not normal);
learned, 52-58 % (``benchmarks.interval_levels``).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from tbptt_online.compiled import compiled, readable
from tbptt_online.intervals import z_value

RATE = 0.4  # with misses judged against the width served, a faster rate (0.2 before) no longer overshoots
SHAPE_LEVELS = (0.5, 0.8, 0.95, 0.99)  # the levels whose width's ratio to the tracked level's is learned
SHAPE_RATE = 0.05  # per scored error at each horizon (0.02: 50 % covered 54-58 %; 0.1: 80 % 78-80 %)
SHAPE_STEPS = tuple((math.exp(SHAPE_RATE * level), math.exp(-SHAPE_RATE * (1.0 - level))) for level in SHAPE_LEVELS)
# A ratio stays within these multiples of the normal one. A stretch of (nearly) exact forecasts, a
# stuck sensor's or a counter's zeros, shrinks the ratios below the tracked level toward the lower
# bound, and misses take them back at SHAPE_RATE p a value: after 100 flat values in N(10, 1) the
# one-step 50 % interval held 15 % of the next 100 values (a review's test; 39 % at the normal
# ratio). A tighter bound costs where a stream's ratio would pass it: with 0.4 and 2.5, 32 % there,
# but a heavy-tailed walk's 50 % interval held 63 % (51 % with these) and the 29 streams' 50 %
# intervals were 5.8 points from 50 on average (5.3); with 0.25 and 4, 25 % and 54-59 %.
SHAPE_BOUNDS = (0.1, 10.0)
SLACK = 0.7  # a horizon's half-width is at least this share of the widest shorter horizon's
FIRST = 2.0  # the first scored error sets q = FIRST * |error|
FAR_MULTIPLES = (2, 4)  # the far horizons tracked: these multiples of the calibrated horizon ...
MAX_FAR = 1_000  # ... up to this horizon (a tick rolls the experts out to the longest: its cost)
FAR_EVERY = 2  # ... from the origins at steps divisible by this: from every origin the far forecasts cost a
# tick 10-17 % at 2,000 series, from every other one 6-9 % (``benchmarks.tick_parts``' measure); on the accuracy
# work's 33 streams, 29 and 34 of 132 cells at h = 18 to 48 more than 5 points off (55 by the rule of before:
# ``benchmarks.far_horizons``)
# A far width is stepped at RATE, once every FAR_EVERY values: it moves half as fast per value as q_h (a width
# grown by a burst takes twice as long to come back: a review, 100 where the 12-step one was 0.3). At twice the
# rate, 22 cells off instead of 34, but a burst of misses from forecasts served narrow compounds twice as fast:
# the 24-step width's 95th percentile 13.3 times the width that covers 90 % in hindsight (geometric mean over the
# 33 streams; co2 95, TrumpApproval 240), against 6.5 at RATE and 6.7 for the tracked 12-step width


@functools.lru_cache(maxsize=64)
def far_horizons(calibrated_horizon: int) -> tuple[int, ...]:
    """The far horizons tracked past ``calibrated_horizon`` (ascending; none past ``MAX_FAR``).

    >>> far_horizons(12), far_horizons(300), far_horizons(600)
    ((24, 48), (600,), ())
    """
    return tuple(m * calibrated_horizon for m in FAR_MULTIPLES if m * calibrated_horizon <= MAX_FAR)


def far_array(calibrated_horizon: int) -> np.ndarray:
    """``far_horizons`` as an int64 array [F] (the kernels' form)."""
    return np.array(far_horizons(calibrated_horizon), dtype=np.int64)


@compiled
def stepped(q: float, error: float, level: float, floor: float, served: float) -> float:
    """q after one scored absolute error ``error``: a miss judged against the half-width
    ``served`` with the forecast (where it is not above ``floor``: against q); where q is not above the floor (nothing
    scored yet, or only errors the floor covers: a flat start), a finite error sets q; at
    least ``floor`` > 0 (a flat series)."""
    judged = served if served > floor else q
    miss = 1.0 if error > judged else 0.0
    restart = FIRST * error if math.isfinite(error) else q  # a NaN or inf error sets nothing
    started = q * math.exp(RATE * (miss - (1.0 - level))) if q > floor else restart
    return max(started, floor)


@compiled
def _fold(q: np.ndarray, error: np.ndarray, scored: np.ndarray, level: float, floor: np.ndarray, served: np.ndarray):
    n_rows, horizons, d = q.shape
    for b in range(n_rows):
        for h in range(horizons):
            for k in range(d):
                if scored[b, h, k]:
                    q[b, h, k] = stepped(q[b, h, k], error[b, h, k], level, floor[b, k], served[b, h, k])


def fold(
    q: torch.Tensor,
    error: torch.Tensor,
    scored: torch.Tensor,
    level: float,
    floor: torch.Tensor,
    served: torch.Tensor | None = None,
) -> torch.Tensor:
    """q [B, H, d] after the absolute errors ``error`` [B, H, d] where ``scored``; ``floor``
    [B, d] > 0 keeps q positive (a flat series); ``served`` [B, H, d]: the half-widths served
    with the scored forecasts, against which a miss is judged (where not above the floor, or
    not given: q).

    >>> one = torch.ones(1, 1, 1)
    >>> q = fold(one, 2 * one, one > 0, 0.9, torch.full((1, 1), 1e-9))  # a miss: q grows
    >>> round(q.item(), 6) == round(math.exp(RATE * 0.9), 6)
    True
    >>> q = fold(one, 2 * one, one > 0, 0.9, torch.full((1, 1), 1e-9), 3 * one)  # covered when it was served
    >>> round(q.item(), 6) == round(math.exp(-RATE * 0.1), 6)
    True
    """
    f64 = torch.float64
    new_q = q.to(f64, copy=True).contiguous()
    served = torch.zeros_like(new_q) if served is None else served
    arrays = readable(error.to(f64), scored, floor.to(f64), served.to(f64))
    _fold(new_q.numpy(), arrays[0], arrays[1], float(level), arrays[2], arrays[3])
    return new_q.to(q.dtype)


def half_widths(
    q: torch.Tensor, horizon: int, ratio: np.ndarray | None = None, far: torch.Tensor | None = None
) -> torch.Tensor:
    """[B, H, d] half-widths for horizons 1..``horizon`` from q [B, Hq, d] (0 = not yet
    tracked) and the far horizons' ``far`` [B, F, d] (``c_far_q``, at ``far_horizons(Hq)``; None:
    none known); ``ratio`` [B, R, d] float64: the level asked's width over the tracked level's per
    horizon, past the R-th the R-th's (``level_ratios``; None: the tracked level).
    NaN (no interval) where nothing has been scored at horizon 1: a series with one value
    or none has no scale, and an interval then would claim a certainty nobody has (it
    was ``z * 1e-9 * level`` wide before). Computed in float64 (``fill_half_widths``, one
    compiled pass instead of a dozen small tensor operations per call).

    >>> half_widths(torch.tensor([[[0.0], [0.0]]]), 2).flatten().tolist()
    [nan, nan]
    >>> [round(w, 4) for w in half_widths(torch.tensor([[[1.0], [0.0]]]), 2).flatten().tolist()]
    [1.0, 1.4142]
    """
    b, tracked, d = q.shape
    out = np.empty((b, horizon, d))  # float64
    factor = np.ones((b, 1, d)) if ratio is None else np.ascontiguousarray(ratio, dtype=np.float64)  # [B, R, d]
    far = torch.zeros(b, len(far_horizons(tracked)), d, dtype=torch.float64) if far is None else far
    anchors = (*readable(far.to(torch.float64)), far_array(tracked))
    fill_half_widths(*readable(q.to(torch.float64)), *anchors, factor, *horizon_roots(horizon, tracked), out)
    return torch.from_numpy(out).to(q.dtype)


@compiled
def shape_stepped(relative: float, error: float, half: float, normal: float, i: int) -> float:
    """The width ratio of level p = ``SHAPE_LEVELS[i]`` after one scored error: ``relative`` is
    its ratio to the tracked level's width over the normal distribution's (``normal``, z(p) /
    z(tracked); 1 before anything is learned), stepped as q is (log scale: ``exp(SHAPE_RATE
    (miss - (1 - p)))``, the two factors ``SHAPE_STEPS[i]``) toward the p quantile of ``error /
    half``, ``half`` the width served at the tracked level with the forecast; within
    ``SHAPE_BOUNDS``."""
    up, down = SHAPE_STEPS[i]
    stepped = relative * (up if error > relative * normal * half else down)
    return min(max(stepped, SHAPE_BOUNDS[0]), SHAPE_BOUNDS[1])


@functools.lru_cache(maxsize=64)
def normal_ratios(tracked: float) -> np.ndarray:
    """[S] float64: z(p) / z(``tracked``) for p in ``SHAPE_LEVELS`` (the normal distribution's)."""
    return np.array([z_value(level) / z_value(tracked) for level in SHAPE_LEVELS])


def level_ratios(shape: np.ndarray, levels: list[float], tracked: float) -> np.ndarray:
    """[B, Hq, d] float64: the ratio of the half-width at ``levels`` [B] (one per row) to the
    tracked level's, per horizon, from the rows' learned ``shape`` [B, Hq, S, d] (``c_shape``):
    1 at the tracked level; at ``SHAPE_LEVELS`` their learned ratios, made monotone outward
    from the tracked level; between two of them linear in z(level); below the lowest and above
    the highest, that one's ratio scaled by z(level) / z(its level). With a shape of 1 (nothing
    learned) it is the normal distribution's z(level) / z(tracked), to rounding.

    >>> one = np.ones((1, 1, len(SHAPE_LEVELS), 1))
    >>> [round(float(level_ratios(one, [a], 0.9)[0, 0, 0]), 6) for a in (0.5, 0.9, 0.99)]
    [0.410061, 1.0, 1.565993]
    >>> wide = one.copy(); wide[0, 0, 3, 0] = 2.0  # the 99 % interval learned twice the normal's ratio
    >>> [round(float(level_ratios(wide, [a], 0.9)[0, 0, 0]), 4) for a in (0.95, 0.97, 0.99, 0.995)]
    [1.1916, 1.8536, 3.132, 3.4131]
    """
    out = np.empty((shape.shape[0], shape.shape[1], shape.shape[3]))
    asked = np.array([z_value(level) for level in levels])
    zs = np.array([z_value(level) for level in SHAPE_LEVELS])
    _level_ratios(np.ascontiguousarray(shape, dtype=np.float64), asked, zs, z_value(tracked), out)
    return out


@compiled
def _level_ratios(shape: np.ndarray, asked: np.ndarray, zs: np.ndarray, tracked: float, out: np.ndarray) -> None:
    """``level_ratios`` with the levels as z values: ``asked`` [B], ``zs`` [S] (ascending)."""
    n_rows, horizons, n_shape, d = shape.shape
    at_z, at_r = np.empty(n_shape + 1), np.empty(n_shape + 1)  # the anchors, ascending in z
    for b in range(n_rows):
        z = asked[b]
        for h in range(horizons):
            for k in range(d):
                out[b, h, k] = _level_ratio(shape, b, h, k, z, zs, tracked, at_z, at_r)


@compiled
def _level_ratio(shape, b, h, k, z, zs, tracked, at_z, at_r) -> float:
    """One row's, horizon's and feature's ``level_ratios`` (``at_z``, ``at_r``: scratch)."""
    n_shape = shape.shape[2]
    if z == tracked:
        return 1.0
    m, home = 0, -1
    for s in range(n_shape + 1):
        if home < 0 and (s == n_shape or tracked <= zs[s]):
            at_z[m], at_r[m], home = tracked, 1.0, m  # the tracked level: 1 by definition
            m += 1
        if s < n_shape and zs[s] != tracked:
            at_z[m], at_r[m] = zs[s], shape[b, h, s, k] * zs[s] / tracked
            m += 1
    for i in range(home + 1, m):  # a wider level never has a narrower interval
        at_r[i] = max(at_r[i], at_r[i - 1])
    for i in range(home - 1, -1, -1):
        at_r[i] = min(at_r[i], at_r[i + 1])
    if z <= at_z[0]:  # (z / z: exactly 1 at the anchor itself)
        return at_r[0] * (z / at_z[0])
    if z >= at_z[m - 1]:
        return at_r[m - 1] * (z / at_z[m - 1])
    return np.interp(z, at_z[:m], at_r[:m])


@functools.lru_cache(maxsize=64)
def horizon_roots(horizon: int, tracked: int) -> tuple[np.ndarray, np.ndarray]:
    """sqrt(h) for h = 1 .. horizon [H] and sqrt(h / tracked) for h > tracked [max(H - Hq, 0)],
    float64, computed by torch as the tensor code did (its vectorised sqrt is not always
    the correctly rounded one that the kernel's ``math.sqrt`` would give)."""
    h = torch.arange(1, horizon + 1, dtype=torch.float64).view(1, -1, 1)  # [1, H, 1]
    return h.sqrt().flatten().numpy(), (h[:, tracked:] / tracked).sqrt().flatten().numpy()


@compiled
def _isnan_max(x: float, y: float) -> float:
    """max(x, y), NaN if either is (torch.maximum)."""
    return x if math.isnan(x) or x >= y else y


@compiled
def beyond(q: np.ndarray, far: np.ndarray, far_at: np.ndarray, b: int, k: int, j: int, root: float) -> float:
    """The tracked level's width at horizon ``j`` past the tracked ones (Hq of ``q`` [B, Hq, d]) of
    row ``b``, feature ``k``: between two known widths, q_Hq's and those of the far horizons
    ``far_at`` [F] (ascending) in ``far`` [B, F, d] that are > 0, their interpolation linear in
    log h and log q; past the last known one, L's, ``q_L sqrt(j / L)`` (``root`` = sqrt(j / Hq)
    where L = Hq, as the caller computes it). 0 where q_Hq is not > 0 (nothing known there)."""
    tracked = q.shape[1]
    low_h, low_q = tracked, q[b, tracked - 1, k]
    if not low_q > 0.0:
        return 0.0
    for f in range(far_at.shape[0]):
        high_h, high_q = far_at[f], far[b, f, k]
        if not high_q > 0.0 or high_h <= low_h:
            continue
        if j == high_h:
            return high_q
        if j < high_h:  # between two known widths (the logs apart: a ratio of two widths may pass float64's range)
            exponent = (math.log(high_q) - math.log(low_q)) / math.log(high_h / low_h)
            return math.exp(math.log(low_q) + exponent * math.log(j / low_h))
        low_h, low_q = high_h, high_q
    return low_q * (root if low_h == tracked else math.sqrt(j / low_h))


@compiled
def fill_far_widths(q: np.ndarray, far: np.ndarray, far_at: np.ndarray, half: np.ndarray, out: np.ndarray) -> None:
    """The half-widths at the tracked level that ``fill_half_widths`` serves at the far horizons
    ``far_at`` [F] into ``out`` [B, F, d], 0 where a far horizon's ``far`` [B, F, d] is not > 0 (it
    has no width of its own: remembered so, its miss is judged against ``far`` itself), from
    ``half`` [B, Hq, d], that rule's widths up to Hq. In closed form: past Hq the widths run from
    one known width to the next as a power of h, so the widest before a far horizon is the widest
    of ``half`` or a known far width before it (the SLACK rule's floor; a NaN there: none)."""
    n_rows, tracked, d = q.shape
    for b in range(n_rows):
        for k in range(d):
            first = q[b, 0, k]
            widest = -math.inf
            for i in range(tracked):
                widest = max(widest, half[b, i, k])  # (NaN where q_1 is not > 0: then none is own)
            for f in range(far_at.shape[0]):
                j = far_at[f]
                if not (far[b, f, k] > 0.0 and first > 0.0):
                    out[b, f, k] = 0.0
                    continue
                known = beyond(q, far, far_at, b, k, j, math.sqrt(j / tracked))
                width = known if known > 0.0 else first * math.sqrt(j)
                out[b, f, k] = max(width, SLACK * widest)
                widest = max(widest, width)


@compiled
def fill_half_widths(
    q: np.ndarray,
    far: np.ndarray,
    far_at: np.ndarray,
    ratio: np.ndarray,
    root: np.ndarray,
    root_beyond: np.ndarray,
    out: np.ndarray,
) -> None:
    """``half_widths`` of float64 ``q`` [B, Hq, d] into ``out`` [B, H, d], ``ratio`` [B, R, d]: per
    horizon h the tracked q_h (past Hq: ``beyond``, from q_Hq and the far horizons' ``far`` [B, F, d]
    at ``far_at`` [F]) where it and q_1 are > 0, else q_1 sqrt(h) (NaN where q_1 is not > 0), times
    its ratio; then at least SLACK of the running maximum over the shorter horizons (a NaN, once
    met, stays the maximum, as torch's ``cummax``). ``root``, ``root_beyond``: ``horizon_roots``."""
    n_rows, tracked, d = q.shape
    horizon = out.shape[1]
    for b in range(n_rows):
        for k in range(d):
            first = q[b, 0, k]
            widest = -math.inf
            for i in range(horizon):
                fallback = first * root[i] if first > 0 else math.nan
                if i < tracked:
                    known = q[b, i, k]
                else:
                    known = beyond(q, far, far_at, b, k, i + 1, root_beyond[i - tracked])
                    known = known if known > 0 else 0.0
                width = known if known > 0 and first > 0 else fallback
                width *= ratio[b, min(i, ratio.shape[1] - 1), k]  # the level asked's, before the rule below
                if math.isnan(width) or (not math.isnan(widest) and width >= widest):
                    widest = width
                # A longer horizon is never surer than a shorter one: each q_h is a noisy estimate,
                # and a young series' few errors at a long horizon must not make its interval narrower
                # (at any level: a ratio learned per horizon applied after this rule broke it, 0.37
                # of a shorter horizon's width at 50 % on a heavy-tailed walk, a review's test).
                out[b, i, k] = math.nan if math.isnan(widest) else _isnan_max(width, SLACK * widest)
