"""The experts' recurrences, compiled (numba): one pass over the rows and features of a tick.

``advance`` folds one value into the smoothing state, the local scale, the values ring
(judging it against the value a season before: ``excursions``), the seasonal tables and both
AR experts of each row; ``paths`` writes every expert's
forecasts of the next H steps. Both loop over rows ``b`` and features ``k`` in plain
scalar code: a tick of one series is a few microseconds instead of hundreds of small
tensor operations, and a tick of 10,000 series makes no temporaries. ``experts`` holds
their meaning (its module docstring), the fields and the torch-facing calls; the
constants of the recurrences live here, where the compiled code reads them.

Arrays (numpy views of the store's tensors, shapes as in ``experts.fields``): the rows'
own copies ``[B, ...]``, written in place; the shared ``ring`` [C, R, d] and ``season``
[C, V, 2, d, M] at the rows' ``slot`` [B]. The ring holds value ``s`` (1-based step) at
``(s - 1) % R``.
"""

from __future__ import annotations

import math

import numpy as np

from tbptt_online import ar_changes, ar_levels, excursions
from tbptt_online.compiled import compiled, ring_value, within
from tbptt_online.outliers import YOUNG
from tbptt_online.rls import rls_step

GAMMAS = (0.1, 0.4)  # the seasonal smoothing of the two families
# each family's trend smoothing: the faster season's family has the faster trend (both 0.1 until
# session 28; the gamma-0.4 family takes weight only once a season is found, so a young series'
# trend, from a few changes, is the slower one's)
BETAS = (0.1, 0.2)
# Each family's three levels, then its trend's level. The slow level (0.03, about the last 33 values) was
# 0.5 until session 52: a demand stream is a fixed weekly profile and trend with AR noise about it (a
# Holt-Winters fitted offline chose alpha, beta and gamma all below 0.01), and levels of 0.2 and more chase
# that noise into the forecast a day ahead (3 sites of hourly demand: 0.865 of the weekly naive's day-ahead
# MAE with the alpha-0.5 level, 0.803 with the slow one; the 39 accuracy streams' MAE at h = 1..12 lower
# in each of the four sets, one step 0.2 % lower or 0.3 % higher: docs/accuracy-history.md, session 52).
ALPHAS = (0.2, 0.03, 0.8, 0.2)
SLOW = 1  # the slow level's index (the alpha-0.5 level's place until session 52)
# The smoothing (every level and season) takes a young value (a series' first ``outliers.YOUNG``) at most this many
# local scales (as the scale was before it) from the quick level's one-step forecast (the gamma-0.1 family's
# alpha-0.8 level in the series' units, plus its seasons), and the local scale takes a young change at most this
# many scales. A series' values far outside their intervals are clipped (``outliers``), but a young
# series' are taken as they came (its interval is not a measure yet): a lone spike among its first values went
# into every level and seasonal index, the slow level (alpha 0.03) keeping it for hundreds of values, and into
# the scale every member's errors are weighed in (1e9 as a daily series' 6th value: served 87 at value 25 and 26
# at 30 under ``"auto"``, where the values are about 10; configured with its season, 1e8 where the indices' share
# came back a season later: a review, session 52). A third young value in a row as far beyond on the same side
# (as ``outliers``' default run, 3) is a level shift: taken as it came, the levels restarted there as at a shift
# ``outliers`` finds, and the scale takes the change the clip held back (a flat or tiny start that then moved for
# good, a counter's or a new product's, was followed 5 to 15 values late without it, the scale growing 3.45 times a
# value at most: a second review). The naive, seasonal naive and AR members read the values as they came.
SMOOTHING_CLIP = 50.0
# (The second in a row, as in session 52, took a sensor's burst of two glitches among a series' first 24 values,
# 4294967295 twice and then values about 20 again, for a level shift to 4.3e9, which the slow level kept: one-step MAE
# 8.3-9.6 over the next 500 values, 0.45 without the burst, 0.65-0.69 clipped twice: a hostile test, session 53.)
QUICK = 2  # the quick level's index (alpha 0.8)
PHI = 0.98  # the trend's (slight) damping
V_GAMMAS, V_BETAS = GAMMAS * 2, BETAS * 2  # per variant: [units | log] x family
REFERENCE = 3  # a family's seasonal indices are measured against its trend's level (no lag behind a trend)...
# ...where that is stable (``TREND_STABLE``), else against its slow level, which has no trend (the alpha-0.2
# level until session 52: a faster level follows a long season's shape within it, a day's within a week, and
# the indices measured against it miss that part; the slow one measured the demand streams 0.810 -> 0.803)
TRENDLESS = SLOW
# The longest season against which a family's trend's level is a stable reference. The seasonal
# indices, the trend's level and its trend form a loop: an error moves the level and the trend
# (Holt's filter rings, with a period of 34 steps at the gamma-0.4 family's beta 0.2, 58 at 0.1), and
# the seasonal index, updated against that level, brings the error back a season later. With a long
# enough season the loop amplifies it: the largest eigenvalue of Holt-Winters' discount matrix
# (Hyndman et al. 2008, ch. 10) is 1.00054 at season 168 in the gamma-0.4 family, 1.00007 in the
# gamma-0.1 one, and an hourly series with a weekly season had its seasonal indices 50 times their
# size after 100,000 values, its levels 2 to 3 times its values (session 43). Against the level
# without a trend the loop has no ring and is stable at every length (the eigenvalue 1, the seasons'
# sum traded with the level). Per variant (units, log) x (gamma 0.1, gamma 0.4): 41 and 25, the
# longest stable lengths of one season, and 40 and 23 of the longer of two (every pair within them
# stable, in either order; (m, 41) and (22, 24) not: a review; ``test_experts.py`` computes them).
TREND_STABLE = (41, 25, 41, 25)
TREND_STABLE_TWO = (40, 23, 40, 23)
# Per variant: whether its smoothing holds a second season that is a multiple of the first (hourly data's 24 and
# 168) as one table of the longer, which holds the shorter's pattern too (``smoothing_seasons``): the gamma-0.1
# family does, the gamma-0.4 one keeps Taylor's two tables. In Taylor's form the shorter season's indices, stepped
# every cycle, take up the longer one's pattern (a weekend's dip) and the longer one's correct it a cycle later:
# configured [24, 168], 21 hourly series with a weekend dip read 1.48 of the weekly naive's day-ahead MAE, 168 alone
# 0.91 (session 50; ``benchmarks.double_seasons``). Both families so read 0.90 there, but 0.216 of the naive's one-step
# MAE on taylor's half-hourly demand configured [48, 336], where Taylor's form reads 0.195 and this split 0.194
# (session 51): the slow family keeps the whole week, the fast one's shorter season follows the day's shape.
ONE_TABLE = (True, False, True, False)
SCALE_DECAY = 0.95  # the local scale: an exponential mean of |y_t - y_{t-1}|
AR_ORDER, AR_FORGET, AR_PRIOR = 5, 0.995, 10.0
AR_MAX_TRACE = 1e4  # P is shrunk when its trace passes this (no excitation: a flat series)
AR_CLAMP = 50.0  # normalised AR inputs and errors are clamped to +-this (a spike cannot blow it up)
UNIT_RELATIVE = 1e-9  # a flat series' unit: this share of its level...
# ...and never below this: an absolute 1e-9 (the floor was 1e-9 (|level| + 1)) measured a series of values
# about 1e-20 in units of 1e-9, its intervals 1e5 times wider than its data and its MAE 1e6 times the naive's
UNIT_FLOOR = 1e-100
LOG_CAP = 700.0  # a log-space forecast is capped here before exp (exp(700) is finite)
# the experts' positions in ``paths`` (the order of experts.NAMES)
NAIVE, SEASONAL_NAIVE, SMOOTH, AR, AR_CHANGES, MEDIAN, AR_LEVELS, AR_SHORT = 0, 1, 2, 18, 19, 20, 21, 22
MEDIAN_STEP = 0.1  # the median expert's step toward each value: this share of the local scale
LOG_EXPERTS = (SMOOTH + 8, SMOOTH + 16)  # [first, end) of the log variants' experts
SECOND_FAMILY = (SMOOTH + 4, SMOOTH + 12)  # the first of the four gamma-0.4 experts, in units and in logs
# A recursive-least-squares expert takes weight once the series has given it as many scored values as
# it has coefficients: before that its fit is the prior's and a few values' (a 5-value series in
# [2, 9]: ar read 24 at h = 12 and -153 at h = 100, ar_changes 568 at h = 1000; the served forecast,
# which weighed them as much as the others, -2.6 at h = 100 and 44 at h = 1000)
AR_MIN_SCORED, AR_CHANGES_MIN_SCORED, AR_LEVELS_MIN_SCORED = AR_ORDER, ar_changes.K, ar_levels.K
AR_SHORT_MIN_SCORED = ar_levels.SHORT_K


