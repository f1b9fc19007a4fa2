"""After a change: the members that have not caught up take no weight where they cannot be judged yet.

The combination weighs a member at horizon h by the errors of its forecasts made h steps before
(``combination``). After a change of the series (``o_shift_at``: a level shift or a change of spread
found by ``outliers``), the forecasts scored at h for the next h values were all made before it: they
miss by the shift, every member about alike, and say nothing of which members follow the new level.
So for h values the h-step weights are the old ones, and a member that lags (the median, 0.1 local
scales a value; a network still at the old level) keeps its weight there. A new user's (session 59):
level 50 + AR(1) noise, +60 at value 400: the served 12-step forecast was 20-30 off for about 12
origins after the change was found, with the median member (weight 0.12-0.16) still forecasting 50 and
the long AR on the levels -39 to 137.

What is known of them by then: the forecasts each member made since the change, at the horizons
already scored (1 .. t - o from origin o). ``lagging``: a member whose forecasts made since the change
missed the values seen so far by more than the half-width served with them, on average, has not caught
up; ``dropped``: at the horizons past the values seen since the change (h > t - o_shift_at, none of
whose forecasts made since it is scored yet) it takes no weight in the fast and slow combiners, each
renormalised (the pooled combiner's half of h = 1's weights, scored since, is kept), the served weights
their mixture as before (``combination.mixed_weights``). From ``Hc`` values after the
change on, every horizon has scored forecasts made after it and the rule ends; nothing is stored, the
losses are as they were (a flow whose "shift" returns within a day, waterflow's, keeps its median's
weight after it). A forecast read from the store as it is (``Forecaster.forecast``) applies it at every
horizon; one read from a snapshot (``Forecaster.view()``, the service's) serves the path the tick served to the
calibrated horizon and past it the members with the last horizon's weights without the rule (the forecasts it
reads, ``c_origin``, are in no snapshot): within Hc values of a change its far horizons' means may differ from
the ones the far widths are scored on.
"""

from __future__ import annotations

import numpy as np

from tbptt_online import combination
from tbptt_online.compiled import compiled, ring_value


@compiled
def lagging(origin, origin_ref, ring, slot: int, k: int, t: int, shift_at: int, members: int, out) -> int:
    """Which of the ``members`` lag after the series' last change at step ``shift_at`` (``out`` [E], the module
    doc), seen at step ``t``, from the forecasts remembered since it (``origin`` [N, Hc, Hc, E + 2 + COMBINERS, d]
    relative to ``origin_ref`` [N, Hc, d], at row ``slot``, feature ``k``; the values ring ``ring`` [N', R, d] read at
    ``slot`` too). Returns the values seen since the change (t - shift_at) where the rule applies (1 to
    Hc - 1, and some member keeps up), else 0."""
    horizons = origin.shape[1]
    since = t - shift_at
    if shift_at <= 0 or since < 1 or since >= horizons:
        return 0
    kept = False
    for e in range(members):
        total, n = 0.0, 0
        for o in range(shift_at, t):  # every origin since the change (still in the ring: since < Hc)
            ref = origin_ref[slot, o % horizons, k]
            for g in range(1, t - o + 1):  # its forecasts already scored
                made = origin[slot, o % horizons, g - 1]  # [E + 2 + COMBINERS, d]: members, served, width, combiners
                half = np.float64(made[members + 1, k])
                if half > 0.0:  # (0: no width of the horizon's own)
                    total += abs(ring_value(ring, slot, k, o + g) - (ref + np.float64(made[e, k]))) / half
                    n += 1
        out[e] = n > 0 and total > n  # missed by more than its widths, on average
        kept = kept or not out[e]
    return since if kept else 0


@compiled
def dropped(weights, combiners, lags, since: int) -> None:
    """At horizons ``since`` + 1 .. Hc (rows ``since`` .. Hc - 1 of one series' ``weights`` [Hc, E] and of
    ``combiners``, ``combination.mixed_weights``' scratch) the members that ``lags`` [E] take no weight in
    the fast and slow combiners, each renormalised (one whose other members' weights all underflowed is left
    as it is), and the served weights are their mixture again: the pooled combiner's half of the fast one's at h
    as it now is, its half of the fast one's at h = 1 as it was (scored since the change)."""
    horizons, members = weights.shape
    for h in range(since, horizons):
        at = h * members  # this horizon's block of each combiner's weights
        for i in range(2):  # the fast and slow combiners (the pooled one's: theirs, ``combination.pooled``)
            total = 0.0  # the weight of the members that keep up
            for e in range(members):
                total += 0.0 if lags[e] else combiners[i, at + e]
            if not total > 0.0:  # (every weight of theirs underflowed: this combiner as it is)
                continue
            for e in range(members):
                combiners[i, at + e] = 0.0 if lags[e] else combiners[i, at + e] / total
        combination.served_row(combiners, weights, h, members)  # mixed again, as ``mixed_weights`` mixes them
