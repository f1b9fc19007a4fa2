"""The two synthetic streams of the truncation wall, whose only dependency has length P.

(a) ``seasonal_random_walk``: ``x_t = x_{t-P} + e_t``, e standard normal. Each phase of
    the period is its own random walk, so the shape drifts: the next value can only come
    from one period back (a fixed shape could be memorised by the weights).
(b) ``delayed_echo``: two features; feature 1 is standard normal noise, feature 2 is
    feature 1 delayed by P. Feature 2 is the one scored, and it is exactly predictable.

Both come as ``[T, S, d]`` float64 tensors: T ticks of S independent series.

>>> x = seasonal_random_walk(ticks=50, n_series=3, period=5, seed=0)
>>> tuple(x.shape), bool(((x[5:] - x[:-5]).abs() < 6).all())
((50, 3, 1), True)
>>> echo = delayed_echo(ticks=30, n_series=2, period=4, seed=0)
>>> bool((echo[4:, :, 1] == echo[:-4, :, 0]).all())
True
"""

from __future__ import annotations

import torch


def _noise(ticks: int, n_series: int, seed: int) -> torch.Tensor:
    return torch.randn(ticks, n_series, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def seasonal_random_walk(ticks: int, n_series: int, period: int, seed: int) -> torch.Tensor:
    """``[T, S, 1]``: the first period is noise, then ``x_t = x_{t-P} + e_t``."""
    e = _noise(ticks, n_series, seed)  # [T, S]
    # Phase p's values are the cumulative sum of its own noise: x[p + kP] = e[p] + ... + e[p + kP].
    padded = torch.nn.functional.pad(e, (0, 0, 0, (-ticks) % period))  # [ceil(T/P)*P, S]
    walks = padded.reshape(-1, period, n_series).cumsum(dim=0)  # [periods, P, S]
    return walks.reshape(-1, n_series)[:ticks, :, None]


def delayed_echo(ticks: int, n_series: int, period: int, seed: int) -> torch.Tensor:
    """``[T, S, 2]``: feature 1 is noise, feature 2 is feature 1 from P ticks before."""
    e = _noise(ticks + period, n_series, seed)  # [T + P, S]
    return torch.stack([e[period:], e[:-period]], dim=2)  # feature 2 at t = feature 1 at t - P


def best_and_ignorant(stream: str, x: torch.Tensor, period: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Forecasts ``[T, S]`` of the scored feature by the best possible predictor (the value
    P steps back) and by one that ignores the dependency (the last value for the walk,
    the running mean of what was seen for the echo). NaN where nothing is known yet."""
    nan = torch.full_like(x[:, :, 0], float("nan"))
    if stream == "seasonal_random_walk":
        best, ignorant = nan.clone(), nan.clone()
        best[period:] = x[:-period, :, 0]  # x_{t-P}: the error is e_t alone
        ignorant[1:] = x[:-1, :, 0]  # x_{t-1}
        return best, ignorant
    best = x[:, :, 0].roll(period, dims=0)  # feature 1 at t - P, which is feature 2 at t
    best[:period] = nan[:period]
    seen = x[:, :, 1].cumsum(dim=0)  # running mean of feature 2 before t
    ignorant = nan.clone()
    counts = torch.arange(1, x.shape[0], dtype=x.dtype)[:, None]
    ignorant[1:] = seen[:-1] / counts
    return best, ignorant
