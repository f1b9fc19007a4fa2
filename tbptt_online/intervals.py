"""From the network's normalised output to forecasts in the series' own units.

gaussian: the interval is mean +- z * sqrt(variance head).
mse: a point forecast; its interval uses the running mean squared one-step residual
(normalised units), widened by sqrt(k) at step k of a multi-step forecast (the
random-walk approximation; said plainly because it is an approximation).
"""

from __future__ import annotations

import functools
import math
from statistics import NormalDist

import torch

from tbptt_online.losses import split_prediction
from tbptt_online.scoring import STAT


@functools.lru_cache(maxsize=256)  # a pure function of the level, asked for at every forecast
def z_value(level: float) -> float:
    """The two-sided normal quantile: 1.6449 for a 90 % interval."""
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def predictive(
    pred: torch.Tensor, d: int, resid_sq: torch.Tensor, score_n: torch.Tensor, widen: float | torch.Tensor = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation ``[..., B, d]`` (float64, normalised units) of ``pred``
    ``[..., B, p]``; ``resid_sq`` and ``score_n`` are ``[B, d]``. ``widen``: sqrt(k) at step
    k of a multi-step forecast (a float, or a tensor broadcasting against the result, e.g.
    ``[H, 1, 1]``), applied to the mse interval only."""
    mean, var = split_prediction(pred.to(torch.float64), d)
    if var is not None:
        return mean, var.sqrt()
    sd = torch.where(score_n > 0, (resid_sq / score_n.clamp(min=1.0)).sqrt(), 1.0)
    return mean, sd if isinstance(widen, float) and widen == 1.0 else sd * widen


def widening(horizon: int) -> torch.Tensor:
    """``[H, 1, 1]`` float64: sqrt(k) for k = 1 .. H (the random-walk approximation)."""
    return torch.tensor([k**0.5 for k in range(1, horizon + 1)], dtype=torch.float64).view(-1, 1, 1)


def to_units(
    mean: torch.Tensor,
    sd: torch.Tensor,
    z: float | torch.Tensor,
    normaliser: tuple[torch.Tensor, torch.Tensor] | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, lower, upper) ``[..., B, d]`` in the series' units; ``normaliser`` is
    (centre, scale) ``[B, d]`` or None when the model does not normalise; ``z`` a float
    or a tensor broadcasting against ``mean`` (one quantile per row: ``[B, 1]``)."""
    if normaliser is not None:
        centre, scale = normaliser
        mean, sd = mean * scale + centre, sd * scale
    return mean, mean - z * sd, mean + z * sd


def served_rows(pred: torch.Tensor, d: int, stats: torch.Tensor, z: float, scale: torch.Tensor | None) -> torch.Tensor:
    """A one-step forecast ``pred`` [B, p] as it is served: ``[B, 4, d]`` float64, the rows
    of ``series_store.SERVED`` (its normalised mean, then mean, lower, upper in units).
    ``stats`` [B, F, d]: the series' statistics it is made with; ``scale`` their std, or
    None when the model does not normalise."""
    mean, sd = predictive(pred, d, stats[:, STAT["resid_sq"]], stats[:, STAT["score_n"]])
    units = to_units(mean, sd, z, None if scale is None else (stats[:, STAT["norm_mean"]], scale))
    return torch.stack([mean, *known_only(units, stats)], dim=1)  # (the normalised mean stays: it feeds a gap)


def known_only(
    units: tuple[torch.Tensor, torch.Tensor, torch.Tensor], stats: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, lower, upper) ``[..., B, d]`` as served: no forecast (NaN) of a series feature
    nothing was observed of (its ``stats`` [B, F, d] hold no last value), as the hybrid serves
    it. Until this rule a network-only series' first value had a forecast, made from the
    initial state alone, and it was scored in the series' MAE and coverage."""
    nothing = torch.isnan(stats[:, STAT["last_value"]])  # [B, d]
    nan = torch.tensor(math.nan, dtype=units[0].dtype)
    mean, lower, upper = (torch.where(nothing, nan, column) for column in units)
    return mean, lower, upper
