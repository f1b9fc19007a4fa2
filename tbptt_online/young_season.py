"""A provisional season for a young series: one the autocorrelation cannot test yet.

``season.detect_periods`` asks for 2.5 cycles in the data, and in practice a season shows
there only from about 3 to 4 (its peak is judged against the white-noise spread of ``r``
at its lag, about 1 / sqrt(n - k): a monthly season needs 36 values). A 144-value monthly
series would forecast without its season for a quarter of its life. This test covers the
periods of 2 to 4 cycles (lags in [max(MIN_LAG, n / 4), n / 2]) when the autocorrelation
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

import torch

from tbptt_online.season import significantly_better, z_one_sided

MIN_LAG = 4  # shorter lags: a smooth series' changes repeat at lag 2 or 3 without any season
GAIN = 0.7  # the seasonal naive of the changes must cut their mean's error by 30 %...
FALSE_RATE = 0.01  # ...and be significant at 1 % over the lags tested
MIN_PAIRS = 8  # fewer changes forecast at a lag than this: not tested
MIN_CYCLES_SMOOTH = 3  # the values' test asks for 3 cycles: at 2, a smooth wander (integrated AR(1)) may repeat
VALUE_GAIN = 0.6  # the seasonal naive of the values must cut a straight line's error by 40 %


def young_periods(values: torch.Tensor, longest: int) -> torch.Tensor:
    """[R] int64: per row of ``values`` [R, n] (finite), the provisional season (0: none)
    among lags in [max(MIN_LAG, n // 4), min(n // 2, longest)]; none once ``n // 3 >=
    longest`` (the autocorrelation tests every season then).

    >>> t = torch.arange(24, dtype=torch.float64)
    >>> monthly = 100 + t + 10 * torch.sin(2 * torch.pi * t / 12) + torch.tensor([0.3, -0.2] * 12)
    >>> noise = torch.randn(24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> young_periods(torch.stack([monthly, noise]), 336).tolist()
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
    size = changes.abs()  # [R, L] |c_t|: the error of c_t ~ mean(c) = 0, read by every lag
    still = (~moved).any(dim=1).nonzero().squeeze(1)  # rows with a change of exactly 0 (counts: most of theirs)
    for m in lags:  # the shortest significant lag: a multiple of it is judged later (hybrid._best_multiple)
        seasonal = (changes[:, m:] - changes[:, :-m]).abs()  # [R, k] c_t ~ c_{t-m}
        better = significantly_better(seasonal, size[:, m:], GAIN, z)
        if len(still):  # those rows tested on the pairs where c_t or c_{t-m} moved (module doc)
            pairs = moved[still, m:] | moved[still, :-m]  # [S, k]
            enough = pairs.sum(dim=1) >= MIN_PAIRS
            better[still] = enough & significantly_better(seasonal[still], size[still, m:], GAIN, z, where=pairs)
        out = torch.where((out == 0) & better, m, out)
    smooth = (out == 0).nonzero().squeeze(1)  # a smooth season hides in the changes: look at the values
    if len(smooth):
        out[smooth] = smooth_periods(values[smooth], [m for m in lags if m * MIN_CYCLES_SMOOTH <= n])
    return out


def smooth_periods(values: torch.Tensor, lags: list[int]) -> torch.Tensor:
    """[R] int64: per row of ``values`` [R, n], the lag of ``lags`` (0: none) whose seasonal
    naive forecast of the *values* with the drift, y_t ~ y_{t-m} + mean(y_t - y_{t-m}), beats
    the values' straight line (least squares over the row) by ``VALUE_GAIN`` and
    significantly (``FALSE_RATE`` over the lags, Bonferroni); of several, the best fit.

    Why the values: differencing shrinks a season of period m by 2 sin(pi / m) against the
    noise (0.26 at m = 24), so a smooth daily cycle under hourly noise never shows in the
    changes at two cycles. Why a straight line as the alternative: it is what a series
    without a season is best described by over a short window, and the test is one-sided
    against the usual seasonless rows: white noise's seasonal difference has twice its
    variance, a random walk's or an AR(1)'s lag-m difference grows with m while their
    residual about a line over n = 2m to 4m values stays smaller.

    >>> t = torch.arange(48, dtype=torch.float64)
    >>> daily = 30 + 10 * torch.sin(2 * torch.pi * t / 24) + torch.randn(48, generator=torch.Generator().manual_seed(1))
    >>> smooth_periods(daily[None], list(range(12, 25))).tolist()
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
    best = torch.full((r,), math.inf, dtype=values.dtype)
    for m in lags:
        seasonal = _lag_errors(values, m)  # [R, n - m]
        error = seasonal.mean(dim=1)
        better = significantly_better(seasonal, line[:, m:], VALUE_GAIN, z) & (error < best)
        rows = better.nonzero().squeeze(1)  # few: the half-cycle test only where the line's passed
        if len(rows):
            half = _lag_errors(values[rows], m // 2)[:, m - m // 2 :]  # [G, n - m] half a cycle back
            better[rows] = significantly_better(seasonal[rows], half, VALUE_GAIN, z)
            out, best = torch.where(better, m, out), torch.where(better, error, best)
    return out


def _lag_errors(values: torch.Tensor, m: int) -> torch.Tensor:
    """[R, n - m]: |y_t - y_{t-m} - drift| for t >= m, the drift the mean of y_t - y_{t-m}."""
    step = values[:, m:] - values[:, :-m]
    return (step - step.mean(dim=1, keepdim=True)).abs()
