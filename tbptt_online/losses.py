"""Per-step losses of a forecast against the value that arrived, masked where missing.

``predict`` returns ``[B, p]``: the mean in the first ``d`` columns and, for the
gaussian loss, an unconstrained variance parameter in the next ``d``.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

MIN_VARIANCE = 1e-6


def split_prediction(pred: torch.Tensor, n_features: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mean ``[..., B, d]`` and variance ``[..., B, d]`` (``None`` for a point forecast)."""
    mean = pred[..., :n_features]
    if pred.shape[-1] == n_features:
        return mean, None
    return mean, F.softplus(pred[..., n_features:]) + MIN_VARIANCE  # variance > 0 always


def shift_mean(pred: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """``pred`` [B, p] with ``base`` [B, d] added to its mean columns (the residual head:
    the network predicts the change from the last input)."""
    d = base.shape[1]
    return torch.cat([pred[:, :d] + base, pred[:, d:]], dim=1)


def step_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    """Loss of one step per row: ``[B]``, the sum over the observed features divided by d.

    gaussian: 0.5 * (log var + (x - mean)^2 / var), the NLL without its constant;
    mse: (x - mean)^2; absolute: |x - mean| (twice the median's pinball loss). A missing
    feature (mask False) contributes exactly zero, also to the gradient (``where`` rather
    than a product, so a NaN target cannot leak).

    >>> step_loss(torch.tensor([[1.0]]), torch.tensor([[3.0]]), torch.tensor([[True]]), "mse")
    tensor([4.])
    >>> step_loss(torch.tensor([[1.0]]), torch.tensor([[3.0]]), torch.tensor([[False]]), "mse")
    tensor([0.])
    """
    d = target.shape[1]
    mean, var = split_prediction(pred, d)
    safe_target = torch.where(mask, target, mean.detach())  # [B, d]; missing -> zero error
    if kind == "absolute":
        per_feature = (safe_target - mean).abs()
    else:
        sq = (safe_target - mean) ** 2
        per_feature = sq if var is None else 0.5 * (torch.log(var) + sq / var)
    per_feature = torch.where(mask, per_feature, torch.zeros_like(per_feature))
    return per_feature.sum(dim=1) / d
