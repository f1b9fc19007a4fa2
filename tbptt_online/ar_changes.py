"""The long AR expert: recursive least squares on the changes of a series, no season.

``ar_changes`` forecasts the change c_t = y_t - y_{t-1} from the ``ORDER`` changes before
it and a constant (the drift), all in units of the local scale (``experts.local_scale``),
fitted by recursive least squares with forgetting, and rolls the forecast changes forward
into values: an ARIMA(p, 1, 0) with p = ``ORDER``. It stands beside the seasonal experts
for what a fixed season cannot follow: a quasi-cycle whose length wanders (yearly sunspots,
9 to 14 years) is a damped oscillation of the changes that an AR of about one cycle
captures (river's SNARIMAX p = 11, d = 1 is the best of its grid there). The ``ar`` expert
of ``experts`` differences by the season as well and sees lags 1-3 and m, m + 1 only.

Its state, per series and feature: the coefficients ``x_arc`` [n, d, K] (K = ORDER + 1,
the constant first) and the inverse-covariance-like ``x_arc_p`` [n, d, K, K]; it reads
the values ring of ``experts`` (``ring_at``).
"""

from __future__ import annotations

import torch

ORDER = 12  # lags of the changes: about a cycle of a yearly quasi-cycle, a monthly year
K = ORDER + 1  # and the constant
FORGET = 0.995  # about the last 200 changes count
PRIOR = 0.3  # P_0 = PRIOR * I: a ridge of 1 / PRIOR per coefficient (units of the scale), fading by FORGET
MAX_TRACE = 1e4  # P is shrunk when its trace passes this (no excitation: a flat series)
CLAMP = 50.0  # normalised inputs and errors are clamped to +-this (a spike cannot blow it up)


def fields(n: int, d: int) -> dict[str, torch.Tensor]:
    """Blank rows for ``n`` series: no coefficients, the prior's P."""
    f64 = torch.float64
    return {
        "x_arc": torch.zeros(n, d, K, dtype=f64),
        "x_arc_p": PRIOR * torch.eye(K, dtype=f64).expand(n, d, K, K).clone(),
    }


def _inputs(changes: torch.Tensor, formed: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """[B, d, K]: the constant, then the changes ``changes`` [B, ORDER, d] (newest first) in
    units of ``scale`` [B, d], 0 where not ``formed``, clamped."""
    lagged = torch.where(formed, changes / scale[:, None], 0.0).clamp(-CLAMP, CLAMP).transpose(1, 2)  # [B, d, ORDER]
    return torch.cat([torch.ones_like(lagged[..., :1]), lagged], dim=-1)


def advance(
    rows: dict[str, torch.Tensor], mask: torch.Tensor, step: torch.Tensor, ring_at, scale: torch.Tensor
) -> None:
    """One recursive-least-squares step on the change at step ``step`` [B] (its value just
    written to the ring), where ``mask`` [B, d] it was observed and the ORDER + 1 changes it
    needs are in the ring; ``scale`` [B, d] > 0 the local scale."""
    ring, slot = rows["x_raw"], rows["slot"]
    d = ring.shape[2]
    back = torch.arange(0, ORDER + 2).view(1, -1, 1)  # y_t, y_{t-1}, ..., y_{t-ORDER-1}
    at = (step[:, None, None] - back).expand(-1, -1, d)  # [B, ORDER + 2, d]
    values = ring_at(ring, slot, at.clamp(min=1))
    changes = values[:, :-1] - values[:, 1:]  # [B, ORDER + 1, d]: c_t, c_{t-1}, ...
    formed = (at[:, 1:] >= 1) & (at[:, 1:] > step[:, None, None] - ring.shape[1])  # both values of a change known
    phi = _inputs(changes[:, 1:], formed[:, 1:], scale)  # [B, d, K]
    target = (changes[:, 0] / scale).clamp(-CLAMP, CLAMP)  # [B, d]
    theta, p = rows["x_arc"], rows["x_arc_p"]  # [B, d, K], [B, d, K, K]
    p_phi = torch.matmul(p, phi[..., None])[..., 0]  # [B, d, K]: P phi
    denominator = FORGET + (phi * p_phi).sum(-1, keepdim=True)  # [B, d, 1]
    gain = p_phi / denominator
    error = (target - (theta * phi).sum(-1)).clamp(-CLAMP, CLAMP)
    new_theta = theta + gain * error[..., None]
    # P <- (P - gain (P phi)^T) / FORGET, shrunk when its trace passes MAX_TRACE; the trace is
    # known before the matrix is formed (one pass over P, not four)
    trace = (p.diagonal(dim1=-2, dim2=-1).sum(-1) - (gain * p_phi).sum(-1)) / FORGET  # [B, d]
    factor = (MAX_TRACE / trace).clamp(max=1.0) / FORGET
    new_p = torch.addcmul(p, gain[..., :, None], p_phi[..., None, :], value=-1.0) * factor[..., None, None]
    fine = (mask & formed[:, 0])[..., None]  # [B, d, 1]: the change itself is known (observed now)
    fine = fine & torch.isfinite(new_theta).all(-1, keepdim=True) & torch.isfinite(new_p).flatten(2).all(-1)[..., None]
    rows["x_arc"] = torch.where(fine, new_theta, theta)
    rows["x_arc_p"] = torch.where(fine[..., None], new_p, p)


def path(rows: dict[str, torch.Tensor], step: torch.Tensor, horizon: int, ring_at, scale: torch.Tensor) -> torch.Tensor:
    """The forecasts [B, H, d] of steps t + 1 .. t + H: the changes rolled forward with
    their own predictions from the last ORDER changes."""
    ring, slot, theta = rows["x_raw"], rows["slot"], rows["x_arc"]
    d = ring.shape[2]
    back = torch.arange(0, ORDER + 1).view(1, -1, 1)
    at = (step[:, None, None] - back).expand(-1, -1, d)  # [B, ORDER + 1, d]
    values = ring_at(ring, slot, at.clamp(min=1))
    formed = (at[:, 1:] >= 1) & (at[:, 1:] > step[:, None, None] - ring.shape[1])
    changes = torch.where(formed, values[:, :-1] - values[:, 1:], 0.0)  # [B, ORDER, d], newest first
    # the normalised changes, oldest first, then the H forecast ones: [B, ORDER + H, d]
    known = (changes / scale[:, None]).clamp(-CLAMP, CLAMP).flip(1)
    buffer = torch.cat([known, known.new_zeros(len(slot), horizon, d)], dim=1)
    lags = theta[..., 1:].flip(-1).transpose(1, 2)  # [B, ORDER, d]: the coefficient of each, oldest first
    for n in range(ORDER, ORDER + horizon):
        buffer[:, n] = (theta[..., 0] + (lags * buffer[:, n - ORDER : n]).sum(1)).clamp(-CLAMP, CLAMP)
    return values[:, :1] + torch.cumsum(buffer[:, ORDER:] * scale[:, None], dim=1)  # [B, H, d]
