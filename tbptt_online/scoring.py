"""Prequential (forecast, then learn) scoring of one-step forecasts, vectorised.

Every sum is a float64 tensor ``[B, d]`` in the series' own units: the error of the
forecast that was served for a value, of the naive last-value forecast, and whether
the value fell inside the served interval.
"""

from __future__ import annotations

import torch

SCORE_FIELDS = (
    "score_n",  # forecasts scored (observed features only)
    "abs_err",
    "sq_err",
    "naive_n",  # naive forecasts scored (a previous value existed)
    "naive_abs_err",
    "naive_sq_err",
    "covered",  # values inside [lower, upper]
    "resid_sq",  # squared normalised residual: the interval of a point (mse) forecast
)


def score_step(
    scores: dict[str, torch.Tensor],
    value: torch.Tensor,
    mask: torch.Tensor,
    mean: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    last_value: torch.Tensor,
    norm_residual: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Return the sums with one step folded in (all inputs ``[B, d]``, float64)."""
    m = mask.to(torch.float64)
    has_last = mask & ~torch.isnan(last_value)
    n = has_last.to(torch.float64)
    zero = torch.zeros_like(value)
    err = torch.where(mask, (value - mean).abs(), zero)
    naive_err = torch.where(has_last, (value - last_value).abs(), zero)
    inside = mask & (value >= lower) & (value <= upper)
    return {
        "score_n": scores["score_n"] + m,
        "abs_err": scores["abs_err"] + err,
        "sq_err": scores["sq_err"] + err**2,
        "naive_n": scores["naive_n"] + n,
        "naive_abs_err": scores["naive_abs_err"] + naive_err,
        "naive_sq_err": scores["naive_sq_err"] + naive_err**2,
        "covered": scores["covered"] + inside.to(torch.float64),
        "resid_sq": scores["resid_sq"] + torch.where(mask, norm_residual**2, zero),
    }