@compiled
def _multiple(m0: int, m1: int) -> bool:
    """Whether two seasons (0 = none) are a pair one of which is a multiple of the other, in either order (a
    detection can put the longer first: a held 24 moved to its multiple 336 beside a second season of 168)."""
    return m0 > 0 and m1 > 0 and max(m0, m1) % min(m0, m1) == 0


@compiled
def smoothing_seasons(m0: int, m1: int, v: int) -> tuple[int, int]:
    """The season lengths variant ``v``'s smoothing holds for a series' seasons ``(m0, m1)`` (0 = none): the
    longer alone, in the first table, where ``ONE_TABLE[v]`` and it is a multiple of the shorter; else both."""
    if ONE_TABLE[v] and _multiple(m0, m1):
        return max(m0, m1), 0
    return m0, m1


@compiled
def naive_season(m0: int, m1: int) -> int:
    """The season the seasonal naive reads back: the longer of two where it is a multiple of the shorter (the
    same hour a week back holds both patterns: a day back, every weekend's first and last day were a day off),
    else the first."""
    return max(m0, m1) if _multiple(m0, m1) else m0


@compiled
def _clamp(x: float) -> float:
    return within(x, AR_CLAMP)


@compiled
def local_scale(scale: np.ndarray, level: np.ndarray, b: int, k: int) -> float:
    """The scale errors are measured in: the local scale, or ``UNIT_RELATIVE`` of the (units,
    trend's) level while it is 0 (a flat series), never below ``UNIT_FLOOR``."""
    return max(scale[b, k], UNIT_RELATIVE * abs(level[b, 0, REFERENCE, k]), UNIT_FLOOR)


