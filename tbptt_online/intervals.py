"""From the network's normalised output to forecasts in the series' own units.

gaussian: the interval is mean +- z * sqrt(variance head).
mse: a point forecast; its interval uses the running mean squared one-step residual
(normalised units), widened by sqrt(k) at step k of a multi-step forecast (the
random-walk approximation; said plainly because it is an approximation).
"""

from __future__ import annotations

from statistics import NormalDist

import torch

from tbptt_online.losses import split_prediction


def z_value(level: float) -> float:
    """The two-sided normal quantile: 1.6449 for a 90 % interval."""
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def predictive(
    pred: torch.Tensor, d: int, resid_sq: torch.Tensor, score_n: torch.Tensor, step: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation ``[B, d]`` (float64, normalised units) of ``pred``."""
    mean, var = split_prediction(pred.to(torch.float64), d)
    if var is not None:
        return mean, var.sqrt()
    sd = torch.where(score_n > 0, (resid_sq / score_n.clamp(min=1.0)).sqrt(), torch.ones_like(resid_sq))
    return mean, sd * step**0.5


def to_units(
    mean: torch.Tensor,
    sd: torch.Tensor,
    z: float,
    normaliser: tuple[torch.Tensor, torch.Tensor] | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, lower, upper) ``[B, d]`` in the series' units; ``normaliser`` is
    (centre, scale) or None when the model does not normalise."""
    if normaliser is not None:
        centre, scale = normaliser
        mean, sd = mean * scale + centre, sd * scale
    return mean, mean - z * sd, mean + z * sd
