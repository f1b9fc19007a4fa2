"""Intervals calibrated online at every horizon from the prequential errors.

Per series, feature and horizon h, the half-width ``q_h`` serves the ``level`` quantile of the
absolute error of the served forecast made h steps before each value. After each scored target,
with ``e`` the absolute error and ``w`` the half-width that was served with that forecast h steps
before (``1{e > w}``: a miss):

- **at h = 1**, adaptive conformal inference on the log scale (Gibbs & Candès 2021, ``stepped``):
  ``q_1 <- q_1 exp(RATE (1{e > w} - (1 - level)))``, the first scored error setting ``q_1 = FIRST e``;
- **at h >= 2** (and the far horizons), since session 46, **a scale times a multiplier**
  (``c_spread``, ``spread_stepped``):

      m_h <- m_h * exp((SPREAD_RATE / sqrt(h)) * (1{e > w} - (1 - level)))   (within MULTIPLIER_BOUNDS)
      S_h <- SPREAD_DISCOUNT * S_h + e,  N_h <- SPREAD_DISCOUNT * N_h + 1
      q_h  = max(M(level) * m_h * S_h / N_h, floor)

  ``S_h / N_h`` is the discounted mean absolute error at h (about the last 20 errors), ``m_h`` the
  learned ratio of the level's quantile to it, stored relative to the normal distribution's,
  ``M(level) = z(level) sqrt(pi / 2)`` (2.06 at 90 %; ``normal_multiplier``). The share of values
  outside ``F +- q_h`` is driven to ``1 - level`` by ``m_h`` as adaptive conformal inference drives
  it, while a change of the errors' size reaches the width through the scale within a few values.

  **The start** (session 47): a new series' ``m_h`` is the Laplace distribution's ratio over the
  normal's, ``start_multiplier(level) = -ln(1 - level) / M(level)`` (1.117 at 90 %), so the first
  scored error sets ``q_h = -ln(1 - level) e`` (2.30 e at 90 %). A stream's errors past one step have
  heavier tails than the normal's (a mixture of calm and moving stretches), and every step the
  multiplier takes from its start costs misses, ``ln(m_end / m_start) / rate`` of them: started at 1,
  the 39 streams of the accuracy work were covered 89.0 % at h = 8 .. 12 on average (88.7 % on the 23
  of fewer than 300 values), the rule before session 46 89.9 %; from Laplace's, 89.7 % (``python -m
  benchmarks.interval_widths``, README "Intervals"). On i.i.d. normal noise it over-covers a short
  stream by about a point at h = 6 .. 12.

Until session 46 every ``q_h`` took the conformal step at h = 1's rate. It was correct on average
but not sharp at the longer horizons: their errors come in runs (the h forecasts in flight when a
level moves all miss, each judged against the width served before it), and each miss of a run
multiplied the width by 1.43: after a level shift of 10 noise sds the 12-step width peaked at 54
times the width that then covered 90 % (14 now; ``test_calibration.py``), and on the tour's web-1
the 12-step half-width had a median of 22.6 and a 95th percentile of 402 where 7 covered 90 % of the
last 150 values. Over the accuracy work's 39 streams the 90 % intervals at h = 1 .. 12 had an
interval score 1.436 times that of the constant width that covers 90 % in hindsight (geometric
mean), 1.116 with this rule, at about the same coverage (``python -m
benchmarks.interval_widths``, README "Intervals"). The one-step width keeps its own rule: its
feedback is not delayed (a miss is judged at once), so its misses do not come in such runs, and
the outliers' bounds are read from it (``outliers``): served by the scale rule, a spike taken at its
bound widened it for the next 20 values, the second of two spikes a day apart was learned from as
it came and the seasonal members forecast a third (``test_outliers.py``); its interval score at h =
1 was 1.021 times the hindsight width's by its rule and 1.012 by the scale's.

A miss is judged against the half-width that was *served* with the forecast, h steps before, not
against the current ``q_h`` (the delayed feedback of a multi-step forecast): judged against the
current width, the later misses of a run count too few (TrumpApproval, h = 12: 82 % of the served
intervals covered while the count saw 90 %). Except where the horizon had no width of its own
when the forecast was served (none scored yet, its width taken from the shorter horizons): that
forecast is remembered with width 0 (``tick_kernels.served``) and its miss judged against ``q_h``
itself; so is a forecast served with a width not above the floor (a flat stretch's). Where that
is not above the floor either (nothing scored, or only errors the floor covers) the multiplier
is not stepped. Past one step, an error not above the floor (a value forecast exactly) counts as 0
in the scale and leaves the multiplier as it is (a flat stretch's covered zeros took it to its
lower bound), and an error over which the scale is negligible (``NEGLIGIBLE``: a flat start's, or
nothing scored) sets the scale alone: the first real error after a flat start sets ``q_h = M m e``
(counted with the flat start's zeros it was diluted twenty-fold, and the 30 values after 100 flat
ones were covered at h = 6 47 % of the time where session 45's rule covered 73 %: a review's test,
8 seeds), and after a burst in an exact stretch the width shrinks by 5 % a value (left as it was
for an exact error, the 12-step width of 300 zeros, 5 values of 1,000 and zeros again stayed at 284
for 1,100 values: a second review). So does an error more than ``SURPRISE`` (50) times the width it is
judged against, counted as a miss by the multiplier (session 47: the end of a flat stretch in
mid-series, whose shrunken scale took about 20 values to grow back). ``m_h`` stays within
``MULTIPLIER_BOUNDS`` of the normal's. Before anything is scored at h,
``q_h`` is taken from the shorter horizons (``q_1 sqrt(h)``); before anything is scored (one
value seen, or none) there is no interval: its bounds are NaN (``None`` in results, ``null`` in
the API's JSON). A half-width is at least ``SLACK`` of the widest at a shorter horizon.

Past the tracked horizons (``calibrated_horizon`` H) the same ``q`` is tracked at a few far
horizons, ``far_horizons(H)`` (2H and 4H: 24 and 48 by default), from the forecast served
there at every other origin (``FAR_EVERY``; ``c_far_q``, ``c_far_spread``, ``c_far_origin``:
``hybrid_kernels.score_far``), by the same rule (its multiplier's rate ``SPREAD_RATE / sqrt(h)`` at
the far horizon h, its discount per scored error). A horizon
between two known widths (H's and the far ones scored so far) is served their log-log
interpolation, ``q_a (h / a)^(log(q_b / q_a) / log(b / a))``; past the last known one, L's, its
square grows linearly in h at the rate it grew from H's, ``sqrt(q_L^2 + r (h - L))``, ``r = max(q_L^2 -
q_H^2, 0) / (L - H)`` (``beyond``: a local level's error variance, s_e^2 + h s_n^2; flat where the widths
fell). Until session 59 that was ``q_L sqrt(h / L)``, which held 95.0 to 96.8 % of the values a day ahead
of 15-minute sensors (98.0 to 99.5 % two days ahead; ``benchmarks.past_far_horizons``), and until session 45
every horizon past H was ``q_H sqrt(h / H)``: the
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
learned, 52-58 % (``benchmarks.interval_levels``, session 30); with session 46's widths past one
step, 58-59 % and 51-53 % (rerun, 2026-12-05 13:48 UTC).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from tbptt_online.compiled import compiled, readable
from tbptt_online.intervals import z_value

RATE = 0.4  # the one-step width's conformal step (``stepped``)
FIRST = 2.0  # its first scored error sets q = FIRST |error|
SPREAD_DISCOUNT = 0.95  # the discounted mean absolute error of each horizon: about its last 20 errors
SPREAD_RATE = 0.2  # the multiplier's log step at h = 1; SPREAD_RATE / sqrt(h) at horizon h (module doc)
# The multiplier's bounds, relative to the normal distribution's (2.06 at 90 %: 1.03 to 20.6; an error of
# constant size has 1)
MULTIPLIER_BOUNDS = (0.5, 10.0)
SPREAD_COLUMNS = 3  # c_spread's and c_far_spread's: S (the discounted sum of |e|), N (its count), m
# A scale under this share of an error is none: the error sets it (a flat start's float noise of 5e-12 at a
# level of 5.0, counted, diluted a first step of 45 to a 12-step width of 17 where 93 is its normal multiple)
NEGLIGIBLE = 1e-6
# An error more than this many times the half-width served with its forecast sets the scale alone, as a negligible
# scale's first error does (it still counts as a miss): the errors the scale was measured on no longer describe the
# series (the end of a flat stretch in mid-series: after a random walk, 100 flat values and the walk again, 8 seeds,
# the 90 % intervals held 66 / 58 / 47 % of the next 30 values at h = 2 / 6 / 12 without it, 73 / 75 / 74 % with it).
# An error of 50 widths is 80 sds of a normal one; a level shift of 10 noise sds misses a 12-step width by about 6
# times. 10 held 76 / 76 / 76 % there, but the spiky waterflow's intervals, reset by its spikes, got wider (interval
# score 1.185 -> 1.266 times the hindsight width's; 1.177 with 50); not counted as a miss, 10 left them at 87 % at h
# = 12 (``python -m benchmarks.interval_widths``)
SURPRISE = 50.0
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
FAR_MULTIPLES = (2, 4)  # the far horizons tracked: these multiples of the calibrated horizon ...
MAX_FAR = 1_000  # ... up to this horizon (a tick rolls the experts out to the longest: its cost)
FAR_EVERY = 2  # ... from the origins at steps divisible by this: from every origin the far forecasts cost a
# tick 10-17 % at 2,000 series, from every other one 6-9 % (``benchmarks.tick_parts``' measure); on the accuracy
# work's 33 streams, 29 and 34 of 132 cells at h = 18 to 48 more than 5 points off (55 by the rule of before:
# ``benchmarks.far_horizons``)
# A far width is stepped once every FAR_EVERY values, by the tracked horizons' rule (its multiplier at
# SPREAD_RATE / sqrt(h)). Until session 46 it took the conformal step itself, at 0.4 a miss, as q_h did: a burst
# of misses compounded (the 24-step width's 95th percentile 6.5 times the width that covers 90 % in hindsight,
# geometric mean over the 33 streams of 150 values or more), and twice that rate, tried, 13.3 times.


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


@functools.lru_cache(maxsize=64)
def normal_multiplier(level: float) -> float:
    """M(level): the normal distribution's ``level`` quantile of |e| over its mean |e|,
    z(level) sqrt(pi / 2), which the multiplier m of a width past one step is relative to (module doc;
    a new series' m starts at ``start_multiplier``).

    >>> round(normal_multiplier(0.9), 4)
    2.0615
    """
    return z_value(level) * math.sqrt(math.pi / 2.0)


@functools.lru_cache(maxsize=64)
def start_multiplier(level: float) -> float:
    """The multiplier a new series' widths past one step start from: the Laplace distribution's ``level``
    quantile of |e| over its mean |e|, ``-ln(1 - level)``, over the normal's (``normal_multiplier``): 1.117
    at 90 % (module doc, "The start").

    >>> round(start_multiplier(0.9), 4), round(start_multiplier(0.9) * normal_multiplier(0.9), 4)
    (1.1169, 2.3026)
    """
    return -math.log1p(-level) / normal_multiplier(level)


@functools.lru_cache(maxsize=64)
def normals(level: float) -> tuple[np.ndarray, float]:
    """What the scoring kernels take of the tracked ``level``: the other levels' normal ratios [S]
    (``normal_ratios``) and the normal multiplier (``normal_multiplier``)."""
    return normal_ratios(level), normal_multiplier(level)


@compiled
def stepped(q: float, error: float, level: float, floor: float, served: float) -> float:
    """The one-step half-width q after one scored absolute error ``error``: the conformal step on q
    itself at ``RATE`` (module doc), a miss judged against the half-width ``served`` with the forecast
    (where it is not above ``floor``: against q); where q is not above the floor (nothing scored yet, or
    only errors the floor covers: a flat start), a finite error sets q = FIRST |error|; at least
    ``floor`` > 0 (a flat series)."""
    judged = served if served > floor else q
    miss = 1.0 if error > judged else 0.0
    restart = FIRST * error if math.isfinite(error) else q  # a NaN or inf error sets nothing
    started = q * math.exp(RATE * (miss - (1.0 - level))) if q > floor else restart
    return max(started, floor)


@compiled
def spread_stepped(q, spread, b, i, k, error, level, multiplier, floor, served, horizon) -> float:
    """The half-width q after one scored absolute error ``error`` at ``horizon`` (1-based; module
    doc): at horizon 1 ``stepped`` (``spread`` not read: its column stays a new series'); past it the
    row ``b``, place ``i``, feature ``k`` of ``spread`` [B, H, SPREAD_COLUMNS, d] (S, N, m) stepped in
    place, ``multiplier`` M(level), m's log step SPREAD_RATE / sqrt(horizon). The miss is judged
    against ``served``, the half-width served with the forecast (where it is not above ``floor``:
    against q; where that is not either, m is not stepped). An error not above the floor (a value
    forecast exactly) counts as 0 in the scale and leaves m as it is; an error over which the scale is
    negligible (``NEGLIGIBLE``; none yet) sets the scale alone, S = e, N = 1, m as it is; one more than
    ``SURPRISE`` times the width it is judged against sets it alone too, m stepped for the miss. A
    non-finite error changes nothing; q is at least ``floor`` > 0."""
    if horizon == 1:  # the one-step width: the conformal step on q itself (module doc)
        return stepped(q, error, level, floor, served)
    if not math.isfinite(error):
        return q
    total, count, m = spread[b, i, 0, k], spread[b, i, 1, k], spread[b, i, 2, k]
    judged = served if served > floor else q
    if not error > floor:  # forecast exactly: the scale shrinks, the multiplier learns nothing
        total, count = SPREAD_DISCOUNT * total, SPREAD_DISCOUNT * count + 1.0
    elif not total > NEGLIGIBLE * error * count:  # no scale worth the name (a flat start): this error sets it
        total, count = error, 1.0
    else:
        if judged > floor:
            miss = 1.0 if error > judged else 0.0
            rate = SPREAD_RATE / math.sqrt(horizon)
            m = min(max(m * math.exp(rate * (miss - (1.0 - level))), MULTIPLIER_BOUNDS[0]), MULTIPLIER_BOUNDS[1])
        if judged > floor and error > SURPRISE * judged:  # the errors the scale was measured on are gone (a flat
            total, count = error, 1.0  # stretch's end): this error sets it (a miss still, counted as one by m)
        else:
            total, count = SPREAD_DISCOUNT * total + error, SPREAD_DISCOUNT * count + 1.0
    spread[b, i, 0, k], spread[b, i, 1, k], spread[b, i, 2, k] = total, count, m
    return max(multiplier * m * (total / count), floor)


@compiled
def _fold(q, spread, error, scored, level, multiplier, floor, served):
    n_rows, horizons, d = q.shape
    for b in range(n_rows):
        for h in range(horizons):
            for k in range(d):
                if scored[b, h, k]:
                    q[b, h, k] = spread_stepped(
                        q[b, h, k], spread, b, h, k, error[b, h, k], level, multiplier, floor[b, k], served[b, h, k],
                        h + 1,
                    )  # fmt: skip


def fold(
    q: torch.Tensor,
    spread: torch.Tensor,
    error: torch.Tensor,
    scored: torch.Tensor,
    level: float,
    floor: torch.Tensor,
    served: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """q [B, H, d] and spread [B, H, SPREAD_COLUMNS, d] after the absolute errors ``error`` [B, H, d]
    where ``scored`` (``spread_stepped``, at horizons 1 .. H); ``floor`` [B, d] > 0 keeps q positive (a
    flat series); ``served`` [B, H, d]: the half-widths served with the scored forecasts, against which
    a miss is judged (where not above the floor, or not given: q). Copies: the inputs are not changed.

    >>> q, spread, scored = torch.zeros(1, 2, 1), blank_spread(1, 2, 1, 1.0), torch.ones(1, 2, 1) > 0
    >>> floor = torch.full((1, 1), 1e-9)
    >>> q, spread = fold(q, spread, torch.ones(1, 2, 1), scored, 0.9, floor)
    >>> [round(w, 4) for w in q.flatten().tolist()]  # the first sets FIRST |e| at h = 1, M(0.9) m |e| past it (m = 1)
    [2.0, 2.0615]
    >>> q, spread = fold(q, spread, 3 * torch.ones(1, 2, 1), scored, 0.9, floor)
    >>> round(spread[0, 1, 2, 0].item(), 6) == round(math.exp(SPREAD_RATE / math.sqrt(2) * 0.9), 6)  # a miss: m grows
    True
    """
    f64 = torch.float64
    new_q = q.to(f64, copy=True).contiguous()
    new_spread = spread.to(f64, copy=True).contiguous()
    served = torch.zeros_like(new_q) if served is None else served
    arrays = readable(error.to(f64), scored, floor.to(f64), served.to(f64))
    multiplier = normal_multiplier(float(level))
    _fold(new_q.numpy(), new_spread.numpy(), arrays[0], arrays[1], float(level), multiplier, arrays[2], arrays[3])
    return new_q.to(q.dtype), new_spread


def blank_spread(n: int, horizons: int, d: int, start: float) -> torch.Tensor:
    """[n, horizons, SPREAD_COLUMNS, d] float64: nothing scored, the multiplier m at ``start`` (a new
    series': ``start_multiplier`` of its level)."""
    spread = torch.zeros(n, horizons, SPREAD_COLUMNS, d, dtype=torch.float64)
    spread[:, :, 2] = start
    return spread


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
    log h and log q; past the last known one, L's, ``sqrt(q_L^2 + r (j - L))`` with ``r = max(q_L^2 -
    q_Hq^2, 0) / (L - Hq)``, or ``q_Hq sqrt(j / Hq)`` where no far width is known (``root`` = sqrt(j / Hq), as
    the caller computes it). 0 where q_Hq is not > 0 (nothing known there).

    >>> q, far, far_at = np.array([[[3.0]]]), np.array([[[4.0], [5.0]]]), np.array([2, 4])  # Hq = 1, far 2 and 4
    >>> beyond(q, far, far_at, 0, 0, 7, math.sqrt(7.0)) == math.sqrt(25.0 + (25.0 - 9.0) / 3 * 3)  # past 4: 5^2 + r 3
    True
    >>> beyond(q, np.array([[[4.0], [2.0]]]), far_at, 0, 0, 7, math.sqrt(7.0))  # the width fell from Hq to 4: flat
    2.0
    """
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
    if low_h == tracked:
        return low_q * root
    # past the last far width known: its square grows linearly in h at the rate it grew from q_Hq's, none where it
    # fell (a local level's error variance, s_e^2 + h s_n^2: sqrt(h) growth for a random walk, flat for errors
    # that level off, as a season's do; q_L sqrt(h / L) until session 59 over-covered those, a new user's test)
    first_q = q[b, tracked - 1, k]
    rate = max((low_q * low_q - first_q * first_q) / (low_h - tracked), 0.0)
    return math.sqrt(low_q * low_q + rate * (j - low_h))


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


# -- Per-phase widths (session 54) ---------------------------------------------------------------
# The widths above are per horizon only: a seasonal series whose noise grows with its level (hourly
# traffic, 10 at night and 100 at the peak, Poisson or multiplicative noise) was served as wide an interval
# at night as at the peak, covered 0.99-1.00 at night and 0.69-0.79 at the peak (0.90 overall). A served
# half-width is now the per-horizon one times a factor of its target's phase in the series' first season
# (``phase_factor``; 1 where there is none), learned per series and feature (``c_phase`` [B, P, 3, d]: per
# phase the discounted sum of the one-step absolute errors of the served forecast, its count and the sum of
# their squares; ``c_phase_of`` [B, d]: the season they were gathered for). The errors that step the
# per-horizon widths are divided by the factor of their target's phase (and so is the width they are judged
# against: a miss is judged against the width served, factor included), so the multipliers keep the overall
# coverage.
PHASE_DISCOUNT = 0.95  # each phase's errors, one a cycle: about its last 20 cycles
PHASE_BOUNDS = (0.2, 5.0)  # a factor stays within these
PHASE_CLIP = 5.0  # an error folded in counts at most this many times the phases' mean error (a spike)
PHASE_COLUMNS = 3  # c_phase's: the discounted sum of |e|, its count, the discounted sum of e^2
PHASE_SMOOTHING = (0.25, 0.5, 0.25)  # a phase's mean error is smoothed with its two neighbours' (around the season)
PHASE_SMOOTHED_SHARE = sum(w * w for w in PHASE_SMOOTHING)  # the share of one mean's chance variance a smoothed keeps
# At each horizon h the factor is served as far as that horizon's errors follow it (``c_phase_fit`` [B, Hc,
# FIT_COLUMNS, d], ``phase_share``): 1 + s_h (f - 1), s_h the slope, within [0, 1], of the errors at h over the
# width served without the factor (e / w) on f - 1, over their mean: a discounted least-squares fit over about the
# last 100 errors at h (``PHASE_FIT_DISCOUNT``), each error against the factor of its target's phase as it stood
# before it (out of sample). Errors that grow with the factor as it does give s_h = 1; a pattern that does not
# hold at h, 0. Served at every horizon as it stood, the one-step errors' pattern hurt where the longer horizons'
# errors do not follow it, or where it is not where it was: an ECG's beat (its length wandering, found as 287 to
# 306 for its 296) put its beats' large factors at the wrong phases, and a spiky series' long horizons (waterflow):
# their interval scores over the hindsight width's went 1.127 -> 1.445 and 1.188 -> 1.904
# (``benchmarks.interval_widths``). Gated instead by a gain in the interval score of the factor over none, the
# gate's noise (a miss adds 20 widths) switched the factor on and off, and a factor switched on at once served a
# short series' daytime phases (solar's) too wide until the widths' scale had learned the errors divided by it.
PHASE_FIT_DISCOUNT = 0.99
FIT_COLUMNS = 5  # c_phase_fit's: the discounted count, and sums of x = f - 1, y = e / w, x y and x^2
PHASE_FIT_FROM = 10.0  # a horizon's share is 0 until its fit counts this many errors


def blank_phase(n: int, max_season: int, horizons: int, d: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A new series' ``c_phase`` [n, max_season, PHASE_COLUMNS, d] (nothing gathered), ``c_phase_of`` [n, d] (no
    season) and ``c_phase_fit`` [n, horizons, FIT_COLUMNS, d] (nothing fitted yet)."""
    phase = torch.zeros(n, max(max_season, 1), PHASE_COLUMNS, d, dtype=torch.float64)
    fit = torch.zeros(n, horizons, FIT_COLUMNS, d, dtype=torch.float64)
    return phase, torch.zeros(n, d, dtype=torch.int64), fit


@compiled
def _smoothed(stats, b, k, m, p) -> float:
    """Phase ``p``'s mean absolute error smoothed with its two neighbours' (``PHASE_SMOOTHING``, around the season)."""
    left, right = (p - 1) % m, (p + 1) % m
    smooth = PHASE_SMOOTHING[0] * stats[b, left, 0, k] / stats[b, left, 1, k]
    smooth += PHASE_SMOOTHING[1] * stats[b, p, 0, k] / stats[b, p, 1, k]
    return smooth + PHASE_SMOOTHING[2] * stats[b, right, 0, k] / stats[b, right, 1, k]


@compiled
def _effective(n: float) -> float:
    """The effective count (sum of weights squared over sum of squares) of errors discounted by
    PHASE_DISCOUNT whose weights sum to ``n``."""
    rest = min(max(1.0 - n * (1.0 - PHASE_DISCOUNT), 0.0), 1.0)  # PHASE_DISCOUNT^(errors)
    squares = (1.0 - rest * rest) / (1.0 - PHASE_DISCOUNT * PHASE_DISCOUNT)
    return max(n * n / squares, 1.0) if squares > 0.0 else max(n, 1.0)


@compiled
def phase_norm(stats, b, k, m) -> tuple[float, float]:
    """(the mean over the ``m`` phases of row ``b``, feature ``k`` of ``stats`` [B, P, PHASE_COLUMNS, d] of their mean
    absolute error, the weight w of the phases' own shape): the factors are ``1 + w (g_p / mean - 1)``, g_p
    phase p's mean smoothed with its neighbours' (``phase_factor``), so their mean over the phases is 1 (before
    ``PHASE_BOUNDS``). (0, 0), every factor 1, where a phase has no error yet, the season is none or past P or
    the mean is not > 0; else the empirical-Bayes shrinkage of the smoothed means toward their mean, ``max(0, 1
    - noise / spread)``: ``spread`` their variance about the mean, ``noise`` the part of it that the means of
    the errors have by chance (each phase's variance of |e| over its errors' effective count, their mean over
    the phases, times ``PHASE_SMOOTHED_SHARE``). A series whose noise is the same at every phase gets factors
    near 1, and so does one whose errors are heavy-tailed at every phase (spikes: waterflow's); one whose noise
    grows tenfold from night to peak, factors near its profile's within a few cycles."""
    if m < 2 or m > stats.shape[1]:
        return 0.0, 0.0
    total, chance = 0.0, 0.0
    for p in range(m):
        n = stats[b, p, 1, k]
        if not n > 0.0:
            return 0.0, 0.0
        mean_p = stats[b, p, 0, k] / n
        total += mean_p
        chance += max(stats[b, p, 2, k] / n - mean_p * mean_p, 0.0) / _effective(n)
    mean = total / m
    if not (mean > 0.0 and math.isfinite(mean)):
        return 0.0, 0.0
    spread = 0.0
    for p in range(m):
        deviation = _smoothed(stats, b, k, m, p) - mean
        spread += deviation * deviation
    spread /= m
    noise = PHASE_SMOOTHED_SHARE * chance / m
    if not spread > noise:
        return mean, 0.0
    return mean, 1.0 - noise / spread


@compiled
def phase_factor(stats, b, k, m, p, mean, weight) -> float:
    """The width factor of phase ``p`` (0 .. m - 1) of row ``b``, feature ``k``: its mean absolute error
    smoothed with its two neighbours' (``PHASE_SMOOTHING``), over the ``mean`` of the phases'
    (``phase_norm``), shrunk toward 1 by ``weight``; within ``PHASE_BOUNDS``; 1 where ``weight`` is 0."""
    if not weight > 0.0:
        return 1.0
    factor = 1.0 + weight * (_smoothed(stats, b, k, m, p) / mean - 1.0)
    return min(max(factor, PHASE_BOUNDS[0]), PHASE_BOUNDS[1])


@compiled
def phase_of_step(stats, of, lengths, b, k) -> int:
    """The first season whose phase factors row ``b``, feature ``k`` serves: its season length when
    ``c_phase_of`` ``of`` [B, d] holds it (its errors were gathered for it), else 0 (factors 1: none yet, or
    the season changed since, until the next value re-estimates them, ``phase_scored``)."""
    m = lengths[b, k, 0]
    return m if 2 <= m <= stats.shape[1] and of[b, k] == m else 0


@compiled
def phase_share(fit, b, h, k) -> float:
    """The share s of the factor (``phase_served``) served at horizon ``h`` (0-based) of row ``b``, feature ``k``:
    the least-squares slope of y = e / w on x = f - 1 in its fit ``fit`` [B, Hc, FIT_COLUMNS, d], over the mean
    of y, within [0, 1]; 0 before PHASE_FIT_FROM errors or where the factors hardly vary."""
    n = fit[b, h, 0, k]
    if not n >= PHASE_FIT_FROM:
        return 0.0
    mx, my = fit[b, h, 1, k] / n, fit[b, h, 2, k] / n
    vx = fit[b, h, 4, k] / n - mx * mx
    if not (vx > 1e-6 and my > 0.0):
        return 0.0
    slope = (fit[b, h, 3, k] / n - mx * my) / vx
    share = slope / my
    return min(max(share, 0.0), 1.0) if math.isfinite(share) else 0.0


@compiled
def phase_served(factor: float, share: float) -> float:
    """The factor served: 1 + ``share`` (``factor`` - 1) (``phase_share``)."""
    return 1.0 + share * (factor - 1.0)


@compiled
def phase_fitted(fit, b, h, k, factor: float, error: float, width: float) -> None:
    """Horizon ``h``'s fit (row ``b``, feature ``k``) after one scored absolute ``error`` against the ``width``
    served without the factor (> 0), its target's phase ``factor`` as it stood: x = factor - 1, y = error / width
    folded in, the older sums discounted by PHASE_FIT_DISCOUNT."""
    x, y = factor - 1.0, error / width
    if not (math.isfinite(y) and math.isfinite(x)):
        return
    y = min(y, 1e6)  # (a spike's error: a bounded say in the fit)
    values = (1.0, x, y, x * y, x * x)
    for c in range(FIT_COLUMNS):
        fit[b, h, c, k] = PHASE_FIT_DISCOUNT * fit[b, h, c, k] + values[c]


@compiled
def _folded(stats, b, p, k, error, discount) -> None:
    """One absolute ``error`` folded into phase ``p``'s sums (the older ones times ``discount``)."""
    square = error * error
    if math.isfinite(square):  # (an error past 1e154 is not folded: its square is not a number)
        stats[b, p, 0, k] = discount * stats[b, p, 0, k] + error
        stats[b, p, 1, k] = discount * stats[b, p, 1, k] + 1.0
        stats[b, p, 2, k] = discount * stats[b, p, 2, k] + square


@compiled
def phase_reestimated(stats, ring, s, k, b, t, m) -> None:
    """Row ``b``'s phase statistics of feature ``k`` for a new first season ``m``, from the values ring
    ``ring`` [C, R, d] at slot ``s`` (steps up to t - 1, the last R of them): per phase the sums of |y_i -
    y_{i-m}| and of its square over the values the ring holds both of, counted at most 1 / (1 -
    PHASE_DISCOUNT) (scaled down to it); the rest 0."""
    for p in range(stats.shape[1]):
        for c in range(PHASE_COLUMNS):
            stats[b, p, c, k] = 0.0
    r = ring.shape[1]
    for i in range(max(m + 1, t - r + m), t):  # y_i and y_{i-m} both in the ring (steps t - R .. t - 1)
        _folded(stats, b, i % m, k, abs(ring[s, (i - 1) % r, k] - ring[s, (i - m - 1) % r, k]), 1.0)
    cap = 1.0 / (1.0 - PHASE_DISCOUNT)
    for p in range(m):
        n = stats[b, p, 1, k]
        if n > cap:
            for c in range(PHASE_COLUMNS):
                stats[b, p, c, k] *= cap / n


@compiled
def phase_scored(stats, of, fit, lengths, ring, s, b, k, t) -> tuple[float, float]:
    """Before value ``t`` of row ``b`` (slot ``s``), feature ``k`` is scored: where its first season
    (``lengths`` [B, d, 2]) is not the one ``of`` [B, d] says its statistics were gathered for, they are
    re-estimated from the values ring (``phase_reestimated``; 0, none, where it has no season or one past
    P) and its ``fit`` [B, Hc, FIT_COLUMNS, d] starts again at every horizon. Returns the factor of step t's phase as
    it stands (1: none) and the phases' mean error (0: not known)."""
    m = lengths[b, k, 0]
    if not 2 <= m <= stats.shape[1]:
        of[b, k] = 0
        return 1.0, 0.0
    if of[b, k] != m:
        phase_reestimated(stats, ring, s, k, b, t, m)
        of[b, k] = m
        for h in range(fit.shape[1]):
            for c in range(FIT_COLUMNS):
                fit[b, h, c, k] = 0.0
    mean, weight = phase_norm(stats, b, k, m)
    return phase_factor(stats, b, k, m, t % m, mean, weight), mean


@compiled
def phase_learned(stats, of, b, k, t, error, mean) -> None:
    """The one-step absolute ``error`` of value ``t`` (at most ``PHASE_CLIP`` times the phases' ``mean`` error)
    folded into its phase's statistics (row ``b``, feature ``k``), where it has a season (``of``)."""
    m = of[b, k]
    if m >= 2 and math.isfinite(error):
        error = min(error, PHASE_CLIP * mean) if mean > 0.0 else error  # (a spike counts as PHASE_CLIP means)
        _folded(stats, b, t % m, k, error, PHASE_DISCOUNT)


@compiled
def phase_widths(stats, of, fit, lengths, step, far_at, half, far_half) -> None:
    """The served half-widths ``half`` [B, H, d] (horizons 1 .. H from step ``step`` [B]: targets step + h)
    and, where given (F > 0), the far horizons' ``far_half`` [B, F, d] at ``far_at`` [F], times their
    targets' phase factors (``phase_factor``) as far as that horizon's errors follow them (``phase_served`` of
    its ``phase_share``, from ``fit`` [B, Hc, FIT_COLUMNS, d]; past Hc, Hc's), in place."""
    n_rows, horizon, d = half.shape
    last = fit.shape[1] - 1
    for b in range(n_rows):
        for k in range(d):
            m = phase_of_step(stats, of, lengths, b, k)
            if m == 0:
                continue
            mean, weight = phase_norm(stats, b, k, m)
            if not weight > 0.0:
                continue
            for h in range(horizon):
                share = phase_share(fit, b, min(h, last), k)
                if share > 0.0:
                    factor = phase_factor(stats, b, k, m, (step[b] + h + 1) % m, mean, weight)
                    half[b, h, k] *= phase_served(factor, share)
            share = phase_share(fit, b, last, k)
            if share > 0.0:
                for f in range(far_half.shape[1]):
                    factor = phase_factor(stats, b, k, m, (step[b] + far_at[f]) % m, mean, weight)
                    far_half[b, f, k] *= phase_served(factor, share)
