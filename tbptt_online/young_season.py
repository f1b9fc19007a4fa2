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
the autocorrelation found). What it finds is provisional: the next detection decides again.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tbptt_online.compiled import compiled, inlined, over_rows
from tbptt_online.season import z_one_sided

MIN_LAG = 4  # shorter lags: a smooth series' changes repeat at lag 2 or 3 without any season
GAIN = 0.7  # the seasonal naive of the changes must cut their mean's error by 30 %...
FALSE_RATE = 0.01  # ...and be significant at 1 % over the lags tested
MIN_PAIRS = 8  # fewer changes forecast at a lag than this: not tested
MIN_CYCLES_SMOOTH = 3  # the values' test asks for 3 cycles: at 2, a smooth wander (integrated AR(1)) may repeat
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
    changes = changes - changes.mean(dim=1, keepdim=True)  # a trend is the changes' mean
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
        out[smooth] = smooth_seasons(values[smooth], [m for m in lags if m * MIN_CYCLES_SMOOTH <= n])
    return out


def smooth_seasons(values: torch.Tensor, lags: list[int]) -> torch.Tensor:
    """[R] int64: per row of ``values`` [R, n], the lag of ``lags`` (0: none) whose seasonal
    naive forecast of the *values* with the drift, y_t ~ y_{t-m} + mean(y_t - y_{t-m}), beats
    the values' straight line (least squares over the row) by ``VALUE_GAIN`` and
    significantly (``FALSE_RATE`` over the lags, Bonferroni); of several, the best fit.

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
    z = z_one_sided(FALSE_RATE, len(lags))
    arrays = (values.contiguous().numpy(), line.numpy(), values.abs().amax(dim=1).numpy())
    lags_array, found = np.array(lags), out.numpy()
    over_rows(r, lambda rows: _values_test(*(a[rows] for a in arrays), lags_array, z, found[rows]))
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
    4; four additions in flight, not one chain)."""
    s0 = s1 = s2 = s3 = 0.0
    t = lo
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
                k, seasonal, mean = length - m, _lag_sum(changes, b, m, m, length, 0.0), tail[m]
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
def _values_test(values, line, scale, lags, z, out) -> None:
    """``smooth_seasons`` on the rows of ``values`` [R, n] with ``line`` [R, n] their distance
    from their straight line: ``out[b]`` the best-fitting lag that passes (0: none)."""
    n_rows, n = values.shape
    tail = np.empty(n + 1)  # a row's sums of the line's errors from t on
    for b in range(n_rows):
        _tail_sums(line, b, tail)
        best = math.inf
        for m in lags:
            k = n - m
            if k < 2:  # (a lag the caller should not have asked: no two pairs)
                continue
            drift = _lag_drift(values, b, m)
            raw = _lag_sum(values, b, m, m, n, drift)
            error, straight = (
                _floored(raw, k, scale[b]),
                _floored(tail[m], k, scale[b]),
            )  # the seasonal naive's, the line's
            mean = max(raw / k, EXACT * scale[b])  # (the same for every exact fit: the shortest lag stays)
            if not (_ratio_holds(error, straight, k, VALUE_GAIN, False) and mean < best):
                continue
            gain, square = (straight - error) / k, 0.0
            for t in range(m, n):
                square += (line[b, t] - abs(values[b, t] - values[b, t - m] - drift) - gain) ** 2
            if not _significant(gain, square, k, z):
                continue
            half = m // 2  # half a cycle back must fit worse: not a season of m / 2's harmonics
            half_drift = _lag_drift(values, b, half)
            other = _floored(_lag_sum(values, b, half, m, n, half_drift), k, scale[b])
            if not _ratio_holds(error, other, k, VALUE_GAIN, False):
                continue
            gain, square = (other - error) / k, 0.0
            for t in range(m, n):
                one = abs(values[b, t] - values[b, t - m] - drift)
                square += (abs(values[b, t] - values[b, t - half] - half_drift) - one - gain) ** 2
            if _significant(gain, square, k, z):
                out[b], best = m, mean
