"""One step of recursive least squares with forgetting: the update both AR experts make.

For coefficients ``theta`` [K] and the inverse-covariance-like ``P`` [K, K] of one series
and feature, inputs ``phi`` [K] and a target y (all in units of the local scale):

    gain = P phi / (forget + phi' P phi),    theta <- theta + gain * clamp(y - theta' phi)
    P <- (P - gain (P phi)') / forget,       shrunk to trace ``max_trace`` where it passes it,
    P <- P + LOADING trace(P) / K I

(no excitation, a flat series, would grow P without bound). Nothing changes where the
result is not finite, or where a diagonal entry of the new P would be below 0: where phi' P phi
is many times ``forget`` the subtraction cancels, and its rounding can leave P indefinite (a
series climbing by 10^0.5 a value to 1e36 had a diagonal entry of -1.8e-4 against 0.025 at
value 85, and its checkpoint was refused by ``state_check``, a test after session 40's change
of the season re-checks).

**P stays exactly symmetric**: each new element is formed once, for i <= j, and written to both
(i, j) and (j, i). Formed for each (i, j) on its own, ``gain_i (P phi)_j`` and ``gain_j (P phi)_i``
round differently, and the difference P - P' is not held back by anything: the update divides it
by ``forget`` at every step where no excitation shrinks it (its diagonal is 0, so the trace's
bound never sees it), a growth of 1 / 0.995 a value, e^40 in 8,000. On a weekly series with a
trend and a wandering level (session 43) the asymmetry was 3e-11 of P's largest entry at value
2,000 and 1.7 times it at value 10,000: P indefinite (its smallest eigenvalue -0.17 to -0.55 of
its largest), the AR experts' coefficients noise from then on, in every series that lives
longer than a few thousand values.

**And positive definite**: each step adds ``LOADING`` (1e-12) of P's mean diagonal entry to its
diagonal, a process noise far below anything the fit learns from (the forgetting adds 5e-3 of P a
step). Symmetric, P still lost its definiteness where a direction was never excited: rounding left an
eigenvalue of -4e-15 of the largest, and the forgetting multiplied it by 1 / 0.995 a value like the
rest (a series climbing by 10^0.5 a value to 1e36, then flat with 0.1 % noise: -8.8e-10 at value
3,000, -3e-3 at 6,000, its fits noise; a review, session 43). The loading is ten thousand times the
rounding of an entry (1e-16 of it) and is multiplied by 1 / 0.995 like it: on the review's five
streams of 6,000 values (two climbs to 1e36, with 0.1 and 1 % noise, one to 1e30, a ramp, a shift by
1e6) the smallest eigenvalue of every P stayed above 0, at least 4e-11 of the largest (its scripts, run
in session 43; ``test_rls.py`` keeps the first climb's 3,500 values).

**And where the subtraction cancels**: phi' P phi many times ``forget`` (past ``CANCELLING``: a spike
among a young series' values, of 5e20 after six values about 4) leaves the new P's diagonal at about 0
beside off-diagonal entries that did not cancel with it: eigenvalues of -1008 and 1009, no diagonal
entry below 0 (a hostile test, session 54: the model's own export refused on import). There the new P
is factorised before it is written (``semidefinite``: a Cholesky of P plus ``SEMIDEFINITE`` of its
largest diagonal entry), and the step is not made where that fails. ``ar_levels.reexpress`` checks its
re-expressed P the same way where the reference moved by more than one unit.

A saved P is checked for this (``state_check``): exactly symmetric, and positive semi-definite
(``positive_semidefinite``: its smallest eigenvalue at least -``INDEFINITE`` times its largest
magnitude: a corrupted or crafted P, not rounding). A state written
before (format 18 or older) is made symmetric as it loads, and a fit whose P had drifted away from
symmetry by ``ASYMMETRY`` of its largest entry, or is not positive semi-definite once symmetric,
starts again from its prior (``state_format``).
"""

from __future__ import annotations

import math

import torch

from tbptt_online.compiled import compiled, within