@compiled
def _young_taken(
    value: float, forecast: float, previous: float, earlier: float, after_observed: bool, scale: float
) -> tuple:
    """What the smoothing takes of a young value, and whether it is a young level shift: the value, but at most
    ``SMOOTHING_CLIP`` local ``scale``s (as it was before the value) from ``forecast``, the quick level's one-step
    forecast (``QUICK``); the value as it came, a level shift, where the two values before it (``previous``,
    observed: ``after_observed``, and ``earlier``, as the ring holds it: a missing one imputed near the forecasts)
    were as far beyond on the same side (a third in a row, as ``outliers``' default run: a flat or tiny start
    that then moves for good, a new product's or a counter's, was followed 5 to 15 values late: 12.5 times the
    MAE, a review; at the second in a row, a burst of two glitches was a shift, a hostile test). The value itself,
    not ``forecast`` plus its distance, where it is within them: 1e-300 a step after 1e36 came back as 0, its log
    as the log variants' 0 (a forecast of 6e269 where the values are at most 1e36, the series restarted every 20
    values); and where the distance is not a number (a broken forecast: the value as it came)."""
    gap, limit = value - forecast, SMOOTHING_CLIP * scale
    if not abs(gap) > limit:
        return value, False
    behind, further = previous - forecast, earlier - forecast
    if after_observed and behind * gap > 0 and abs(behind) > limit and further * gap > 0 and abs(further) > limit:
        return value, True
    return forecast + (limit if gap > 0 else -limit), False


@compiled
def _phase(step: int, m: int, max_season: int) -> int:
    return min(step % max(m, 1), max_season - 1)


