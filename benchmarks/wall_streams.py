"""The synthetic streams of the truncation wall, whose only dependency has length P.

(a) ``seasonal_random_walk``: ``x_t = x_{t-P} + e_t``, e standard normal. Each phase of
    the period is its own random walk, so the shape drifts: the next value can only come
    from one period back (a fixed shape could be memorised by the weights). It drifts
    slowly, though: one noise step per period against a spread that grows as the square
    root of the periods, so fast-adapting weights can still memorise the current shape.
(a') ``seasonal_ar``: ``x_t = phi * x_{t-P} + e_t`` with ``0 <= phi < 1``, started from its
    stationary law. Each phase is its own AR(1) process, independent of the others, so
    lags 1..P-1 carry no information at all, and the shape is renewed every
    ``1 / (1 - phi)`` periods (10 for phi = 0.9), meant to be too fast for the weights to memorise.
    Best predictor ``phi * x_{t-P}`` (RMSE 1); ignoring the lag, the mean (RMSE
    ``1 / sqrt(1 - phi**2)``, 2.29 for phi = 0.9).
(b) ``delayed_echo``: two features; feature 1 is standard normal noise, feature 2 is
    feature 1 delayed by P. Feature 2 is the one scored, and it is exactly predictable.

All come as ``[T, S, d]`` float64 tensors: T ticks of S independent series.

>>> x = seasonal_random_walk(ticks=50, n_series=3, period=5, seed=0)
>>> tuple(x.shape), bool(((x[5:] - x[:-5]).abs() < 6).all())
((50, 3, 1), True)
>>> ar = seasonal_ar(ticks=40, n_series=2, period=4, seed=0, phi=0.5)
>>> bool(torch.allclose(ar[4:] - 0.5 * ar[:-4], torch.randn(40, 2, dtype=torch.float64,
...     generator=torch.Generator().manual_seed(0))[4:, :, None]))
True
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


def seasonal_ar(ticks: int, n_series: int, period: int, seed: int, phi: float = 0.9) -> torch.Tensor:
    """``[T, S, 1]``: ``x_t = phi * x_{t-P} + e_t``, the first period drawn from the stationary law."""
    if not 0.0 <= phi < 1.0:
        raise ValueError(f"phi={phi!r} is invalid: must be in [0, 1) for a stationary stream")
    e = _noise(ticks, n_series, seed)  # [T, S]
    x = torch.empty_like(e)  # [T, S]
    x[:period] = e[:period] / (1.0 - phi**2) ** 0.5  # stationary variance 1 / (1 - phi^2)
    for start in range(period, ticks, period):  # one period at a time: x[t] needs x[t - P] only
        stop = min(start + period, ticks)
        x[start:stop] = phi * x[start - period : stop - period] + e[start:stop]
    return x[:, :, None]


def delayed_echo(ticks: int, n_series: int, period: int, seed: int) -> torch.Tensor:
    """``[T, S, 2]``: feature 1 is noise, feature 2 is feature 1 from P ticks before."""
    e = _noise(ticks + period, n_series, seed)  # [T + P, S]
    return torch.stack([e[period:], e[:-period]], dim=2)  # feature 2 at t = feature 1 at t - P


def _running_mean(x: torch.Tensor) -> torch.Tensor:
    """``[T, S]``: the mean of ``x[:t]`` at each t (NaN at t = 0, when nothing was seen)."""
    means = torch.full_like(x, float("nan"))
    counts = torch.arange(1, x.shape[0], dtype=x.dtype)[:, None]  # [T - 1, 1]
    means[1:] = x.cumsum(dim=0)[:-1] / counts
    return means


def best_and_ignorant(stream: str, x: torch.Tensor, period: int, phi: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
    """Forecasts ``[T, S]`` of the scored feature by the best possible predictor (the value
    P steps back, times ``phi`` for the seasonal AR) and by one that ignores the dependency
    (the last value for the walk, the running mean of what was seen for the seasonal AR and
    the echo). NaN where nothing is known yet."""
    nan = torch.full_like(x[:, :, 0], float("nan"))
    if stream == "seasonal_ar":
        best = nan.clone()
        best[period:] = phi * x[:-period, :, 0]  # phi * x_{t-P}: the error is e_t alone
        return best, _running_mean(x[:, :, 0])
    if stream == "seasonal_random_walk":
        best, ignorant = nan.clone(), nan.clone()
        best[period:] = x[:-period, :, 0]  # x_{t-P}: the error is e_t alone
        ignorant[1:] = x[:-1, :, 0]  # x_{t-1}
        return best, ignorant
    best = x[:, :, 0].roll(period, dims=0)  # feature 1 at t - P, which is feature 2 at t
    best[:period] = nan[:period]
    return best, _running_mean(x[:, :, 1])  # feature 2's mean before t
