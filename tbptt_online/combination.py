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

import math

import numpy as np
import torch

from tbptt_online.compiled import compiled, readable

DISCOUNT = 0.99  # rho: about the last 100 targets count
ETA = 25.0
CAP = 50.0  # one target adds at most this (in units of the scale) to a member's loss: a spike, or a
# scale still unknown in a series' first values, cannot dominate the discounted sums


@compiled
def discounted(loss: float, error: float, scale: float) -> float:
    """A member's loss after one scored target: ``rho * L + min(|error| / scale, CAP)`` (a
    non-finite error counts as the cap)."""
    capped = error / scale
    if not capped < CAP:  # NaN, inf
        capped = CAP
    return DISCOUNT * loss + capped


@compiled
def _fold(loss: np.ndarray, count: np.ndarray, error: np.ndarray, scored: np.ndarray, scale: np.ndarray) -> None:
    n_rows, horizons, members, d = loss.shape
    for b in range(n_rows):
        for h in range(horizons):
            for k in range(d):
                if scored[b, h, k]:
                    for e in range(members):
                        loss[b, h, e, k] = discounted(loss[b, h, e, k], error[b, h, e, k], scale[b, k])
                    count[b, h, k] = DISCOUNT * count[b, h, k] + 1.0


def fold(
    loss: torch.Tensor, count: torch.Tensor, error: torch.Tensor, scored: torch.Tensor, scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Discount and add one target's absolute errors (``discounted``).

    loss [B, H, E, d], count [B, H, d]; error [B, H, E, d] absolute errors of the members'
    forecasts of that target made h steps before (a non-finite one counts as the cap); scored
    [B, H, d]: which horizons had a forecast to score (and an observed target); scale [B, d] > 0.

    >>> loss, count = fold(torch.zeros(1, 1, 2, 1), torch.zeros(1, 1, 1), torch.tensor([[[[1.0], [3.0]]]]),
    ...                    torch.tensor([[[True]]]), torch.tensor([[2.0]]))
    >>> loss.flatten().tolist(), count.flatten().tolist()
    ([0.5, 1.5], [1.0])
    """
    f64 = torch.float64
    new_loss, new_count = loss.to(f64, copy=True).contiguous(), count.to(f64, copy=True).contiguous()
    _fold(new_loss.numpy(), new_count.numpy(), _array(error), _array(scored), _array(scale))
    return new_loss.to(loss.dtype), new_count.to(count.dtype)


def _array(tensor: torch.Tensor) -> np.ndarray:
    """A contiguous numpy array of ``tensor`` (float tensors as float64), for reading."""
    return readable(tensor.to(torch.float64) if tensor.is_floating_point() else tensor)[0]


@compiled
def member_weights(loss, count, allowed, b, h, k, logits, weights) -> None:
    """The convex weights ``weights[b, h, :, k]`` of one series, feature and horizon from the
    members' losses ``loss[b, h, :, k]`` ([B, H, E, d] both), the discounted count
    ``count[b, h, k]`` and which members may take weight ``allowed`` [E] (at least one):
    ``softmax(-eta L_e / min L)`` over the allowed ones (the count N is shared by the
    members of a horizon, so A_e / min A = L_e / min L), equal before anything is scored;
    min A >= 1e-12 (a flat series' zero losses). The logits are left in ``logits[h]``
    ([H, E]; -inf where not allowed)."""
    members = loss.shape[2]
    best = np.inf
    for e in range(members):
        if allowed[e] and loss[b, h, e, k] < best:
            best = loss[b, h, e, k]
    n = count[b, h, k]
    factor = -ETA / max(best, 1e-12 * max(n, 1e-12)) if n > 0 else 0.0
    top = -np.inf
    for e in range(members):
        logits[h, e] = loss[b, h, e, k] * factor if allowed[e] else -np.inf
        top = max(top, logits[h, e])
    total = 0.0
    for e in range(members):
        weights[b, h, e, k] = math.exp(logits[h, e] - top)
        total += weights[b, h, e, k]
    for e in range(members):
        weights[b, h, e, k] /= total


@compiled
def softmax(x: np.ndarray) -> None:
    """``x`` [n] replaced by its softmax (at least one finite entry)."""
    top = -np.inf
    for e in range(x.shape[0]):
        top = max(top, x[e])
    total = 0.0
    for e in range(x.shape[0]):
        x[e] = math.exp(x[e] - top)
        total += x[e]
    for e in range(x.shape[0]):
        x[e] /= total


@compiled
def _weights(loss: np.ndarray, count: np.ndarray, allowed: np.ndarray, out: np.ndarray) -> None:
    n_rows, horizons, members, d = loss.shape
    logits = np.empty((horizons, members))
    for b in range(n_rows):
        for k in range(d):
            for h in range(horizons):
                member_weights(loss, count, allowed[b, :, k], b, h, k, logits, out)


def weights(loss: torch.Tensor, count: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """``[B, H, E, d]`` convex weights from loss [B, H, E, d] and count [B, H, d];
    ``allowed`` [B, E, d] says which members may take weight (at least one per row).

    >>> w = weights(torch.tensor([[[[1.0], [1.1]]]]), torch.ones(1, 1, 1), torch.ones(1, 2, 1, dtype=torch.bool))
    >>> round(w[0, 0, 1, 0].item() / w[0, 0, 0, 0].item(), 6) == round(math.exp(-ETA * 0.1), 6)
    True
    """
    out = torch.empty(loss.shape, dtype=torch.float64)
    _weights(_array(loss), _array(count), _array(allowed), out.numpy())
    return out
