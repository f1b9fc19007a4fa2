"""A provisional season for a young series: one the autocorrelation cannot test yet.

``season.detect_periods`` asks for 2.5 cycles in the data, and in practice a season shows
there only from about 3 to 4 (its peak is judged against the white-noise spread of ``r``
at its lag, about 1 / sqrt(n - k): a monthly season needs 36 values). A 144-value monthly
series would forecast without its season for a quarter of its life. This test covers the
periods of 2 to 4 cycles (lags in [max(MIN_LAG, n / 4), n / 2]) when the autocorrelation
found none: a lag m is a season when the seasonal naive forecast of the *changes*,
c_t ~ c_{t-m}, beats their mean, c_t ~ mean(c), on the changes both forecast: mean
absolute error below ``GAIN`` of the mean's and the paired improvement significant at
``FALSE_RATE`` over the lags tested (Bonferroni, one-sided). The changes are free of a
trend (a trend is their mean); white noise or a random walk gives changes whose lag-m
difference has twice their variance, so the test is one-sided against them. The lowest
lag wins (a multiple of it is taken when it fits clearly better, as for a season
the autocorrelation found). What it finds is provisional: the next detection decides again.
"""

from __future__ import annotations

import torch

from tbptt_online.season import significantly_better, z_one_sided

MIN_LAG = 4  # shorter lags: a smooth series' changes repeat at lag 2 or 3 without any season
GAIN = 0.7  # the seasonal naive of the changes must cut their mean's error by 30 %...
FALSE_RATE = 0.01  # ...and be significant at 1 % over the lags tested
MIN_PAIRS = 8  # fewer changes forecast at a lag than this: not tested


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
    changes = changes - changes.mean(dim=1, keepdim=True)  # a trend is the changes' mean
    length = changes.shape[1]
    lags = [m for m in range(lo, hi + 1) if length - m >= MIN_PAIRS]
    if not lags:
        return out
    z = z_one_sided(FALSE_RATE, len(lags))
    for m in lags:  # the shortest significant lag: a multiple of it is judged later (hybrid._best_multiple)
        now = changes[:, m:]  # [R, k]
        seasonal = (now - changes[:, :-m]).abs()  # c_t ~ c_{t-m}
        plain = now.abs()  # c_t ~ mean(c) = 0
        out = torch.where((out == 0) & significantly_better(seasonal, plain, GAIN, z), m, out)
    return out
