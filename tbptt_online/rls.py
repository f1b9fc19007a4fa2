"""One step of recursive least squares with forgetting: the update both AR experts make.

For coefficients ``theta`` [K] and the inverse-covariance-like ``P`` [K, K] of one series
and feature, inputs ``phi`` [K] and a target y (all in units of the local scale):

    gain = P phi / (forget + phi' P phi),    theta <- theta + gain * clamp(y - theta' phi)
    P <- (P - gain (P phi)') / forget,       shrunk to trace ``max_trace`` where it passes it

(no excitation, a flat series, would grow P without bound). Nothing changes where the
result is not finite.
"""

from __future__ import annotations

import numpy as np

from tbptt_online.compiled import compiled


@compiled
def rls_step(theta, p, b, k, phi, target, forget, max_trace, clamp) -> None:
    """The step on ``theta`` [B, d, K] and ``p`` [B, d, K, K] at [b, k], in place; errors
    are clamped to +-``clamp``."""
    order = phi.shape[0]
    p_phi = np.zeros(order)
    for i in range(order):
        for j in range(order):
            p_phi[i] += p[b, k, i, j] * phi[j]
    denominator, fitted = forget, 0.0
    for i in range(order):
        denominator += phi[i] * p_phi[i]
        fitted += theta[b, k, i] * phi[i]
    gain = p_phi / denominator
    new_theta = theta[b, k] + gain * min(max(target - fitted, -clamp), clamp)
    trace = 0.0  # of the new P, known before it is formed
    for i in range(order):
        trace += p[b, k, i, i] - gain[i] * p_phi[i]
    factor = min(max_trace / (trace / forget), 1.0) / forget
    new_p = np.empty((order, order))
    for i in range(order):
        for j in range(order):
            new_p[i, j] = (p[b, k, i, j] - gain[i] * p_phi[j]) * factor
    if np.isfinite(new_theta).all() and np.isfinite(new_p).all():
        theta[b, k] = new_theta
        p[b, k] = new_p
