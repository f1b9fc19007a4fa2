"""A provisional season for a young series: one the autocorrelation cannot test yet.

``season.detect_seasons`` asks for 2.5 cycles in the data, and in practice a season shows
there only from about 3 to 4 (its peak is judged against the white-noise spread of ``r``
at its lag, about 1 / sqrt(n - k): a monthly season needs 36 values). A 144-value monthly
series would forecast without its season for a quarter of its life. This test covers the
seasons of 2 to 4 cycles (lags in [max(MIN_LAG, n / 4), n / 2]) when the autocorrelation
found none: a lag m is a season when the seasonal naive forecast of the *changes*,
c_t ~ c_{t-m}, beats their mean, c_t ~ mean(c), on the changes both forecast: mean
absolute error below ``GAIN`` of the mean's and the paired improvement significant at
``FALSE_RATE`` over the lags tested (Bonferroni, one-sided). A series with changes of exactly 0
(piecewise constant: a count of replicas, a setting) is tested on the pairs where c_t or c_{t-m}
moved, and fewer than ``MIN_PAIRS`` of them test nothing: where neither moved, the mean's error is
the drift and the seasonal naive's 0, so one step of 5 to 50 in 120 flat values (a drift of 0.38
a change) gave a "season" of 30 from 88 such ties of its 89 pairs (a hostile test: the forecast
of the flat 50 then jumped to 35 and 72, a season after the step). The changes are free of a
trend (a trend is their mean); white noise or a random walk gives changes whose lag-m
difference has twice their variance, so the test is one-sided against them. The lowest
lag wins (a multiple of it is taken when it fits clearly better, as for a season
the autocorrelation found). Where the changes show none, the *values* are tested (``smooth_seasons``)
at lags of 3 cycles or more, and at the periods of clocks and calendars (``CLOCK_LAGS``) from 2
cycles, against a stricter bar (``CLOCK_GAIN``), their significance a family of its own (``CLOCK_FALSE_RATE``),
and up to ``LATE_CYCLES`` (6) cycles, past the window, where the autocorrelation still misses a smooth season.
What it finds is provisional: the next detection decides again.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tbptt_online.compiled import compiled, inlined, over_rows
from tbptt_online.season import sparse_changes, winsor_centred, z_one_sided

MIN_LAG = 4  # shorter lags: a smooth series' changes repeat at lag 2 or 3 without any season
GAIN = 0.7  # the seasonal naive of the changes must cut their mean's error by 30 %...
FALSE_RATE = 0.01  # ...and be significant at 1 % over the lags tested
MIN_PAIRS = 8  # fewer changes forecast at a lag than this: not tested
MIN_CYCLES_SMOOTH = 3  # the values' test asks for 3 cycles: at 2, a smooth wander (integrated AR(1)) may repeat
# ...but the periods of clocks and calendars are tested from 2 cycles, against a stricter bar: months in a
# year, days in a week, hours, half-hours, quarter-hours and 5 minutes in a day, weeks in a year, hours and
# half-hours in a week.
# Most seasonal streams have one of them; a daily cycle in hourly data was served from value 66-72, now 48
# (server_metrics' hosts: their 12-step MAE 2-4 % lower), three years of weekly sales had no season before
# value 192 (a new user's, session 54: now 120 in 8 of 10). Seasonless rows given a season at any young
# detection to 576 values (4,000 each): integrated AR(1) at 0.8, 1.6 -> 3.1 %; at 0.95, 3.8 -> 5.6 %; random
# walks 0.13 -> 0.37 %; white noise 0.32 % as before
# Days in a week (7) too, since session 56: daily products with a weekly profile (Poisson, mean 20-80; 100 over 5
# seeds) had none before value 24; now 21 of 100 have it at value 16 or 20 (the looks of DETECT_UNSETTLED; 79 of 100 at
# mean 100-300, 41 with a weekend 0.3-0.4x) and their one-step MAE over the seasonal naive's, days 21-27, fell from
# 1.48 to 1.39 (1.54 -> 1.03, 1.50 -> 1.35). Seasonless rows given 7 at value 16 or 20 (4,000 each): +0.00 to 0.10
# points; benchmarks.false_seasons and true_seasons and the 39 accuracy streams unchanged to all digits
CLOCK_LAGS = (7, 12, 24, 48, 52, 96, 168, 288, 336)
CLOCK_GAIN = 0.5  # at 2 to 3 cycles the seasonal naive of the values must cut the line's error by half
CLOCK_FALSE_RATE = 0.05  # ...and be significant at 5 %, over the clock lags tested at 2 cycles (a family of their own)
# and against the cycles' means. Until session 64 they shared the 1 % (Bonferroni) of the lags of 3 cycles (at 24
# values 12 with 6, 7 and 8: z 2.81) and both paired tests ran on 12 pairs at 1 %: a strong season failed them
# where its ratio passed (random monthly profiles of sd 4 under unit noise: 12 at 24 values in 0.665 of 400 rows,
# now 0.9125; usaccdeaths: ratio 0.35, z 2.31, against the cycles' means 1.83). The ratio is what keeps seasonless
# rows out: given a clock season at 2 cycles at any young detection to 576 values (2,000 each) white noise 0.05 ->
# 0.10 %, random walks 0.35 -> 0.40 %, integrated AR(1) of 0.5 0.75 -> 0.80 %, of 0.8 1.80 % as before, of 0.95
# 1.70 -> 1.80 %. Not for a row whose changes are mostly equal (``season.sparse_changes``: a count mostly 0): its
# paired errors are a few events' and its lags stay one family at FALSE_RATE (events of rate 0.05 given a season
# at some young detection to 144 values: 0.05 % before, 2.40 % with the clock family's 5 %, 0.05 % with this)
LATE_CYCLES = 6  # a clock lag is tested on the values up to this many cycles, past the window [n / 4, n / 2]
# (VALUE_GAIN, FALSE_RATE, a family of its own). Why: there the autocorrelation alone tested it, and for fewer than
# about 92 values its whitening (8 blocks of the periodogram smoothed over +-3) cannot follow the differenced noise's
# rise to the Nyquist frequency, so a season's one line at 1 / 12 weighs little: a monthly sine of sd 2 under unit
# noise has r[12] ~ 0.41 against a threshold of 0.54 at 54 values, 0.46 at 72 (0.29 at sd 1.5 up to 90 values, 0.51
# from 92). Served by the stateless detection path (300 rows) at 54 / 60 / 66 / 72 values: 0.26 / 0.37 / 0.47 / 0.67
# -> 0.60 / 0.63 / 0.68 / 0.76 (0.56 at 48 from the young window); random profiles (many lines) unchanged. A
# seasonless row's lag-m difference over 4 to 6 cycles is worse than its straight line (the ratio's 1 % quantile
# 1.05-1.2 on white noise, random walks, AR(1) to 0.95 and integrated AR(1) 0.5 / 0.9): none of 2,000 rows a kind,
# looked at 13 lengths from 30 to 288, was given a season it had not had before
VALUE_GAIN = 0.6  # the seasonal naive of the values must cut a straight line's error by 40 %
EXACT = 1e-14  # a mean error below this share of a row's largest |value| is rounding (a few ulps of it, 1e-15:
# the sums' and the drift's): an exact fit


def young_seasons(values: torch.Tensor, longest: int) -> torch.Tensor:
    """[R] int64: per row of ``values`` [R, n] (finite), the provisional season (0: none)
    among lags in [max(MIN_LAG, n // 4), min(n // 2, longest)]; none once ``n // 3 >=
    longest`` (the autocorrelation tests every season then).

    >>> t = torch.arange(24, dtype=torch.float64)
    >>> monthly = 100 + t + 10 * torch.sin(2 * torch.pi * t / 12) + torch.tensor([0.3, -0.2] * 12)
    >>> noise = torch.randn(24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> young_seasons(torch.stack([monthly, noise]), 336).tolist()
    [12, 0]
    """
    r, n = values.shape
    out = torch.zeros(r, dtype=torch.int64)
    lo, hi = max(MIN_LAG, n // 4), min(n // 2, longest)
    if r == 0 or hi < lo or n // 3 >= longest:
        return out
    changes = values.diff(dim=1)  # [R, L]
    moved = changes != 0  # [R, L] (a piecewise-constant series: most changes exactly 0)
    # a trend is the changes' mean: winsorised, a level shift's is not one (``season._robust_centred``'s centring)
    changes, _ = winsor_centred(changes)  # [R, L]
    length = changes.shape[1]
    lags = [m for m in range(lo, hi + 1) if length - m >= MIN_PAIRS]
    if not lags:
        return out
    z = z_one_sided(FALSE_RATE, len(lags))
    still = (~moved).any(dim=1)  # [R] rows with a change of exactly 0 (counts: most of theirs)
    scale = values.abs().amax(dim=1).numpy()  # [R] (``EXACT``)
    arrays = (changes.numpy(), moved.numpy(), still.numpy(), scale)
    lags_array, found = np.array(lags), out.numpy()
    # the shortest significant lag: a multiple of it is judged later (hybrid._best_multiple)
    over_rows(r, lambda rows: _changes_test(*(a[rows] for a in arrays), lags_array, z, found[rows]))
    smooth = (out == 0).nonzero().squeeze(1)  # a smooth season hides in the changes: look at the values
    if len(smooth):
        three = [m for m in lags if m * MIN_CYCLES_SMOOTH <= n]
        two = [m for m in lags if m in CLOCK_LAGS and m * MIN_CYCLES_SMOOTH > n]  # (lags <= n / 2: 2 cycles)
        late = [m for m in CLOCK_LAGS if m < lo and m * LATE_CYCLES >= n and n - 1 - m >= MIN_PAIRS]  # 4-6 cycles
        rows = values if len(smooth) == r else values[smooth]  # [S, n] (noise: every row, not copied)
        gains, families = (
            [VALUE_GAIN] * len(late + three) + [CLOCK_GAIN] * len(two),
            [len(late)] * len(late) + [len(three)] * len(three) + [len(two)] * len(two),
        )
        rates = [FALSE_RATE] * len(late + three) + [CLOCK_FALSE_RATE] * len(two)
        # a row whose changes are mostly equal (a count mostly 0) has paired errors made by a few events, far
        # from the normal tail the paired tests assume: all its lags stay one family at FALSE_RATE, as before
        sparse = sparse_changes(rows) if two or late else None  # [S] bool
        if sparse is None or not bool(sparse.any()):
            out[smooth] = smooth_seasons(rows, late + three + two, gains, families, rates)
        else:  # (few rows: the counts among a detection's)
            kept = torch.zeros(len(rows), dtype=torch.int64)  # [S]
            kept[~sparse] = smooth_seasons(rows[~sparse], late + three + two, gains, families, rates)
            kept[sparse] = smooth_seasons(rows[sparse], late + three + two, gains)
            out[smooth] = kept
    return out


def smooth_seasons(
    values: torch.Tensor,
    lags: list[int],
    gains: list[float] | None = None,
    families: list[int] | None = None,
    rates: list[float] | None = None,
) -> torch.Tensor:
    """[R] int64: per row of ``values`` [R, n], the lag of ``lags`` (0: none) whose seasonal
    naive forecast of the *values* with the drift, y_t ~ y_{t-m} + mean(y_t - y_{t-m}), beats
    the values' straight line (least squares over the row) by its ``gains`` (default ``VALUE_GAIN``) and
    significantly (``FALSE_RATE`` over the lags of its family, Bonferroni: ``families`` gives each lag's
    family size; default one family of all ``lags``); of several, the best fit.

    Why the values: differencing shrinks a season of length m by 2 sin(pi / m) against the
    noise (0.26 at m = 24), so a smooth daily cycle under hourly noise never shows in the
    changes at two cycles. Why a straight line as the alternative: it is what a series
    without a season is best described by over a short window, and the test is one-sided
    against the usual seasonless rows: white noise's seasonal difference has twice its
    variance, a random walk's or an AR(1)'s lag-m difference grows with m while their
    residual about a line over n = 2m to 4m values stays smaller.

    >>> t = torch.arange(48, dtype=torch.float64)
    >>> daily = 30 + 10 * torch.sin(2 * torch.pi * t / 24) + torch.randn(48, generator=torch.Generator().manual_seed(1))
    >>> smooth_seasons(daily[None], list(range(12, 25))).tolist()
    [24]
    """
    r, n = values.shape
    out = torch.zeros(r, dtype=torch.int64)
    if r == 0 or not lags:
        return out
    t = torch.arange(n, dtype=values.dtype) - (n - 1) / 2  # [n] centred time
    mean = values.mean(dim=1, keepdim=True)  # [R, 1]
    slope = (values * t).sum(dim=1, keepdim=True) / t.square().sum()  # [R, 1] least squares
    line = (values - mean - slope * t).abs()  # [R, n] the values' distance from their straight line
    sizes = families if families is not None else [len(lags)] * len(lags)
    rates = rates if rates is not None else [FALSE_RATE] * len(lags)
    z = np.array([z_one_sided(a, size) for a, size in zip(rates, sizes, strict=True)])  # [L] Bonferroni, its family
    arrays = (values.contiguous().numpy(), line.numpy(), values.abs().amax(dim=1).numpy())
    lags_array, found = np.array(lags), out.numpy()
    gains_array = np.array(gains if gains is not None else [VALUE_GAIN] * len(lags), dtype=np.float64)
    z_one = np.array([z_one_sided(a) for a in rates])  # [L] (a second test of a lag that passed: not shared)
    over_rows(r, lambda rows: _values_test(*(a[rows] for a in arrays), lags_array, gains_array, z, z_one, found[rows]))
    return out


# -- the tests, compiled: one pass per row and lag (at 10,000 rows of a detection, a lag's few
# tensor operations over every row cost more than the arithmetic) ---------------------------------


@compiled
def _ratio_holds(candidate: float, incumbent: float, k: int, ratio: float, by_sums: bool) -> bool:
    """``season.significantly_better``'s first test from the sums of the k pairs' errors: the
    ``candidate``'s mean error below ``ratio`` of the ``incumbent``'s (``by_sums``: the sums
    compared, as the tensor code did over a still row's pairs); fewer than two pairs: False."""
    return k >= 2 and (candidate < ratio * incumbent if by_sums else candidate / k < ratio * (incumbent / k))


@compiled
def _significant(gain: float, square: float, k: int, z: float) -> bool:
    """Its second: the paired gains' mean ``gain`` above ``z`` standard errors (``square``: the
    sum of the k gains' squared deviations from their mean)."""
    return gain > z * math.sqrt(square / (k - 1)) / math.sqrt(k)


@inlined
def _floored(total: float, k: int, scale: float) -> float:
    """A sum of k errors, at least ``EXACT`` of the row's ``scale`` (its largest |value|) each:
    a noise-free row's exact fits (a staircase's lag, its multiples and half of them) differ by
    rounding alone, which decided between them (in tensor code as well as here)."""
    return max(total, EXACT * scale * k)


@inlined
def _lag_sum(x, b: int, m: int, lo: int, hi: int, drift: float) -> float:
    """sum over t in [lo, hi) of |x[b, t] - x[b, t - m] - drift|, in four partial sums (t mod
    4; four additions in flight, not one chain): ``_lag_sum_below`` with no bar."""
    return _lag_sum_below(x, b, m, lo, hi, drift, 1, math.inf)


@inlined
def _lag_sum_below(x, b: int, m: int, lo: int, hi: int, drift: float, k: int, limit: float) -> float:
    """The sum ``_lag_sum`` names, or a partial sum of it once that sum / ``k`` reaches ``limit``
    (looked at every 16 terms): a test that the full sum / k must stay below ``limit`` to pass fails
    all the same, as the terms are not negative and adding them never lowers a float's sum. A noisy
    row's seasonal naive errs past the test's bound halfway through its pairs: half the work of a
    detection's young tests at 10,000 rows of noise."""
    s0 = s1 = s2 = s3 = 0.0
    t = lo
    while t + 16 <= hi:
        for _ in range(4):
            s0 += abs(x[b, t] - x[b, t - m] - drift)
            s1 += abs(x[b, t + 1] - x[b, t + 1 - m] - drift)
            s2 += abs(x[b, t + 2] - x[b, t + 2 - m] - drift)
            s3 += abs(x[b, t + 3] - x[b, t + 3 - m] - drift)
            t += 4
        partial = (s0 + s1) + (s2 + s3)
        if partial / k >= limit:
            return partial
    while t + 4 <= hi:
        s0 += abs(x[b, t] - x[b, t - m] - drift)
        s1 += abs(x[b, t + 1] - x[b, t + 1 - m] - drift)
        s2 += abs(x[b, t + 2] - x[b, t + 2 - m] - drift)
        s3 += abs(x[b, t + 3] - x[b, t + 3 - m] - drift)
        t += 4
    while t < hi:
        s0 += abs(x[b, t] - x[b, t - m] - drift)
        t += 1
    return (s0 + s1) + (s2 + s3)


@inlined
def _lag_drift(x, b: int, m: int) -> float:
    """The mean of x[b, t] - x[b, t - m] over t in [m, n) (``x`` [R, n]), in four partial sums."""
    n = x.shape[1]
    s0 = s1 = s2 = s3 = 0.0
    t = m
    while t + 4 <= n:
        s0 += x[b, t] - x[b, t - m]
        s1 += x[b, t + 1] - x[b, t + 1 - m]
        s2 += x[b, t + 2] - x[b, t + 2 - m]
        s3 += x[b, t + 3] - x[b, t + 3 - m]
        t += 4
    while t < n:
        s0 += x[b, t] - x[b, t - m]
        t += 1
    return ((s0 + s1) + (s2 + s3)) / (n - m)


@inlined
def _tail_sums(x, b: int, out) -> None:
    """``out[t]`` = sum of |x[b, s]| over s >= t (``out`` [n + 1], out[n] = 0)."""
    n = x.shape[1]
    out[n] = 0.0
    for t in range(n - 1, -1, -1):
        out[t] = out[t + 1] + abs(x[b, t])


@compiled
def _changes_test(changes, moved, still, scale, lags, z, out) -> None:
    """``out[b]`` [R]: per row of ``changes`` [R, L] (their mean removed) the first lag m of
    ``lags`` whose seasonal naive of the changes, |c_t - c_{t-m}|, beats the mean, |c_t|, by
    ``GAIN`` and significantly (``z``), on the pairs t >= m; a row with a change of exactly 0
    (``still`` [R]) on the pairs where c_t or c_{t-m} ``moved`` [R, L] only, and on at least
    ``MIN_PAIRS`` of them. Rows with none are left as they are (0). The paired test's second
    pass only where the ratio holds (of noisy rows, few)."""
    n_rows, length = changes.shape
    tail = np.empty(length + 1)  # a row's sums of |c_t| from t on
    for b in range(n_rows):
        _tail_sums(changes, b, tail)
        for m in lags:
            if length - m < 2:  # (a lag the caller should not have asked: no two pairs)
                continue
            if still[b]:
                k, seasonal, mean = 0, 0.0, 0.0  # its pairs, the sums of |c_t - c_{t-m}| and |c_t| over them
                for t in range(m, length):
                    if moved[b, t] or moved[b, t - m]:
                        k += 1
                        seasonal += abs(changes[b, t] - changes[b, t - m])
                        mean += abs(changes[b, t])
                if k < MIN_PAIRS:
                    continue
            else:
                k = length - m
                mean = _floored(tail[m], k, scale[b])  # past GAIN of it the test fails: the sum stops there
                seasonal = _lag_sum_below(changes, b, m, m, length, 0.0, k, GAIN * (mean / k))
            seasonal, mean = _floored(seasonal, k, scale[b]), _floored(mean, k, scale[b])
            if not _ratio_holds(seasonal, mean, k, GAIN, still[b]):
                continue
            gain, square = (mean - seasonal) / k, 0.0
            for t in range(m, length):
                if not still[b] or moved[b, t] or moved[b, t - m]:
                    square += (abs(changes[b, t]) - abs(changes[b, t] - changes[b, t - m]) - gain) ** 2
            if _significant(gain, square, k, z):
                out[b] = m
                break


@compiled
def _values_test(values, line, scale, lags, gains, zs, z_ones, out) -> None:
    """``smooth_seasons`` on the rows of ``values`` [R, n] with ``line`` [R, n] their distance
    from their straight line: ``out[b]`` the best-fitting lag that passes (0: none); ``zs`` [L] each
    lag's significance (its family's Bonferroni)."""
    n_rows, n = values.shape
    tail = np.empty(n + 1)  # a row's sums of the line's errors from t on
    for b in range(n_rows):
        _tail_sums(line, b, tail)
        best = math.inf
        for i in range(len(lags)):
            m, gain_bar, z, z_cycles = lags[i], gains[i], zs[i], z_ones[i]
            k = n - m
            if k < 2:  # (a lag the caller should not have asked: no two pairs)
                continue
            drift = _lag_drift(values, b, m)
            straight = _floored(tail[m], k, scale[b])  # the line's: past VALUE_GAIN of it, or the best, the lag fails
            raw = _lag_sum_below(values, b, m, m, n, drift, k, min(gain_bar * (straight / k), best))
            error = _floored(raw, k, scale[b])  # the seasonal naive's
            mean = max(raw / k, EXACT * scale[b])  # (the same for every exact fit: the shortest lag stays)
            if not (_ratio_holds(error, straight, k, gain_bar, False) and mean < best):
                continue
            gain, square = (straight - error) / k, 0.0
            for t in range(m, n):
                square += (line[b, t] - abs(values[b, t] - values[b, t - m] - drift) - gain) ** 2
            if not _significant(gain, square, k, z):
                continue
            half = m // 2  # half a cycle back must fit worse: not a season of m / 2's harmonics
            half_drift = _lag_drift(values, b, half)
            other = _floored(_lag_sum(values, b, half, m, n, half_drift), k, scale[b])
            if not _ratio_holds(error, other, k, gain_bar, False):
                continue
            gain, square = (other - error) / k, 0.0
            for t in range(m, n):
                one = abs(values[b, t] - values[b, t - m] - drift)
                square += (abs(values[b, t] - values[b, t - half] - half_drift) - one - gain) ** 2
            if not _significant(gain, square, k, z):
                continue
            if 3 * m > n and not _beats_cycle_means(values, b, m, drift, error, gain_bar, z_cycles, scale[b]):
                continue  # at 2 cycles: a level shift between them, not a season
            out[b], best = m, mean


@inlined
def _beats_cycle_means(values, b: int, m: int, drift: float, error: float, gain_bar: float, z: float, scale: float):
    """Whether the seasonal naive of row b of ``values`` [R, n] at lag m (2m <= n < 3m; its summed
    error ``error``) beats, by ``gain_bar`` and significantly (``z``: one test), each value's forecast by the
    mean of its cycle, the cycles counted back from the row's end, on the values t >= m. Two cycles' values can
    repeat without a season: a level shifted once, between them, is repeated by the lag that spans
    it, and by its drift (100 values of 5, then 92 of 50: a season of 96 at value 192), but not
    within a cycle, where the cycles' means fit it as well."""
    n = values.shape[1]
    last, before = 0.0, 0.0
    for t in range(n - m, n):
        last += values[b, t]
        before += values[b, t - m]
    last, before = last / m, before / m
    k, cycles = n - m, 0.0
    for t in range(m, n):
        cycles += abs(values[b, t] - (last if t >= n - m else before))
    cycles = _floored(cycles, k, scale)
    if not _ratio_holds(error, cycles, k, gain_bar, False):
        return False
    gain, square = (cycles - error) / k, 0.0
    for t in range(m, n):
        one = abs(values[b, t] - values[b, t - m] - drift)
        square += (abs(values[b, t] - (last if t >= n - m else before)) - one - gain) ** 2
    return _significant(gain, square, k, z)
