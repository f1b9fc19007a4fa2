"""Per-series, per-feature running mean and standard deviation (Welford), vectorised.

Statistics are float64 tensors ``[B, d]`` (count, mean, m2). A value is normalised
with the statistics *including* it, so the first value of a series maps to 0 and
``|z| <= sqrt(n)``: a jump can never produce an unbounded input.
"""

from __future__ import annotations

import torch


def welford_update(
    count: torch.Tensor, mean: torch.Tensor, m2: torch.Tensor, x: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fold ``x`` [B, d] into the statistics where ``mask``; returns new tensors.

    >>> c, m, s = (torch.zeros(1, 1, dtype=torch.float64) for _ in range(3))
    >>> for v in (2.0, 4.0, 9.0):
    ...     c, m, s = welford_update(c, m, s, torch.tensor([[v]], dtype=torch.float64), torch.tensor([[True]]))
    >>> m.item(), std(c, s).item()
    (5.0, 3.605551275463989)
    """
    new_count = count + mask.to(count.dtype)
    safe_x = torch.where(mask, x, mean)  # a missing value leaves the statistics alone
    delta = safe_x - mean
    new_mean = mean + torch.where(mask, delta / new_count.clamp(min=1.0), 0.0)
    new_m2 = m2 + torch.where(mask, delta * (safe_x - new_mean), 0.0)
    return new_count, new_mean, new_m2


def std(count: torch.Tensor, m2: torch.Tensor) -> torch.Tensor:
    """Sample standard deviation; 1.0 while the scale is unknown (n < 2 or all equal)."""
    var = m2 / (count - 1.0).clamp(min=1.0)
    return torch.where((count >= 2) & (var > 0), var.sqrt(), 1.0)
