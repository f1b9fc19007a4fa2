"""Online combination of forecasters: per series, per horizon, an exponentially weighted
average (EWA) of the members by their discounted absolute losses.

For member ``e`` at horizon ``h`` of one series and feature, after each scored target,

    L_e <- rho * L_e + min(|y - F_e| / scale, CAP),      N <- rho * N + 1,      A_e = L_e / N

and the weights are ``w_e ∝ exp(-eta * A_e / min_e' A_e')`` over the members allowed to
take weight (the ratio makes ``eta`` free of the series' scale: a member whose recent
loss is 10 % above the best one's gets ``exp(-eta / 10)`` of its weight). Before anything
is scored at a horizon the weights are equal. Beyond the last scored horizon the weights
of that horizon hold.
"""

from __future__ import annotations

import math  # noqa: F401 (the doctests)

import torch

DISCOUNT = 0.99  # rho: about the last 100 targets count
ETA = 25.0
CAP = 50.0  # one target adds at most this (in units of the scale) to a member's loss: a spike, or a
# scale still unknown in a series' first values, cannot dominate the discounted sums


def fold(
    loss: torch.Tensor, count: torch.Tensor, error: torch.Tensor, scored: torch.Tensor, scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Discount and add one target's absolute errors.

    loss [B, H, E, d], count [B, H, d]; error [B, H, E, d] absolute errors of the members'
    forecasts of that target made h steps before (a non-finite one counts as the cap); scored
    [B, H, d]: which horizons had a forecast to score (and an observed target); scale [B, d] > 0.

    >>> loss, count = fold(torch.zeros(1, 1, 2, 1), torch.zeros(1, 1, 1), torch.tensor([[[[1.0], [3.0]]]]),
    ...                    torch.tensor([[[True]]]), torch.tensor([[2.0]]))
    >>> loss.flatten().tolist(), count.flatten().tolist()
    ([0.5, 1.5], [1.0])
    """
    on = scored[:, :, None]  # [B, H, 1, d]
    capped = torch.fmin(error / scale[:, None, None], torch.tensor(CAP, dtype=error.dtype))  # NaN, inf -> CAP
    new_loss = torch.where(on, DISCOUNT * loss + capped, loss)
    return new_loss, torch.where(scored, DISCOUNT * count + 1.0, count)


def weights(loss: torch.Tensor, count: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """``[B, H, E, d]`` convex weights from loss [B, H, E, d] and count [B, H, d];
    ``allowed`` [B, E, d] says which members may take weight (at least one per row).

    >>> w = weights(torch.tensor([[[[1.0], [1.1]]]]), torch.ones(1, 1, 1), torch.ones(1, 2, 1, dtype=torch.bool))
    >>> round(w[0, 0, 1, 0].item() / w[0, 0, 0, 0].item(), 6) == round(math.exp(-ETA * 0.1), 6)
    True
    """
    return torch.softmax(logits(loss, count, allowed), dim=2)


def logits(loss: torch.Tensor, count: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """``[B, H, E, d]``: ``-eta A_e / min A`` (the count N is shared by the members of a horizon,
    so A_e / min A = L_e / min L), 0 where nothing is scored yet, -inf where not allowed."""
    allowed = allowed[:, None]  # [B, 1, E, d]
    best = torch.where(allowed, loss, torch.inf).amin(dim=2, keepdim=True)  # [B, H, 1, d]
    floor = 1e-12 * count.clamp(min=1e-12)[:, :, None]  # min A >= 1e-12 (a flat series' zero losses)
    factor = torch.where((count > 0)[:, :, None], -ETA / torch.maximum(best, floor), 0.0)  # [B, H, 1, d]
    return torch.where(allowed, loss * factor, -torch.inf)


def combine(forecasts: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """[B, H, E, d] members' forecasts and [B, H', E, d] weights (H' <= H: the last horizon's
    weights hold beyond it) -> [B, H, d] the combination."""
    horizon, known = forecasts.shape[1], w.shape[1]
    if horizon > known:
        w = torch.cat([w, w[:, -1:].expand(-1, horizon - known, -1, -1)], dim=1)
    return (forecasts * w[:, :horizon]).sum(dim=2)
