"""The gradient's reach and the truncation bias (Aicher, Foti & Fox, UAI 2019).

A probe (``probe.py``) measures, on windows longer than the update's, the norm of the
gradient of the loss at a window's last step t with respect to the states before it:

    phi_k = mean over windows of || dL_t / dh_{t-k} ||,   k = 1 .. K_p

(lag 1 is the state ``predict`` reads; lag K_p the window's start). A window of K steps
(start h_{t-K}) holds the transitions that made h_{t-1} .. h_{t-K+1}, so what truncation at
K leaves out is the gradient through lags >= K. Following the paper, the norms decay
geometrically past a lag tau, ``phi_k ~ phi_tau * beta^(k - tau)``; beta is fitted by least
squares on log phi_k over k in [tau, K_p] (tau = the middle of the probe window), and

    tail(K)  = sum_{k=K}^{tau-1} phi_k + phi_tau / (1 - beta)     (K < tau)
             = phi_tau * beta^(K - tau) / (1 - beta)                (K >= tau)
    lower    = max_K ( sum_{k<K} phi_k - tail(K) )   a lower bound on the gradient's size
    bias(K)  = tail(K) / lower                       the relative truncation bias

(infinite when beta >= 1 or lower <= 0: the gradient does not decay within the probe).
The adaptive window is the smallest candidate K with bias(K) < delta (the largest when
none is), the paper's rule, raised to cover the data's dependency (``data_window``): the
probe measures how far back the *current* weights reach, and a network that has never
seen a gradient through lag D has no reason to carry anything D steps (an untrained GRU's
norms have all but vanished by lag 10), so on the bias alone the window would stay at
``k2_min`` below a dependency it can then never learn.

>>> phi = torch.tensor([0.5 ** (k - 1) for k in range(1, 17)], dtype=torch.float64)
>>> fit = fit_decay(phi)
>>> round(fit.beta, 6), fit.tau
(0.5, 8)
>>> round(relative_bias(phi, fit, 4), 4)  # tail 2 * 0.5^3 = 0.25 over lower 2 - 0 (K -> inf)
0.125
>>> adaptive_window(phi, fit, [2, 4, 6, 8], delta=0.1)
6
>>> data_window(20, k1=10, candidates=[10, 20, 30, 40]), data_window(0, 10, [10, 20])
(30, 10)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tbptt_online.season import WINSOR, detect_seasons

SEASON_FALSE_RATE = 0.001  # a dependency's seasons: white noise shows one in 0.1 % of rows (the hybrid's: 1 %)
MIN_SPREAD = 8.0  # a row's seasons and lags are looked for when its changes spread over at least this many values
REPEAT = 0.25  # a season repeats: its values' correlation two seasons back is above this share of one season back
LOG_FLOOR = -50.0  # log norms below this are zero for the fit (as the paper's code does)


@dataclass(frozen=True)
class DecayFit:
    """The geometric decay of the gradient norms: phi_k ~ phi_tau * beta^(k - tau) for k >= tau."""

    beta: float
    tau: int  # 1-based lag where the geometric model starts
    phi_tau: float


def fit_decay(phi: torch.Tensor) -> DecayFit:
    """Least squares of log phi_k on k over k in [tau, K_p], tau = ceil(K_p / 2) (lags 1-based).

    ``phi`` [K_p] float: the mean gradient norms at lags 1..K_p. Norms that are zero (log
    below ``LOG_FLOOR``) are left out; with fewer than two left the gradient is gone by tau:
    beta = 0.
    """
    n = int(phi.shape[0])
    tau = max(1, math.ceil(n / 2))
    lags = torch.arange(tau, n + 1, dtype=torch.float64)
    logs = torch.log(phi[tau - 1 :].to(torch.float64).clamp(min=1e-300))
    keep = logs > LOG_FLOOR
    phi_tau = float(phi[tau - 1])
    if int(keep.sum()) < 2:
        return DecayFit(0.0, tau, phi_tau)
    x, y = lags[keep] - lags[keep].mean(), logs[keep] - logs[keep].mean()
    slope = float((x * y).sum() / (x * x).sum())
    return DecayFit(math.exp(slope) if slope < 700.0 else math.inf, tau, phi_tau)  # (norms that grow: beta >= 1)


def tail(phi: torch.Tensor, fit: DecayFit, window: int) -> float:
    """The gradient norm a window of ``window`` steps leaves out: the sum over lags >= window."""
    if fit.phi_tau == 0.0 and fit.beta == 0.0:
        return float(phi[window - 1 : fit.tau - 1].sum()) if window < fit.tau else 0.0
    if fit.beta >= 1.0:
        return math.inf
    beyond = fit.phi_tau / (1.0 - fit.beta)
    if window >= fit.tau:
        return fit.phi_tau * fit.beta ** (window - fit.tau) / (1.0 - fit.beta)
    return float(phi[window - 1 : fit.tau - 1].sum()) + beyond


def lower_bound(phi: torch.Tensor, fit: DecayFit) -> float:
    """max over K in 1..K_p of (sum of phi_k for k < K) - tail(K): a lower bound on the total."""
    cumulative = torch.cat([torch.zeros(1, dtype=torch.float64), phi.to(torch.float64).cumsum(0)])  # [K_p + 1]
    best = -math.inf
    for window in range(1, int(phi.shape[0]) + 1):
        best = max(best, float(cumulative[window - 1]) - tail(phi, fit, window))
    return best


def relative_bias(phi: torch.Tensor, fit: DecayFit, window: int) -> float:
    """bias(window) = tail(window) / lower (infinite when the lower bound is not positive)."""
    lower = lower_bound(phi, fit)
    if not lower > 0.0:
        return math.inf
    return tail(phi, fit, window) / lower


def adaptive_window(phi: torch.Tensor, fit: DecayFit, candidates: Sequence[int], delta: float) -> int:
    """The smallest candidate window whose relative bias is below ``delta``; the largest when none is."""
    lower = lower_bound(phi, fit)
    if lower > 0.0:
        for window in candidates:
            if tail(phi, fit, window) / lower < delta:
                return window
    return candidates[-1]


def data_window(dependency: int, k1: int, candidates: Sequence[int]) -> int:
    """The smallest candidate K in which every loss an update scores sees ``dependency`` steps
    back: K >= dependency + min(k1, K) (the earliest of the min(k1, K) scored losses sits that
    many steps before the window's end); the largest when none is, the first when no
    dependency is known (0)."""
    if dependency <= 0:
        return candidates[0]
    return next((w for w in candidates if w >= dependency + min(k1, w)), candidates[-1])


def confirmed_lags(previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """Per followed row, the lag found at two successive probes (within one step; the shorter
    of the two), else 0: one spurious long lag in one probe's search does not make every
    update pay for it. ``previous``, ``current`` [P] int64, 0 where none was found.

    >>> confirmed_lags(torch.tensor([20, 20, 0, 176]), torch.tensor([21, 0, 20, 20])).tolist()
    [20, 0, 0, 0]
    """
    agree = (previous > 0) & (current > 0) & ((current - previous).abs() <= 1)
    return torch.where(agree, torch.minimum(previous, current), 0)


def longest_lag(values: torch.Tensor, max_lag: int, features: int = 4) -> torch.Tensor:
    """The data's dependency length per row: the longest of its seasons and of the lags at
    which its de-seasoned values are significantly correlated with themselves (any of its first
    ``features`` features with any of them), leaving out lags that are multiples (within one
    step) of a shorter significant lag.

    ``values`` [B, n, d] float (NaN = missing), oldest first. Per row and feature:

    * the seasons are ``season.detect_seasons``' (the hybrid's detector, at most two, up to
      ``max_lag``), and the values are differenced at each (``x_s - x_{s-P}``). A season
      correlates a series with itself at nearly every lag (a sine at all but its quarter
      cycles), so without this the longest correlated lag of a seasonal series is wherever the
      search ends: weekly co2 (season 52.18) gave 682, monthly elnino 238, the tour's hourly
      hosts 72-158 where their season is 24; now 52, 12 and 24-166 (166: web-1's weekend);
    * the values are pre-whitened by their own AR(1) (``e_s = x_s - rho x_{s-1}``, rho the
      lag-1 autocorrelation clipped to [0, 1]: a random walk is differenced, white noise
      kept), so that persistence alone does not count as a long dependency, and winsorised at
      ``WINSOR`` robust sds (1.4826 MAD; the mean absolute value where most are equal): two
      spikes k steps apart made lag k significant on their own;

    then r_ij(k) = corr(e_i[s], e_j[s - k]) for k = 1 .. ``max_lag``, significant when
    |r| > max(0.2, 4 sqrt(v / pairs)), v Bartlett's variance factor over the significant
    shorter lags (1 + 2 sqrt(S_i S_j), S_i the sum of r_ii^2 over them). A feature whose
    changes spread over fewer than ``MIN_SPREAD`` values (``_spread``) has neither seasons
    nor lags. Returns [B] int64: the longest kept lag or season, 0 where there is neither.

    >>> g = torch.Generator().manual_seed(0)
    >>> noise = torch.randn(1, 201, 1, generator=g, dtype=torch.float64)
    >>> echo = torch.cat([noise[:, 20:], noise[:, :-20]], dim=2)  # feature 2 = feature 1, 20 steps before
    >>> walk = noise.cumsum(dim=1)
    >>> longest_lag(torch.cat([echo[:, :, :1], walk[:, 20:]]), 60).tolist(), longest_lag(echo, 60).tolist()
    ([0, 0], [20])
    >>> t = torch.arange(600, dtype=torch.float64)
    >>> weekly = torch.sin(2 * torch.pi * t / 52.18) + 0.3 * torch.randn(600, generator=g, dtype=torch.float64)
    >>> longest_lag(weekly[None, :, None], 200).tolist()
    [52]
    """
    b, n, d = values.shape
    d = min(d, features)
    out = torch.zeros(b, dtype=torch.int64)
    if n < 8:
        return out
    x = values[:, :, :d].to(torch.float64)
    # a row whose changes sit in a few values (a step, or a flat stream with two events k steps
    # apart) has neither seasons nor correlations to speak of: the two events made a season and
    # a lag of k (a hostile test: a step from 0 to 1 read a dependency of 42 and k2 = 5x the given)
    e, pair = _ar1_residuals(x)
    informative = _spread(_winsorised(e, pair), pair) >= MIN_SPREAD  # [B, d]
    seasons = torch.zeros(b, dtype=torch.int64)
    if max_lag >= 2:
        x = x.clone()
        for f in range(d):
            lengths = detect_seasons(x[:, :, f], max_seasons=2, max_length=max_lag, false_rate=SEASON_FALSE_RATE)
            lengths = torch.where(informative[:, f, None] & _repeats(x[:, :, f], lengths), lengths, 0)
            seasons = torch.maximum(seasons, lengths.amax(dim=1))  # lengths [B, 2], 0 = none
            for p in lengths.T:  # [B] each row's first season, then its second
                back = torch.arange(n)[None, :] - p[:, None]  # [B, n] the step one season back
                before = x[:, :, f].gather(1, back.clamp(min=0))
                differenced = torch.where(back >= 0, x[:, :, f] - before, torch.nan)
                x[:, :, f] = torch.where(p[:, None] > 0, differenced, x[:, :, f])
    e, pair = _ar1_residuals(x)
    e = _winsorised(e, pair)
    sd = (e.pow(2).sum(1, keepdim=True) / pair.sum(1, keepdim=True).clamp(min=1)).sqrt()
    z = torch.where(sd > 0, e / sd.clamp(min=1e-300), 0.0)
    z = torch.where(informative[:, None, :], z, 0.0)
    m = z.shape[1]
    hits = []
    found = torch.zeros(b, d, dtype=torch.float64)  # [B, d] sum of r_ii(j)^2 over the significant lags j so far
    for lag in range(1, min(max_lag, m - 8) + 1):
        pairs = (pair[:, lag:, :, None] & pair[:, :-lag, None, :]).sum(1)  # [B, d, d]
        r = torch.einsum("bsi,bsj->bij", z[:, lag:], z[:, :-lag]) / pairs.clamp(min=1)
        bartlett = 1.0 + 2.0 * (found[:, :, None] * found[:, None, :]).sqrt()  # [B, d, d] the variance factor, bounded
        threshold = torch.clamp(4.0 * (bartlett / pairs.clamp(min=1)).sqrt(), min=0.2)
        hit = (r.abs() > threshold) & (pairs >= 8)  # [B, d, d]
        found += torch.where(hit.diagonal(dim1=1, dim2=2), r.diagonal(dim1=1, dim2=2).square(), 0.0)
        hits.append(torch.where(hit, r.abs(), 0.0).flatten(1).amax(1))  # [B]: the strongest significant |r|, 0: none
    if not hits:
        return seasons
    strength = torch.stack(hits, dim=1)  # [B, lags]
    for row in range(b):
        lags = (strength[row].nonzero().squeeze(1) + 1).tolist()
        size = strength[row].tolist()
        kept: list[int] = []
        for lag in lags:  # shortest first: a lag within one step of a multiple of a kept one is its echo,
            # unless it is more than twice as strong (an echo is never stronger than its lag; a pattern that
            # repeats is about as strong at every multiple): a chance hit at 10, r = 0.202, hid an echo's true
            # lag 20, r = 0.527
            if not any(
                k >= 4 and lag >= 2 * k - 1 and min(lag % k, k - lag % k) <= 1 and size[lag - 1] <= 2 * size[k - 1]
                for k in kept
            ):
                kept.append(lag)
        out[row] = max(kept, default=0)
    return torch.maximum(out, seasons)


def _repeats(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Which of the ``lengths`` [B, k] (0 = none) of the values ``x`` [B, n] (NaN = missing) repeat:
    r(2P) > ``REPEAT`` r(P), r the values' autocorrelation; True where 2P leaves under 8 pairs
    (nothing to check). A one-off echo x_s + 0.9 x_{s-20} correlates at 20 (0.5) and not at 40 (0):
    read as a season of 18 to 22 and differenced at it, it left a correlation of -0.5 at twice that
    (a hostile test: the lag 20 read as 40 in 6 of 12 seeds). Such a "season" is left to the lag search.
    """
    n = x.shape[1]
    centred, ok, count = _centred(x)  # [B, n] each, count [B, 1]
    variance = centred.square().sum(1) / count[:, 0]  # [B]
    steps = torch.arange(n)[None, :]

    def correlation(lag: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # lag [B] -> r [B], pairs [B]
        back = steps - lag[:, None]  # [B, n]
        valid = (back >= 0) & ok & ok.gather(1, back.clamp(min=0))
        pairs = valid.sum(1)
        product = torch.where(valid, centred * centred.gather(1, back.clamp(min=0)), 0.0).sum(1)
        return product / (pairs.clamp(min=1) * variance).clamp(min=1e-300), pairs

    out = torch.ones_like(lengths, dtype=torch.bool)
    for j in range(lengths.shape[1]):
        p = lengths[:, j]
        once, _ = correlation(p)
        twice, pairs = correlation(2 * p)
        out[:, j] = (p <= 0) | (pairs < 8) | (twice > REPEAT * once)
    return out


def _winsorised(e: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
    """The residuals ``e`` [B, m, d] (valid where ``pair``) cut at ``WINSOR`` robust sds (1.4826
    MAD; the mean absolute value where most are equal, as season.py's scale) and centred again,
    0 where not valid: a spike counts as a large value, not as a dependency."""
    size = torch.where(pair, e.abs(), torch.nan)
    mad = 1.4826 * size.nanmedian(dim=1, keepdim=True).values.nan_to_num(0.0)
    count = pair.sum(1, keepdim=True).clamp(min=1)
    mean_abs = size.nan_to_num(0.0).sum(1, keepdim=True) / count
    cut = WINSOR * torch.where(mad > 1e-3 * mean_abs, mad, mean_abs)  # [B, 1, d]
    e = torch.maximum(torch.minimum(e, cut), -cut)
    return torch.where(pair, e - e.sum(1, keepdim=True) / count, 0.0)


def _spread(e: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
    """Over how many values the residuals ``e`` [B, m, d] (0 where not ``pair``) spread their
    variance, per row and feature [B, d]: the participation ratio (sum e^2)^2 / sum e^4, about
    m / 3 for Gaussian noise, 2 for two spikes among zeros, 0 for a constant."""
    square = torch.where(pair, e, 0.0).square()
    return square.sum(1).square() / square.square().sum(1).clamp(min=1e-300)


def _centred(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x`` [B, n, ...] (NaN = missing) less its mean over dim 1, 0 where missing; where it is
    finite; the finite values' count (at least 1, kept as dim 1)."""
    ok = torch.isfinite(x)
    count = ok.sum(1, keepdim=True).clamp(min=1)
    return torch.where(ok, x - torch.where(ok, x, 0.0).sum(1, keepdim=True) / count, 0.0), ok, count


def _ar1_residuals(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Of ``x`` [B, n, d] (NaN = missing): its centred values less their own AR(1) (rho the lag-1
    autocorrelation clipped to [0, 1]), [B, n - 1, d], 0 where not valid, and where they are."""
    centred, ok, _ = _centred(x)  # [B, n, d]
    pair = ok[:, 1:] & ok[:, :-1]
    rho = (centred[:, 1:] * centred[:, :-1] * pair).sum(1, keepdim=True) / centred.pow(2).sum(1, keepdim=True).clamp(
        min=1e-300
    )
    e = centred[:, 1:] - rho.clamp(0.0, 1.0) * centred[:, :-1]  # [B, n - 1, d]
    return torch.where(pair, e, 0.0), pair
