"""Excursions: a stretch of a seasonal series out of its pattern (an outage, a burst) is not
replayed a season later.

A flow that drops from 103 to 24 for thirteen hours and comes back is, for every member that
reads the values ring a season back, a pattern: the seasonal naive forecast the outage again
the next day, the seasonal AR (which adds the changes of a season before) too, and the network
read it among its inputs; the combination, which had just seen the seasonal naive right where
the others were wrong (its forecasts made during the outage were of a normal day), gave it
most of its weight at h = 12. On waterflow the served forecast went to 62 where the flow was
103, for a day after each outage, and the MAE over h = 1..12 was 1.09 times the naive's.

So, per series and feature with a season ``m`` (the first), after value ``y_t`` enters the
ring: the seasonal difference ``d = y_t - y_{t-m}`` more than ``K`` times its usual size
(``x_sdiff``, never less than the local scale) starts an *excursion* (``x_excursion``: its
first step ``s``). While it lasts, the smoothing's seasonal indices do not learn (the levels
do). When ``|d|`` is back within ``K`` times the usual size (the local scale has grown with
the excursion's own changes: the usual size alone) less than a season after it began, its
values in the ring are replaced by the values a season before them, carried by the seasonal
difference interpolated between its two ends:

    y_u <- y_{u-m} + d_before + (d_t - d_before) (u - s + 1) / (t - s + 1),   u = s .. t - 1,

``d_before = y_{s-1} - y_{s-1-m}`` (a trend's growth over a season stays in the values). An
excursion still out a season after it began is a change of the series: the ring keeps it, and
the seasonal difference measures against it from then on. Only the ring is repaired: the
members' states (the levels, the AR's coefficients, the combination's losses) learned from the
excursion as it came, and what the caller sent is still what results report and the series'
statistics score.

The usual size is an exponential mean of ``|d|`` (``DECAY``), each winsorised at the bound,
not updated during an excursion; a season found (``experts.reseason``) starts it at the median
of ``|d|`` over the ring (``usual_seasonal_difference``) and ends any excursion.

State per series and feature: ``x_sdiff`` (float64, 0 = unknown: the first ``|d|`` starts it)
and ``x_excursion`` (int64, the step the excursion under way began; 0: none).
"""

from __future__ import annotations

import torch

from tbptt_online.compiled import compiled, ring_value

K = 10.0  # a seasonal difference beyond K times its usual size starts an excursion
DECAY = 0.95  # the usual size: an exponential mean of |y_t - y_{t-m}|, about the last 20
FIELDS = ("x_sdiff", "x_excursion")


def fields(n: int, d: int) -> dict[str, torch.Tensor]:
    """Blank rows for ``n`` series: the usual size unknown, no excursion."""
    return {
        "x_sdiff": torch.zeros(n, d, dtype=torch.float64),
        "x_excursion": torch.zeros(n, d, dtype=torch.int64),
    }


@compiled
def step(ring, slot, k, t, m, unit, sdiff, excursion, b) -> bool:
    """Judge value ``t`` (1-based step, already in the ring [C, R, d] at row ``slot``, feature
    ``k``, with ``t - m >= 1``) against the value a season before; start, go on with, or end
    (repairing the ring) an excursion; ``unit`` the local scale; ``sdiff``, ``excursion``
    [B, d] the rows' state, at [b, k]. Returns whether value ``t`` is in an excursion (out of
    its seasonal pattern)."""
    d = ring_value(ring, slot, k, t) - ring_value(ring, slot, k, t - m)
    usual = sdiff[b, k]
    start = excursion[b, k]
    if start > 0:
        if t - start >= m:  # out for a season (y_{t-m} is the excursion's own): a change, which the ring keeps
            excursion[b, k] = 0
            return False
        if abs(d) > K * usual:  # not the local scale: it has grown with the excursion's own changes
            return True  # still out
        excursion[b, k] = 0
        before = ring_value(ring, slot, k, start - 1) - ring_value(ring, slot, k, start - 1 - m)
        span = t - start + 1
        for u in range(start, t):  # oldest first: each reads a value a season before the excursion
            carried = before + (d - before) * (u - start + 1) / span
            ring[slot, (u - 1) % ring.shape[1], k] = ring_value(ring, slot, k, u - m) + carried
    bound = K * max(usual, unit)
    if start == 0 and usual > 0 and abs(d) > bound and t - 1 - m >= 1:
        excursion[b, k] = t
        return True
    sdiff[b, k] = DECAY * usual + (1 - DECAY) * min(abs(d), bound) if usual > 0 else abs(d)
    return False


def usual_seasonal_difference(values: torch.Tensor, period: torch.Tensor) -> torch.Tensor:
    """[B, d]: the median of |y_s - y_{s-m}| over ``values`` [B, n, d] (oldest first) for the
    season ``period`` [B, d] (0 where it has none, or fewer than two differences: then ``step``
    starts it from the first difference it sees).

    >>> usual_seasonal_difference(torch.tensor([[[1.0], [5.0], [2.0], [7.0], [2.0]]]), torch.tensor([[2]]))
    tensor([[1.]], dtype=torch.float64)
    """
    b, n, d = values.shape
    out = torch.zeros(b, d, dtype=torch.float64)
    for m in torch.unique(period).tolist():
        if m <= 0 or n - m < 2:
            continue
        bi, di = (period == m).nonzero(as_tuple=True)
        series = values[bi, :, di].to(torch.float64)  # [G, n]
        out[bi, di] = (series[:, m:] - series[:, :-m]).abs().median(dim=1).values
    return out
