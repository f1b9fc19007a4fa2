"""Widths that follow a positive series' level where its errors grow with it (session 62).

The widths' scales are kept in the series' units (``calibration``: ``S / N``, about the last 20 errors at each
horizon; ``q_1``'s conformal step follows a growth of 4 % a value only at a share of misses of 20 %). Where the
level grows and the errors grow with it (multiplicative noise), the widths lag: Johnson & Johnson's earnings, 0.71 to
16.2 over 84 quarters (about 4 % a quarter), held 83 / 81 / 73 % of the values at h = 1 / 6 / 12.

So, where every value so far is positive (``x_positive``), each value's growth ``g = exp(elasticity * b)``
(``growths``, before the value is scored) is applied twice:

- an error scored at horizon h, and the width served with it, count in the widths' scale times ``g^h``
  (``hybrid_kernels.score``, ``score_far``: in the level the widths will be served at, h values after the origin
  they are served from; the miss is judged as before, both scaled alike);
- after the value, the width state kept in units (``q``, the scales' sums S, the far horizons' alike; not the counts,
  multipliers or ratios) is multiplied by g (``follow``): the errors the scales hold count in the level of now.

``b`` is the log-units trend family's trend (``LEVEL_VARIANT``: the level's growth a value as the model sees it,
smooth; not the level's own move, which a clipped spike moves: tried first, a server metric's one-step MAE went
0.824 -> 0.871 through the outliers its widths then let in). ``elasticity`` in [0, 1], how much the series' spread
grows with its level, is **measured** from the values ring (``elasticity``): the log ratio of the mean absolute
change of the change (over the first season where there is one) over the last ``WINDOW`` values to that of the
oldest ``WINDOW`` within ``LOOKBACK`` (ending at the same phase of the season), over the log ratio of their mean
levels, where the level moved by at least ``LEVEL_MOVE`` (else 0: where the level hardly moved the widths do not
lag, and the ratio of two noisy spreads over a small move says nothing). The change of the change, not the change:
a trend's own speed is no spread (a server's users, climbing fast at their peaks, read as multiplicative by their
changes, and their 12-step widths shrank with the falls after them: 84.8 -> 79.7 % covered). A series whose noise
is additive keeps its widths in units. Not at a level shift (``outliers``: the trend's level starts there, and the
widths of the first values after a change are those before it, "After a change").
"""

from __future__ import annotations

import math

from tbptt_online.compiled import compiled, ring_value

LEVEL_VARIANT = 2  # ``experts.VARIANTS``' log-units family of gamma 0.1: its trend is the log level's growth a value
WINDOW = 10  # the values each mean is taken over (two of them, and a season, within a young series' first values)
LOOKBACK = 100  # the older window is the oldest WINDOW values within this many (and within the ring)
LEVEL_MOVE = math.log(1.5)  # the elasticity is measured where the two windows' levels are this far apart (log)
GROWTH_BOUNDS = (0.5, 2.0)  # the growth taken over one value


@compiled
def _level(ring, s: int, k: int, last: int) -> float:
    """The mean of the ``WINDOW`` values ending at step ``last`` (row ``s``, feature ``k`` of the values ring [C, R,
    d]; step i at (i - 1) % R): read first, and the spreads only where it moved (a tick of 10,000 positive series
    read both windows' spreads at every value: +7 and +14 % of process CPU in two of three pairs)."""
    r = ring.shape[1]
    at = (last - WINDOW) % r  # step last - WINDOW + 1's place
    total = 0.0
    for _ in range(WINDOW):
        total += ring[s, at, k]
        at = at + 1 if at + 1 < r else 0
    return total / WINDOW


@compiled
def _spread(ring, s: int, k: int, last: int, lag: int) -> float:
    """The mean absolute change of the changes over ``lag`` values, ``|(y_i - y_{i-lag}) - (y_{i-1} - y_{i-1-lag})|``,
    over the ``WINDOW`` values ending at step ``last`` (the ring must hold the ``lag`` + 1 values before them): the
    noise's size without a linear trend's (the changes themselves grow with a trend's speed: a series that climbs
    fast at its peaks would read as multiplicative)."""
    spread = 0.0
    for step in range(last - WINDOW + 1, last + 1):
        change = ring_value(ring, s, k, step) - ring_value(ring, s, k, step - lag)
        spread += abs(change - (ring_value(ring, s, k, step - 1) - ring_value(ring, s, k, step - 1 - lag)))
    return spread / WINDOW


