"""Per-series running statistics in one float64 tensor: the normaliser and the scores.

A series' statistics are one ``[F, d]`` block (rows named by ``STAT_FIELDS``), so a
tick reads and writes them with one gather and one scatter. The scores are
prequential (forecast, then learn) sums in the series' own units: the error of the
forecast that was served for a value, of the naive last-value forecast, and whether
the value fell inside the served interval.
"""

from __future__ import annotations

import math

import torch

STAT_FIELDS = (
    "norm_count",  # the normaliser (Welford): observed values
    "norm_mean",
    "norm_m2",
    "last_value",  # the last observed value (NaN before any): the naive forecast
    "score_n",  # forecasts scored (observed features only)
    "abs_err",
    "sq_err",
    "naive_n",  # naive forecasts scored (a previous value existed)
    "naive_abs_err",
    "naive_sq_err",
    "covered",  # values inside [lower, upper]
    "resid_sq",  # squared normalised residual: the interval of a point (mse) forecast
)
STAT = {name: i for i, name in enumerate(STAT_FIELDS)}
SCORES = STAT["score_n"]  # the score rows are STAT_FIELDS[SCORES:]


def blank_stats(n: int, d: int) -> torch.Tensor:
    """``[n, F, d]``: zeros, and NaN for ``last_value`` (no value seen yet)."""
    stats = torch.zeros(n, len(STAT_FIELDS), d, dtype=torch.float64)
    stats[:, STAT["last_value"]] = math.nan
    return stats


def score_step(
    stats: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor,
    mean: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    norm_residual: torch.Tensor,
) -> torch.Tensor:
    """The score rows ``[B, 8, d]`` with one step folded in (inputs ``[B, d]`` float64,
    ``stats`` the series' ``[B, F, d]`` block before the step)."""
    last_value = stats[:, STAT["last_value"]]
    has_last = mask & ~torch.isnan(last_value)
    err = torch.where(mask, (value - mean).abs(), 0.0)
    naive_err = torch.where(has_last, (value - last_value).abs(), 0.0)
    inside = mask & (value >= lower) & (value <= upper)
    increments = torch.stack(  # [B, 8, d] in the order of STAT_FIELDS[SCORES:]
        [
            mask.to(torch.float64),
            err,
            err**2,
            has_last.to(torch.float64),
            naive_err,
            naive_err**2,
            inside.to(torch.float64),
            torch.where(mask, norm_residual**2, 0.0),
        ],
        dim=1,
    )
    return stats[:, SCORES:] + increments