LOADING = 1e-12  # each step adds this share of P's mean diagonal entry to its diagonal (module doc)
ASYMMETRY = 1e-6  # a saved P this far from symmetric (a share of its largest entry) had drifted: restarted
INDEFINITE = 1e-6  # a saved P's smallest eigenvalue may be -this share of its largest magnitude, no less
CANCELLING = 1e3  # phi' P phi past this many times ``forget``: the new P's semi-definiteness is checked
SEMIDEFINITE = 1e-9  # ...its smallest eigenvalue at least -this share of its largest diagonal entry (below INDEFINITE)


def positive_semidefinite(p: torch.Tensor) -> torch.Tensor:
    """``[...]`` bool: per symmetric matrix of ``p`` [..., K, K] (float64), whether it is finite and its
    smallest eigenvalue is at least -``INDEFINITE`` times its largest magnitude.

    >>> positive_semidefinite(torch.tensor([[[2.0, 1.0], [1.0, 2.0]], [[1.0, 2.0], [2.0, 1.0]]], dtype=torch.float64))
    tensor([ True, False])
    """
    finite = torch.isfinite(p).flatten(start_dim=-2).all(dim=-1)  # [...]
    eye = torch.eye(p.shape[-1], dtype=p.dtype)
    values = torch.linalg.eigvalsh(torch.where(finite[..., None, None], p, eye))  # ascending; [..., K]
    return finite & (values[..., 0] >= -INDEFINITE * values.abs().amax(dim=-1))


@compiled
def rls_step(theta, p, b, k, work, target, forget, max_trace, clamp) -> None:
    """The step on ``theta`` [B, d, K] and ``p`` [B, d, K, K] at [b, k], in place; errors
    are clamped to +-``clamp``. ``work`` [3 + K, >= K] is the caller's scratch: its row 0 holds
    the inputs phi (set by the caller), rows 1 and 2 are overwritten (P phi, the gain), and rows
    3 .. 3 + K (the new P above its diagonal, kept from the check to the write; its lower triangle where its
    semi-definiteness is checked): a step allocates nothing (it runs four times per series and value). The new
    P is formed once, where it is checked that all is finite, and written from there (the upper triangle,
    mirrored; the diagonal is formed again)."""
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
        for j in range(i, order):
            value = (p[b, k, i, j] - work[2, i] * work[1, j]) * factor
            if not math.isfinite(value):
                return
            if j > i:
                work[3 + i, j] = value  # (above the diagonal: the check below writes on and below it)
    loading = LOADING * trace * factor / order  # of the new P's mean diagonal entry (module doc)
    if denominator > CANCELLING * forget:  # the subtraction cancels: is the new P still semi-definite?
        for i in range(order):
            for j in range(i, order):
                work[3 + j, i] = (p[b, k, i, j] - work[2, i] * work[1, j]) * factor + (loading if i == j else 0.0)
        if not semidefinite(work, order):
            return
    for i in range(order):  # each new element reads only its own old one (and the scratch): in place
        theta[b, k, i] = theta[b, k, i] + work[2, i] * error
        p[b, k, i, i] = (p[b, k, i, i] - work[2, i] * work[1, i]) * factor
        for j in range(i + 1, order):  # the upper triangle, mirrored: P stays exactly symmetric (module doc)
            p[b, k, i, j] = work[3 + i, j]
            p[b, k, j, i] = work[3 + i, j]
        p[b, k, i, i] += loading


@compiled
def semidefinite(work, order: int) -> bool:
    """Whether the symmetric matrix A whose lower triangle is in ``work[3 + i, j]`` (i >= j < ``order``)
    is positive semi-definite to ``SEMIDEFINITE`` of its largest diagonal entry, its smallest
    eigenvalue at least -that: whether A + that I has a Cholesky factorisation (an LDL' in place, L
    below the diagonal, every pivot of D on it above 0)."""
    top = 0.0
    for j in range(order):
        top = max(top, work[3 + j, j])
    shift = SEMIDEFINITE * top
    for j in range(order):
        pivot = work[3 + j, j] + shift
        for m in range(j):
            pivot -= work[3 + j, m] * work[3 + j, m] * work[3 + m, m]
        if not pivot > 0.0:  # (NaN too)
            return False
        work[3 + j, j] = pivot
        for i in range(j + 1, order):
            v = work[3 + i, j]
            for m in range(j):
                v -= work[3 + i, m] * work[3 + j, m] * work[3 + m, m]
            work[3 + i, j] = v / pivot
    return True