@compiled
def elasticity(ring, s: int, k: int, t: int, season: int) -> float:
    """How much the spread of row ``s``'s, feature ``k``'s values grows with their level, in [0, 1], after value
    ``t`` (module doc): d log(mean |change|) / d log(mean value) between the last ``WINDOW`` values and the
    oldest ``WINDOW`` within ``LOOKBACK`` and the ring, a change over the first ``season`` (1 where none: a
    season's own swing is no spread) and, with a season, the older window ending at the same phase as the newer
    (a season longer than a window: ten night hours against ten day hours read a level moved by the season; the
    look back then as long as it takes, at least two seasons and both windows); 0 where fewer values are held,
    where the levels are less than ``LEVEL_MOVE`` apart or where either window's level or spread is not > 0."""
    lag = season if season >= 2 else 1
    phases = lag if lag >= 2 else 0  # (the older window's end moved forward to t's phase, at most lag - 1 values)
    back = min(t, max(LOOKBACK, 2 * WINDOW + lag + phases + 1), ring.shape[1])  # the values held: t - back + 1 .. t
    first = t - back + lag + 1 + WINDOW  # the older window's earliest end (its changes read lag + 1 values before it)
    if phases:
        first += (t - first) % phases
    if first > t - WINDOW:  # (the two windows apart)
        return 0.0
    old_level, new_level = _level(ring, s, k, first), _level(ring, s, k, t)
    if not (old_level > 0.0 and new_level > 0.0):
        return 0.0
    moved = math.log(new_level / old_level)
    if not abs(moved) >= LEVEL_MOVE:
        return 0.0
    old_spread, new_spread = _spread(ring, s, k, first, lag), _spread(ring, s, k, t, lag)
    if not (old_spread > 0.0 and new_spread > 0.0):
        return 0.0
    return min(max(math.log(new_spread / old_spread) / moved, 0.0), 1.0)


@compiled
def grown(q, spread, far_q, far_spread, b: int, k: int, growth: float) -> None:
    """Row ``b``'s, feature ``k``'s width state kept in units multiplied by ``growth`` (within ``GROWTH_BOUNDS``):
    ``q`` [B, H, d], the scale's sum S of ``spread`` [B, H, SPREAD_COLUMNS, d] (its count and multiplier are not
    in units), and the far horizons' ``far_q`` [B, F, d] and ``far_spread`` alike."""
    g = min(max(growth, GROWTH_BOUNDS[0]), GROWTH_BOUNDS[1])
    for i in range(q.shape[1]):
        q[b, i, k] *= g
        spread[b, i, 0, k] *= g
    for f in range(far_q.shape[1]):
        far_q[b, f, k] *= g
        far_spread[b, f, 0, k] *= g


@compiled
def growths(slot, step, ring, lengths, trend, positive, out) -> None:
    """Before value ``step`` [B] is scored: each row's and feature's growth a value into ``out`` [B, d],
    ``exp(elasticity * b)`` (module doc; the values ``ring`` [C, R, d] at the rows' ``slot`` [B] up to the value
    before, their seasons ``lengths`` [B, d, 2], the log family's trend of ``trend`` [B, V, d]); 1 where a value
    so far was not positive (``positive`` [B, d]) or the spread does not grow with the level."""
    n_rows, d = positive.shape
    for b in range(n_rows):
        for k in range(d):
            out[b, k] = 1.0
            growth = trend[b, LEVEL_VARIANT, k]
            if positive[b, k] and growth != 0.0 and math.isfinite(growth):
                share = elasticity(ring, slot[b], k, step[b] - 1, lengths[b, k, 0])
                if share > 0.0:
                    out[b, k] = min(max(math.exp(share * growth), GROWTH_BOUNDS[0]), GROWTH_BOUNDS[1])


@compiled
def follow(growth, positive, shifted, q, spread, far_q, far_spread) -> None:
    """After the experts' advance: the widths kept in units (``q``, ``spread``, ``far_q``, ``far_spread``) grown by
    each row's ``growth`` [B, d] (``growths``) where every value so far, this one too, is positive (``positive``
    [B, d]) and it is not a level shift (``shifted``)."""
    n_rows, d = growth.shape
    for b in range(n_rows):
        for k in range(d):
            if growth[b, k] != 1.0 and positive[b, k] and not shifted[b, k]:
                grown(q, spread, far_q, far_spread, b, k, growth[b, k])