@compiled
def allowed_experts(out: np.ndarray, positive: bool, seasonal: bool, scored: float) -> None:
    """Which experts may take weight, ``out`` [E]: the log experts only while the series has
    been ``positive``, the seasonal naive and the second seasonal family (gamma 0.4) only
    with a season (``seasonal``: without one the two families' levels forecast alike, and a
    duplicate would double its vote in the combination; their trends differ by their beta alone,
    and a young series' trend, from a few changes, is the slower one's), the two AR experts once the series
    has ``scored`` (one-step errors scored: its values but the first) as many values as they
    have coefficients (``AR_MIN_SCORED``, ``AR_CHANGES_MIN_SCORED``), the median only without a
    season (a level that ignores the season cannot forecast it), the others always."""
    out[:] = True
    out[SEASONAL_NAIVE] = seasonal
    for first in SECOND_FAMILY:
        out[first : first + 4] = seasonal
    if not positive:
        out[LOG_EXPERTS[0] : LOG_EXPERTS[1]] = False
    out[AR] = scored >= AR_MIN_SCORED
    out[AR_CHANGES] = scored >= AR_CHANGES_MIN_SCORED
    out[MEDIAN] = not seasonal
    out[AR_LEVELS] = scored >= AR_LEVELS_MIN_SCORED
    out[AR_SHORT] = scored >= AR_SHORT_MIN_SCORED


@compiled
def allowed(positive: np.ndarray, lengths: np.ndarray, scored: np.ndarray, out: np.ndarray) -> None:
    """``allowed_experts`` of each row and feature: ``out`` [B, E, d]."""
    n_rows, _, d = out.shape
    for b in range(n_rows):
        for k in range(d):
            allowed_experts(out[b, :, k], positive[b, k], lengths[b, k, 0] > 0, scored[b, k])


# -- the seasonal AR: z_t = (y_t - y_{t-1}) - (y_{t-m} - y_{t-m-1}) on the lags 1, 2, 3, m, m + 1 --


@compiled
def _z(ring: np.ndarray, slot: int, k: int, s: int, m: int, jump: int) -> float:
    """z at step ``s`` from the values (steps clamped to >= 1; m = 0: the change alone), the change at
    the series' last level shift's jump (``jump``: ``ar_changes.jump_at``, 0: none) read as the one before it
    (``ar_changes.change``). (The ring is read last on every path: read last within the branch, its reference
    count was left to a merge of the paths that the compiler cannot pair with the one at the call's start.)"""
    back = ar_changes.change(ring, slot, k, s - m, jump) if m > 0 else 0.0  # (z - 0.0 is z, bit for bit)
    return ar_changes.change(ring, slot, k, s, jump) - back


@compiled
def _z_formed(s: int, m: int, newest: int, r: int) -> bool:
    """Every value z at step ``s`` needs is at a step >= 1 and in the ring (as seen from the
    newest step of the inputs read together, ``newest``)."""
    deepest = s - 1 - m
    return deepest >= 1 and deepest > newest - r


@compiled
def _ar_lags(m: int) -> tuple[int, int, int, int, int]:
    return (1, 2, 3, m, m + 1)


@compiled
def _advance_ar(
    theta: np.ndarray,
    p: np.ndarray,
    ring: np.ndarray,
    slot: int,
    b: int,
    k: int,
    t: int,
    observed: bool,
    m: int,
    scale: float,
    work: np.ndarray,
    jump: int,
) -> None:
    """One recursive-least-squares step on z_t normalised by ``scale`` (``m`` the first
    season, 0 = none: then the lags m, m + 1 are unused); theta [B, d, K], p [B, d, K, K]
    updated in place at [b, k] where the step is usable and its result finite, and ``t`` is no
    level shift's jump (``jump``, ``ar_changes.jump_at``'s step: ``ar_changes.change``); ``work``
    [3 + K, >= K] scratch (``rls_step``: the inputs phi in its row 0)."""
    r, order = ring.shape[1], AR_ORDER
    if not (observed and _z_formed(t, m, t, r)) or t == jump:  # (``jump`` is 0 or a step >= 4)
        return
    lags = _ar_lags(m)
    newest = t - 1 if m > 0 else t  # the newest input's step (lag m = 0 reads step t, unused)
    work[0, :order] = 0.0  # phi
    for i in range(order):
        if i < 3 or m > 0:
            s = t - lags[i]
            if not _z_formed(s, m, newest, r):
                if m > 0:
                    return  # a seasonal AR needs all its inputs
                continue
            work[0, i] = _clamp(_z(ring, slot, k, s, m, jump) / scale)
    target = _clamp(_z(ring, slot, k, t, m, jump) / scale)
    rls_step(theta, p, b, k, work, target, AR_FORGET, AR_MAX_TRACE, AR_CLAMP)


