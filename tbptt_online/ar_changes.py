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
the values ring of ``experts``. ``advance`` and the path's steps (``path_start``, then
``path_next`` a step at a time) work on one series and feature (a row ``b`` of the rows' arrays,
feature ``k``): compiled (numba), they are called from the experts' kernels, which loop over
the rows (``expert_kernels.paths`` rolls this path together with ``ar_levels``' two).
"""

from __future__ import annotations

import numpy as np
import torch

from tbptt_online.compiled import compiled, inlined, ring_value, within
from tbptt_online.rls import rls_step

ORDER = 12  # lags of the changes: about a cycle of a yearly quasi-cycle, a monthly year
K = ORDER + 1  # and the constant
FORGET = 0.995  # about the last 200 changes count
PRIOR = 0.3  # P_0 = PRIOR * I: a ridge of 1 / PRIOR per coefficient (units of the scale), fading by FORGET
MAX_TRACE = 1e4  # P is shrunk when its trace passes this (no excitation: a flat series)
CLAMP = 50.0  # normalised inputs and errors are clamped to +-this (a spike cannot blow it up)
PATH_BOUND = 1.5  # a forecast change is at most this many times the largest change the forecast reads (or
# the drift): a fit whose recursion is explosive (a young series' 13 coefficients on 20 values) cannot run its
# path off; a series accelerating faster than 1.5^(1/12), 3.4 % a step, is capped too


def fields(n: int, d: int) -> dict[str, torch.Tensor]:
    """Blank rows for ``n`` series: no coefficients, the prior's P."""
    f64 = torch.float64
    return {
        "x_arc": torch.zeros(n, d, K, dtype=f64),
        "x_arc_p": PRIOR * torch.eye(K, dtype=f64).expand(n, d, K, K).clone(),
    }


@compiled
def _clamp(x: float) -> float:
    return within(x, CLAMP)


@compiled
def path_bound(window: np.ndarray, n: int, least: float) -> float:
    """How far one step of an AR's forecast path may go: PATH_BOUND times the largest
    ``|window[i]|`` of its first ``n`` entries (the past changes or z the recursion reads from),
    at least ``least``. Shared by both AR experts (``expert_kernels._ar_path``)."""
    bound = least
    for i in range(n):
        bound = max(bound, PATH_BOUND * abs(window[i]))
    return bound


JUMP = 4.0  # a level shift's change more than this many times both changes before it is a jump (``change``)


@compiled
def jumped(ring: np.ndarray, slot: int, k: int, step: int, shift_at: int, oldest: int) -> bool:
    """Whether the change at ``step`` is a level shift's jump: ``step`` is ``shift_at`` (the step of the
    series' last change that ``outliers`` found, 0: none), the two changes before it are in the ring (which
    holds steps ``oldest`` on), and it is more than JUMP times both. A series that accelerates (doubling every
    value: the outlier rule finds a level shift where it outran its forecasts) makes changes a few times the
    ones before, which are its dynamics; a counter's reset, -297,000 after changes of 1,000, is none."""
    if step != shift_at or step - 3 < max(oldest, 1):
        return False
    return outgrows(ring, slot, k, step, ring_value(ring, slot, k, step) - ring_value(ring, slot, k, step - 1))


@compiled
def outgrows(ring: np.ndarray, slot: int, k: int, step: int, jump: float) -> bool:
    """Whether the change ``jump`` at ``step`` is more than JUMP times both changes before it (at steps
    step - 1 and step - 2, in the ring: steps step - 3 on); ``jumped``, and the local scale's own test at a
    level shift (``expert_kernels.advance``, before the value at ``step`` is in the ring)."""
    before = ring_value(ring, slot, k, step - 1) - ring_value(ring, slot, k, step - 2)
    earlier = ring_value(ring, slot, k, step - 2) - ring_value(ring, slot, k, step - 3)
    return abs(jump) > JUMP * max(abs(before), abs(earlier))


@compiled
def jump_at(ring: np.ndarray, slot: int, k: int, shift_at: int, oldest: int) -> int:
    """The step whose change is a level shift's jump (``jumped``: ``shift_at``, the step of the series' last
    level shift, where its change is one), as ``change`` reads the ring (which holds steps ``oldest`` on); 0:
    none (no step before the fourth is a jump). Found once per series and value by the AR experts' kernels,
    before their changes are read: ``jumped`` reads the same values for each change of a series (a step is
    ``shift_at`` or not), and a call to it inside ``change`` left a path by which it could raise in every
    caller, which kept the compiler from pruning the reference counts of the arrays they are handed (two atomic
    operations each): the experts' advance and paths took 1-4 ms less each at 10,000 series (session 58)."""
    return shift_at if jumped(ring, slot, k, shift_at, shift_at, oldest) else 0


@inlined
def change(ring: np.ndarray, slot: int, k: int, step: int, jump: int) -> float:
    """The change y_s - y_{s-1} at step ``step`` from the values ring, but where it is a level shift's jump
    (``jump``: the step ``jump_at`` found, 0: none) the change before it: **a level shift is not a change** of
    the series' dynamics. Read as it came, a counter's reset (about +1,000 an hour, then 0) was a change of
    -297,000 among changes of 1,000 that the ARs on changes carried on for 12 steps, to -442,527 (the path
    bound, 1.5 times it), while the combination still weighted them 0.95 from the 300 values they had forecast
    best: the served mean was cut to 0 where 3,903 came (a new user's, session 55). Shared by both AR experts
    (``expert_kernels._z``)."""
    if jump > 0 and step == jump:
        step -= 1
    return ring_value(ring, slot, k, step) - ring_value(ring, slot, k, step - 1)


@compiled
def _formed(step: int, t: int, r: int) -> bool:
    """The change at ``step`` (its value and the one before) is known at t: both in the ring."""
    return step - 1 >= 1 and step - 1 > t - r


@compiled
def advance(
    theta: np.ndarray,
    p: np.ndarray,
    ring: np.ndarray,
    slot: int,
    b: int,
    k: int,
    t: int,
    observed: bool,
    scale: float,
    work: np.ndarray,
    jump: int,
) -> None:
    """One recursive-least-squares step on the change at step ``t`` (its value just written
    to the ring ``ring`` [C, R, d] at row ``slot``), where it was ``observed`` and the
    ORDER + 1 changes it needs are in the ring, and ``t`` is no level shift's jump (``jump``:
    ``jump_at``'s step, whose jump is none to learn from and reads as the change before it,
    ``change``); ``scale`` > 0 the local scale. ``theta``
    [B, d, K] and ``p`` [B, d, K, K] are updated in place at [b, k] (unchanged where the
    step is not usable or its result not finite); ``work`` [3 + K, >= K] scratch (``rls_step``)."""
    r = ring.shape[1]
    if not (observed and _formed(t, t, r)) or t == jump:  # (``jump`` is 0 or a step >= 4)
        return
    work[0, 0] = 1.0  # phi: the constant, then the changes c_{t-1} .. c_{t-ORDER} in units of the scale
    for i in range(1, K):
        s = t - i  # the change at step s: y_s - y_{s-1}
        work[0, i] = _clamp(change(ring, slot, k, s, jump) / scale) if _formed(s, t, r) else 0.0
    target = _clamp(change(ring, slot, k, t, jump) / scale)
    rls_step(theta, p, b, k, work, target, FORGET, MAX_TRACE, CLAMP)


@compiled
def path_start(theta, ring, slot, b, k, t, scale, buffer, jump) -> float:
    """The start of the forecasts' path (``path_next``): the changes are rolled forward with their own
    predictions from the last ORDER changes (theta [B, d, K] at [b, k]), normalised by ``scale`` into
    ``buffer`` [>= ORDER + H] (the caller's scratch) oldest first, ``buffer[ORDER - 1]`` the change at t;
    returns the bound of each forecast change: PATH_BOUND times the largest of those ORDER (at least the
    drift, theta's constant). ``jump`` the step of the series' last level shift's jump (``jump_at``, 0:
    none), whose change reads as the one before it (``change``)."""
    r = ring.shape[1]
    buffer[:ORDER] = 0.0  # a change not in the ring counts 0
    for j in range(ORDER):
        s = t - (ORDER - 1 - j)  # buffer[ORDER - 1] is the change at t
        if _formed(s, t, r):
            buffer[j] = _clamp(change(ring, slot, k, s, jump) / scale)
    # at least the drift: a flat window does not freeze a series that steps up now and then
    return path_bound(buffer, ORDER, abs(theta[b, k, 0]))  # of the last ORDER changes (normalised)


@inlined
def path_next(theta, b, k, buffer, n, bound) -> float:
    """The forecast change ``buffer[n]`` (n >= ORDER: n - ORDER + 1 steps ahead, normalised), from the ORDER
    before it (``path_start``), within +-``bound``; returned. The forecast of step t + h + 1 is the value at t
    plus the first h + 1 of them times the scale (``expert_kernels.paths`` sums them)."""
    acc = 0.0
    for j in range(ORDER):  # buffer[n - 1 - j] is lag j + 1, coefficient theta[1 + j]
        acc += theta[b, k, 1 + j] * buffer[n - 1 - j]
    buffer[n] = within(_clamp(theta[b, k, 0] + acc), bound)
    return buffer[n]
