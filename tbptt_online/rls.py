"""One step of recursive least squares with forgetting: the update both AR experts make.

For coefficients ``theta`` [K] and the inverse-covariance-like ``P`` [K, K] of one series
and feature, inputs ``phi`` [K] and a target y (all in units of the local scale):

    gain = P phi / (forget + phi' P phi),    theta <- theta + gain * clamp(y - theta' phi)
    P <- (P - gain (P phi)') / forget,       shrunk to trace ``max_trace`` where it passes it

(no excitation, a flat series, would grow P without bound). Nothing changes where the
result is not finite, or where a diagonal entry of the new P would be below 0: where phi' P phi
is many times ``forget`` the subtraction cancels, and its rounding can leave P indefinite (a
series climbing by 10^0.5 a value to 1e36 had a diagonal entry of -1.8e-4 against 0.025 at
value 85, and its checkpoint was refused by ``state_check``, a test after session 40's change
of the season re-checks).
"""

from __future__ import annotations

import math

from tbptt_online.compiled import compiled, within


@compiled
def rls_step(theta, p, b, k, work, target, forget, max_trace, clamp) -> None:
    """The step on ``theta`` [B, d, K] and ``p`` [B, d, K, K] at [b, k], in place; errors
    are clamped to +-``clamp``. ``work`` [3, >= K] is the caller's scratch: its row 0 holds
    the inputs phi (set by the caller), rows 1 and 2 are overwritten (P phi, the gain): a
    step allocates nothing (it runs twice per series and value). The new theta and P are
    formed twice, the same way: once to check that all are finite, once to write them."""
    order = theta.shape[2]
    for i in range(order):
        acc = 0.0
        for j in range(order):
            acc += p[b, k, i, j] * work[0, j]
        work[1, i] = acc  # (P phi)_i
    denominator, fitted = forget, 0.0
    for i in range(order):
        denominator += work[0, i] * work[1, i]
        fitted += theta[b, k, i] * work[0, i]
    for i in range(order):
        work[2, i] = work[1, i] / denominator  # the gain
    error = within(target - fitted, clamp)
    trace = 0.0  # of the new P, known before it is formed
    for i in range(order):
        trace += p[b, k, i, i] - work[2, i] * work[1, i]
    factor = min(max_trace / (trace / forget), 1.0) / forget
    for i in range(order):
        if not math.isfinite(theta[b, k, i] + work[2, i] * error):
            return
        if not (p[b, k, i, i] - work[2, i] * work[1, i]) * factor >= 0:  # rounding (module doc)
            return
        for j in range(order):
            if not math.isfinite((p[b, k, i, j] - work[2, i] * work[1, j]) * factor):
                return
    for i in range(order):  # each new element reads only its own old one (and the scratch): in place
        theta[b, k, i] = theta[b, k, i] + work[2, i] * error
        for j in range(order):
            p[b, k, i, j] = (p[b, k, i, j] - work[2, i] * work[1, j]) * factor