@compiled
def _ar_path(
    out: np.ndarray,
    row: int,
    theta: np.ndarray,
    ring: np.ndarray,
    slot: int,
    b: int,
    k: int,
    t: int,
    m: int,
    scale: float,
    work: np.ndarray,
    tracked: int,
    jump: int,
) -> None:
    """The seasonal AR's forecasts ``out[row, :, AR, k]`` (``out`` [B', H, E, d]) of steps
    t + 1 .. t + H of row ``b``: z rolled forward with its own predictions, each within +-PATH_BOUND times
    the largest of the last m + 4 z (the window the recursion reads from: lags 1-3, m, m + 1;
    ``ar_changes.PATH_BOUND``), and y_s =
    y_{s-1} + (y_{s-m} - y_{s-m-1}) + z_s; past the ``tracked`` horizons (``calibrated_horizon``)
    z is 0: the path goes on from where it is with last season's changes (flat without a season).
    Each z is bounded, not their sum: a 6-value series ending in a spike (N(10, 1), then 30) was
    forecast 10,092 at h = 1,000 by this member and 862 by the served combination, whose weights
    past the tracked horizons are those of the last (a review, session 42). ``work`` [2, >= m + 4 +
    H] the caller's scratch; ``jump`` the step of the series' last level shift's jump (``ar_changes.jump_at``,
    0: none), whose change reads as the one before it, in z and in last season's changes
    (``ar_changes.change``)."""
    r, horizon = ring.shape[1], out.shape[1]
    depth = m + 4  # the past values the recursion reaches (lag m + 1 of z, and y_{s-m-1})
    work[:2, : depth + horizon] = 0.0  # y at steps t - depth + 1 .., then the forecasts (row 0); z (row 1)
    for i in range(depth):
        s = t - depth + 1 + i
        work[0, i] = ring_value(ring, slot, k, s)
        if _z_formed(s, m, t, r):
            work[1, i] = _z(ring, slot, k, s, m, jump)
    bound = ar_changes.path_bound(work[1], depth, 0.0)  # of the window's z
    lags = _ar_lags(m)
    for n in range(depth, depth + horizon):
        z_next = 0.0  # past the tracked horizons: no change of its own (nothing to sum)
        if n - depth < tracked:
            acc = 0.0
            for i in range(AR_ORDER):
                if i < 3 or m > 0:
                    acc += theta[b, k, i] * _clamp(work[1, n - lags[i]] / scale)
            z_next = within(_clamp(acc) * scale, bound)
        work[0, n] = work[0, n - 1] + z_next
        if m > 0:  # last season's change (a past one as ``_z`` reads it: a level shift's, the one before it)
            back = n - m
            if back < depth:
                work[0, n] += ar_changes.change(ring, slot, k, t - depth + 1 + back, jump)
            else:
                work[0, n] += work[0, back] - work[0, back - 1]
        work[1, n] = z_next
    for h in range(horizon):
        out[row, h, AR, k] = work[0, depth + h]


# -- the tick ------------------------------------------------------------------------


