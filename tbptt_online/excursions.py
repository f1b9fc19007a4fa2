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
(``x_sdiff``, never less than the local scale), at a level as far outside the range
of the last ``NOVEL_SEASONS`` seasons of values (a level the series has not shown lately),
starts an *excursion* (``x_excursion``: its first step ``s``). The second condition keeps a
longer season's pattern: an office's weekend hours are 90 below the day before, but at the
nights' level, and a Monday's busy hours are Friday's; repaired as outages, the weekends
were erased from the ring, where the weekly season is found (the review's office series: the
season held went from 168 to 24, the served MAE over a day from 0.40 to 10.4).

When ``|d|`` is back within ``K`` times the usual size (the local scale has grown with the
excursion's own changes: the usual size alone) less than a season after it began, its values
in the ring are replaced by the values a season before them, carried by the seasonal
difference interpolated between its two ends:

    y_u <- y_{u-m} + d_before + (d_t - d_before) (u - s + 1) / (t - s + 1),   u = s .. t - 1,

``d_before = y_{s-1} - y_{s-1-m}`` (a trend's growth over a season stays in the values). An
excursion still out a season after it began is a change of the series: the ring keeps it, and
the value a season after its start is judged as any other (against the excursion's own first
value: a recovery from an outage of exactly a season starts no excursion; when it was not
judged, the next value started one against the outage, whose repair wrote the outage over
the healthy season after it). A departure that starts at the phase of the last excursion
repaired (``x_repaired``: its first step), within a step and ``NOVEL_SEASONS`` seasons of it,
is a burst that recurs each season, not an excursion: a hostile test's +1000 at the same two
hours each day was repaired once, then compared each day with its predecessor's repair and
repaired again, forever (the forecast of those hours 465 where the values were 1100).

Only the ring is repaired: the members' states (the levels, the seasonal indices, the AR's
coefficients, the combination's losses) learned from the excursion as it came, and what the
caller sent is still what results report and the series' statistics score. The seasonal
indices not learning during an excursion (or learning its error clipped at the bound) was
tried: an outage's replay by the smoothing members a day later was smaller (the test's: 13
below the cycle at most, 7 with it), but an excursion is only known to be one when it ends,
and a change of a whole season (a day at +100, a Sunday at 30 with a season of 24) then cost
the seasons a season of learning (the worst error over a day 9.8 against 1.5; h = 6 8.8
against 6.2); waterflow was the same either way.

The usual size is an exponential mean of ``|d|`` (``DECAY``), each winsorised at the bound,
not updated during an excursion; a season found (``experts.reseason``) starts it at the median
of ``|d|`` over the ring (``usual_seasonal_difference``) and ends any excursion.

State per series and feature: ``x_sdiff`` (float64, 0 = unknown: the first ``|d|`` starts it),
``x_excursion`` (int64, the step the excursion under way began; 0: none) and ``x_repaired``
(int64, the step the last excursion repaired began; 0: none).
"""

from __future__ import annotations

import numpy as np
import torch

from tbptt_online.compiled import compiled, ring_value

K = 10.0  # a seasonal difference beyond K times its usual size starts an excursion
DECAY = 0.95  # the usual size: an exponential mean of |y_t - y_{t-m}|, about the last 20
NOVEL_SEASONS = 3  # an excursion starts at a level outside the range of the last 3 seasons
FIELDS = ("x_sdiff", "x_excursion", "x_repaired")


def fields(n: int, d: int) -> dict[str, torch.Tensor]:
    """Blank rows for ``n`` series: the usual size unknown, no excursion."""
    return {
        "x_sdiff": torch.zeros(n, d, dtype=torch.float64),
        "x_excursion": torch.zeros(n, d, dtype=torch.int64),
        "x_repaired": torch.zeros(n, d, dtype=torch.int64),
    }


@compiled
def step(ring, slot, k, t, m, unit, sdiff, excursion, repaired, b) -> None:
    """Judge value ``t`` (1-based step, already in the ring [C, R, d] at row ``slot``, feature
    ``k``, with ``t - m >= 1``) against the value a season before; start, go on with, or end
    (repairing the ring) an excursion; ``unit`` the local scale; ``sdiff``, ``excursion``
    [B, d] the rows' state, at [b, k], and ``repaired`` [B, d] the first step of the last
    excursion repaired."""
    d = ring_value(ring, slot, k, t) - ring_value(ring, slot, k, t - m)
    usual = sdiff[b, k]
    start = excursion[b, k]
    if start > 0 and t - start >= m:  # out for a season: a change, which the ring keeps; value t is
        excursion[b, k] = 0  # judged as any other (y_{t-m} is the excursion's own: a recovery starts none)
        start = 0
    if start > 0:
        if abs(d) > K * usual:  # not the local scale: it has grown with the excursion's own changes
            return  # still out
        excursion[b, k] = 0
        repaired[b, k] = start
        before = ring_value(ring, slot, k, start - 1) - ring_value(ring, slot, k, start - 1 - m)
        span = t - start + 1
        for u in range(start, t):  # oldest first: each reads a value a season before the excursion
            carried = before + (d - before) * (u - start + 1) / span
            ring[slot, (u - 1) % ring.shape[1], k] = ring_value(ring, slot, k, u - m) + carried
    bound = K * max(usual, unit)
    departs = start == 0 and usual > 0 and abs(d) > bound and t - 1 - m >= 1
    if departs and _novel(ring, slot, k, t, m, bound) and not _recurs(t, repaired[b, k], m):
        excursion[b, k] = t
        return
    sdiff[b, k] = DECAY * usual + (1 - DECAY) * min(abs(d), bound) if usual > 0 else abs(d)


@compiled
def _recurs(t, last, m) -> bool:
    """A departure at step ``t`` starts within a step of the phase at which the excursion
    repaired last (step ``last``, 0: none) began, at most ``NOVEL_SEASONS`` seasons later: a
    burst that recurs each season, whose first one was taken for an excursion. Taken for one
    again, it would be compared with its predecessor's repair and repaired every season."""
    if last <= 0 or t - last > NOVEL_SEASONS * m + 1:
        return False
    phase, near = (t - last) % m, 1 if m >= 8 else 0  # within a step (of a season of 8 or more)
    return phase <= near or phase >= m - near


@compiled
def _novel(ring, slot, k, t, m, margin) -> bool:
    """Value ``t`` lies more than ``margin`` outside the range of the ``NOVEL_SEASONS`` seasons
    of values before it: a level the series has not shown lately. A departure from the season
    before that stays within the range (a weekend's quiet hours like its nights, a Monday's
    busy ones like Friday's: a pattern of a longer season) is not an excursion: repaired, it
    would be erased from the ring, from which the seasons are found."""
    value = ring_value(ring, slot, k, t)
    low, high = np.inf, -np.inf
    for u in range(max(t - min(NOVEL_SEASONS * m, ring.shape[1] - 1), 1), t):
        low = min(low, ring_value(ring, slot, k, u))
        high = max(high, ring_value(ring, slot, k, u))
    return value < low - margin or value > high + margin


def usual_seasonal_difference(values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[B, d]: the median of |y_s - y_{s-m}| over ``values`` [B, n, d] (oldest first; NaN: not to
    be read) for the season length ``lengths`` [B, d] (0 where it has none, or fewer than two
    differences: then ``step`` starts it from the first difference it sees).

    >>> usual_seasonal_difference(torch.tensor([[[1.0], [5.0], [2.0], [7.0], [2.0]]]), torch.tensor([[2]]))
    tensor([[1.]], dtype=torch.float64)
    """
    b, n, d = values.shape
    out = torch.zeros(b, d, dtype=torch.float64)
    for m in torch.unique(lengths).tolist():
        if m <= 0 or n - m < 2:
            continue
        bi, di = (lengths == m).nonzero(as_tuple=True)
        series = values[bi, :, di].to(torch.float64)  # [G, n]
        out[bi, di] = (series[:, m:] - series[:, :-m]).abs().nanmedian(dim=1).values.nan_to_num(0.0)
    return out