@compiled
def advance(
    slot,
    step,
    y,
    mask,
    shifted,
    ring,
    season,
    lengths,
    scale,
    level,
    trend,
    positive,
    nonneg,
    seen,
    missing,
    ar,
    ar_p,
    arc,
    arc_p,
    sdiff,
    excursion,
    repaired,
    median,
    arl,
    arl_p,
    arl_mean,
    arl_count,
    arl_ref,
    arl_unit,
    arl_from,
    ars,
    ars_p,
    ars_ref,
    ars_unit,
    shift_at,
) -> None:
    """Fold value ``y`` [B, d] (imputed where ``mask`` is False) of step ``step`` [B] into
    each row: the smoothing (levels and the trend from the deseasonalised value, then the
    seasons against the trend's level), the local scale, the ring, both ARs. Where ``shifted``
    [B, d] (a level shift, ``outliers.clean``) the trend's level is the deseasonalised value
    and its trend is kept: smoothed, a shift of 990 in a series of level 10 and noise 1 became a
    trend, and the multiplicative one's 12-step forecast, 9 values later, was 20,453 (a hostile
    test: the served 12-step mean 2,575 with an interval of +-40, the new level 1,000)."""
    n_rows, d = y.shape
    r, max_season = ring.shape[1], season.shape[4]
    u = np.empty(4)
    parts = np.zeros((2, 4))  # the seasons' components at this step, per variant
    held = np.zeros((4, 2), dtype=np.int64)  # the season lengths each variant's tables hold (``smoothing_seasons``)
    widest = max(AR_ORDER, ar_changes.K, ar_levels.K)  # (every fit's K: ``rls_step`` writes rows 3 .. 3 + K)
    work = np.empty((3 + widest, widest))  # the RLS steps' scratch (``rls_step``)
    for b in range(n_rows):
        s, t = slot[b], step[b]
        for k in range(d):
            value, observed = y[b, k], mask[b, k]
            first = observed and not seen[b, k]  # the smoothing starts from the first observed value
            before = scale[b, k]  # the scale a young value is judged in (``SMOOTHING_CLIP``)
            young = observed and not first and t <= YOUNG and before > 0 and not shifted[b, k]
            positive[b, k] = positive[b, k] and (value > 0 or not observed)  # an imputed value decides nothing
            nonneg[b, k] = nonneg[b, k] and (value >= 0 or not observed)
            m = (lengths[b, k, 0], lengths[b, k, 1])
            for v in range(4):
                held[v, 0], held[v, 1] = smoothing_seasons(m[0], m[1], v)
                for j in range(2):
                    parts[j, v] = season[s, v, j, k, _phase(t, held[v, j], max_season)] if held[v, j] > 0 else 0.0
            previous = ring_value(ring, s, k, t - 1)  # the value before it (read by the clip and the scale)
            taken, young_shift, forecast = value, False, 0.0  # what the smoothing takes of it
            if young:  # (t >= 3: the scale needs a change)
                forecast = level[b, 0, QUICK, k] + parts[0, 0] + parts[1, 0]
                earlier = ring_value(ring, s, k, t - 2)
                taken, young_shift = _young_taken(value, forecast, previous, earlier, missing[b, k] == 0, before)
            if observed and missing[b, k] == 0:  # a change of the scale is one between two observed values
                change = abs(value - previous)
                if young_shift:  # the change the clip held back a value before: as a shift's first value gave
                    change = abs(value - forecast)
                elif young:
                    change = min(change, SMOOTHING_CLIP * before)  # a young spike grows the scale this much at most
                elif (
                    shifted[b, k]
                    and t > YOUNG
                    and t - 3 >= max(1, t - r + 1)
                    and ar_changes.outgrows(ring, s, k, t, change)
                ):  # a level shift's jump is no change of the spread: the change before it (a young series'
                    change = abs(previous - ring_value(ring, s, k, t - 2))  # shift gives it the change, _young_taken)
                scale[b, k] = SCALE_DECAY * before + (1 - SCALE_DECAY) * change if before > 0 else change
            ring[s, (t - 1) % r, k] = value
            if observed and m[0] > 0 and t - m[0] >= 1:
                excursions.step(ring, s, k, t, m[0], local_scale(scale, level, b, k), sdiff, excursion, repaired, b)
            logged = math.log(taken) if taken > 0 else 0.0
            u[0], u[1], u[2], u[3] = taken, taken, logged, logged  # each variant's value: units, log units
            restart = (shifted[b, k] and observed) or young_shift  # a level shift (``outliers``'s, or a young one)
            for v in range(4):
                longest = max(held[v, 0], held[v, 1])
                stable = TREND_STABLE[v] if held[v, 1] == 0 else TREND_STABLE_TWO[v]
                against = REFERENCE if longest <= stable else TRENDLESS  # (TREND_STABLE's comment)
                if first:
                    level[b, v, :, k] = u[v]
                    trend[b, v, k] = 0.0
                else:
                    deseasoned = u[v] - (parts[0, v] + parts[1, v])
                    for a in range(3):
                        level[b, v, a, k] = ALPHAS[a] * deseasoned + (1 - ALPHAS[a]) * level[b, v, a, k]
                    if restart:  # a level shift is not a trend: the trend's level starts there,
                        level[b, v, 3, k] = deseasoned  # and the seasons' reference (a review: past TREND_STABLE the
                        level[b, v, against, k] = deseasoned  # shift leaked into the seasons, 317 for 2 a season later)
                        level[b, v, SLOW, k] = deseasoned  # and the slow level: a shift is a new level
                    else:
                        old_level, old_trend = level[b, v, 3, k], trend[b, v, k]
                        new_level = ALPHAS[3] * deseasoned + (1 - ALPHAS[3]) * (old_level + PHI * old_trend)
                        level[b, v, 3, k] = new_level
                        beta = V_BETAS[v]
                        trend[b, v, k] = beta * (new_level - old_level) + (1 - beta) * PHI * old_trend
                gamma, rest = V_GAMMAS[v], parts[1, v]
                for j in range(2):  # the second season is measured against the updated first one
                    if held[v, j] > 0:
                        updated = gamma * (u[v] - level[b, v, against, k] - rest) + (1 - gamma) * parts[j, v]
                        season[s, v, j, k, _phase(t, held[v, j], max_season)] = updated
                        rest = updated
            seen[b, k] = seen[b, k] or observed
            missing[b, k] = 0 if observed else missing[b, k] + 1
            unit = local_scale(scale, level, b, k)
            if first:
                median[b, k] = value
            elif observed:  # MEDIAN_STEP local scales toward the value, never past it
                move = MEDIAN_STEP * unit
                median[b, k] += within(value - median[b, k], move)
            # the series' last level shift's jump: its change is none (``ar_changes.change``)
            jump = ar_changes.jump_at(ring, s, k, shift_at[b, k], t - r + 1)
            _advance_ar(ar, ar_p, ring, s, b, k, t, observed, m[0], unit, work, jump)
            ar_changes.advance(arc, arc_p, ring, s, b, k, t, observed, unit, work, jump)
            ar_levels.advance(  # the long AR on the levels, and the short one, on the same mean
                arl, arl_p, arl_mean, arl_count, arl_ref, arl_unit, arl_from, ars, ars_p, ars_ref, ars_unit,
                ring, s, b, k, t, observed, shifted[b, k], unit, work,
            )  # fmt: skip


@compiled
def paths(
    out,
    tracked,
    far_at,
    every,
    slot,
    step,
    ring,
    season,
    lengths,
    scale,
    level,
    trend,
    positive,
    ar,
    arc,
    median,
    arl,
    arl_ref,
    arl_unit,
    arl_from,
    ars,
    ars_ref,
    ars_unit,
    shift_at,
) -> None:
    """Every expert's forecasts of steps t + 1 .. t + H into ``out`` [B, H + F, E, d] (the order
    of ``experts.NAMES``), then of the far horizons ``far_at`` [F] (ascending, past H; none: an
    empty array): a tick's (``tick_kernels``), at a step divisible by ``every``
    (``calibration.FAR_EVERY``); NaN at the others, where no far forecast is remembered. Reads the
    rows, changes nothing. Past the ``tracked`` horizons (the combination's: ``calibrated_horizon``)
    the seasonal AR adds no change (``_ar_path``). With far horizons the AR experts are rolled once
    to the furthest in a row's scratch and read at the horizons wanted (to H alone where none is)."""
    n_rows, width, experts, d = out.shape
    far = far_at.shape[0]
    horizon = width - far  # the consecutive horizons 1 .. H
    furthest = far_at[far - 1] if far > 0 else horizon
    r, max_season = ring.shape[1], season.shape[4]
    damped = np.empty(furthest)  # sum_{i<=h} phi^i
    total = 0.0
    for h in range(furthest):
        total += PHI ** (h + 1)
        damped[h] = total
    seasonal = np.empty(4)
    held = np.zeros((4, 2), dtype=np.int64)  # the season lengths each variant's tables hold (``smoothing_seasons``)
    longest = 0  # the longest first season of the rows: the AR path reaches m + 4 values back
    for b in range(n_rows):
        for k in range(d):
            longest = max(longest, lengths[b, k, 0])
    # the AR paths' scratch: ``_ar_path``'s two rows, then a row for each of the three rolled together (below)
    work = np.empty((5, max(longest + 4, ar_changes.ORDER) + furthest))
    rows_c, rows_l, rows_s = work[2], work[3], work[4]  # ar_changes, ar_levels, ar_short (views made once per call)
    rolled = np.empty((1, furthest if far > 0 else 0, experts, d))  # a row's AR paths to the furthest
    rolled_near = np.empty((1, horizon if far > 0 else 0, experts, d))  # or to H alone
    for b in range(n_rows):
        s, t = slot[b], step[b]
        remembered = far > 0 and t % every == 0
        made = width if remembered else horizon  # the forecasts made: the far ones at a remembered step
        for k in range(d):
            last = ring_value(ring, s, k, t)
            m = (lengths[b, k, 0], lengths[b, k, 1])
            lag = naive_season(m[0], m[1])
            short = min(m[0], m[1]) if m[1] > 0 else m[0]
            for v in range(4):
                held[v, 0], held[v, 1] = smoothing_seasons(m[0], m[1], v)
            for i in range(made):
                h = i if i < horizon else far_at[i - horizon] - 1  # 0-based: the forecast of step t + h + 1
                ahead = t + h + 1
                out[b, i, NAIVE, k] = last
                out[b, i, MEDIAN, k] = median[b, k]
                back = ahead - lag * ((h + lag) // max(lag, 1))  # the same phase, a whole season back
                usable = lag > 0 and back >= 1 and back > t - r
                if not usable and lag != short:  # a series younger than the longer season: the shorter one back
                    back = ahead - short * ((h + short) // short)
                    usable = back >= 1 and back > t - r
                out[b, i, SEASONAL_NAIVE, k] = ring_value(ring, s, k, back) if usable else last
                for v in range(4):
                    seasonal[v] = 0.0
                    for j in range(2):
                        if held[v, j] > 0:
                            seasonal[v] += season[s, v, j, k, _phase(ahead, held[v, j], max_season)]
                for v in range(4):
                    for a in range(4):
                        if a < 3:
                            smooth = level[b, v, a, k] + seasonal[v]
                        else:  # the damped trend
                            smooth = level[b, v, a, k] + damped[h] * trend[b, v, k] + seasonal[v]
                        at = SMOOTH + 4 * v + a
                        if v < 2:
                            out[b, i, at, k] = smooth
                        elif positive[b, k]:  # log units, i.e. multiplicative
                            out[b, i, at, k] = math.exp(min(smooth, LOG_CAP))
                        else:  # the series has not been positive: the units expert's forecast
                            out[b, i, at, k] = out[b, i, at - 8, k]
            for i in range(made, width):
                out[b, i, :, k] = np.nan  # no far forecast from this step
            unit = local_scale(scale, level, b, k)
            jump = ar_changes.jump_at(ring, s, k, shift_at[b, k], t - r + 1)  # (``ar_changes.change``)
            to = out if far == 0 else (rolled if remembered else rolled_near)  # the AR paths: out's row b, or
            o = b if far == 0 else 0  # a scratch's row 0 (to the furthest far horizon, or H), read below
            _ar_path(to, o, ar, ring, s, b, k, t, m[0], unit, work, tracked, jump)
            # The paths of ar_changes, ar_levels and ar_short, rolled a step at a time together: each step of a
            # path waits for the one before (a sum of 12 products that starts from it), and one path after the
            # other the CPU had nothing to do meanwhile; interleaved, the three recursions overlap (the tick's
            # kernels after the seasons at a step with far horizons, rolled to 48: 45.9 -> 38.1 ms at 10,000 series,
            # session 58). Each is summed in its own order, as alone: the same paths, bit for bit.
            changes_bound = ar_changes.path_start(arc, ring, s, b, k, t, unit, rows_c, jump)
            long_bound = ar_levels.path_start(arl, arl_ref, arl_unit, arl_from, ring, s, b, k, t, rows_l)
            short_bound = ar_levels.path_start(ars, ars_ref, ars_unit, arl_from, ring, s, b, k, t, rows_s)
            total = 0.0  # the changes' sum (in the series' units)
            for h in range(to.shape[1]):
                total += ar_changes.path_next(arc, b, k, rows_c, ar_changes.ORDER + h, changes_bound) * unit
                to[o, h, AR_CHANGES, k] = last + total
                to[o, h, AR_LEVELS, k] = ar_levels.path_next(arl, arl_ref, arl_unit, b, k, rows_l, h, long_bound, last)
                to[o, h, AR_SHORT, k] = ar_levels.path_next(ars, ars_ref, ars_unit, b, k, rows_s, h, short_bound, last)
            if far == 0:
                continue
            for e in (AR, AR_CHANGES, AR_LEVELS, AR_SHORT):
                for i in range(made):
                    out[b, i, e, k] = to[0, i if i < horizon else far_at[i - horizon] - 1, e, k]
