"""The hybrid's part of a tick in three compiled calls (``HybridTick``), each the kernels it
replaced called one after the other on the same arrays, so the results are theirs bit for bit.

A tick of one series spent most of its time between kernels, not in them: a dozen calls from
Python, each converting its tensors, slicing them for ``over_rows`` and allocating its
outputs, around arithmetic of a few microseconds. Grouped by what separates them:

- ``before_seasons``: the scoring of past forecasts (``hybrid_kernels.score``), the network's
  target (``hybrid_kernels.target``) and the experts' advance (``expert_kernels.advance``);
- then, at a detection step only, the season detection in Python (``HybridTick.seasons``);
- ``after_seasons``: the experts' paths (``expert_kernels.paths``), the base
  (``hybrid_kernels.base``), the base's next value and local scale (``n_base``, ``n_scale``)
  and the network's input (``hybrid_kernels.features``);
- then the network's step (torch);
- ``served``: the half-widths at the tracked level (``calibration.fill_half_widths``), the
  origin's forecasts remembered (``hybrid_kernels.remember``) and the one-step forecast as
  served (``_interval``).

``forecast_rows`` serves a view's forecast (and a loaded state's first one) by the same rule,
``_interval``: nothing before a value was seen, the lower bound cut at 0 where every value so
far was >= 0.

After values missing in a row (``x_missing``: an outage, or a timestamp gap the service fills),
a forecast h steps ahead is one of missing + h steps from the last value observed, and both serve
it with that horizon's half-width (``_width_after``). Until session 35 the value after a gap of
G was served the one-step width: on a random walk 17-39 % of them were covered after gaps of 5 to
100, and 22-28 % were flagged as outliers and learned from at their bounds (a hostile test).

Each takes the rows' arrays in tuples in the order of the kernel they go to (``hybrid``'s
and ``experts``' field lists); the row-wise arrays of a call are sliced by ``over_rows`` as
before, the shared ones (the values ring, the seasonal tables, the origins' ring) passed whole.
"""

from __future__ import annotations

import math

import numpy as np

from tbptt_online import calibration, expert_kernels, hybrid_kernels, level_widths
from tbptt_online.compiled import compiled, inlined


@compiled
def before_seasons(
    slot, step, y, mask, shifted, origin, origin_ref, interval_level, normals, scored, combined, far, advanced, target,
    phased, judged,
):  # fmt: skip
    """Score value ``y`` [B, d] (``hybrid_kernels.score``: ``scored`` = (x_seen, x_scale,
    x_level), ``combined`` = ``hybrid.SCORED``'s fields (the combination's, c_q, c_spread, c_shape,
    c_member_abs, c_member_n, c_coverage); ``interval_level`` the tracked level, ``normals`` = its
    normal ratios and normal multiplier, ``calibration.normals``), make the
    network's target from the base and scale of the last tick (``hybrid_kernels.target``,
    ``target`` = (n_base, n_scale, out, defined) [B, d] each), step the far horizons' half-widths
    (``hybrid_kernels.score_far``, ``far`` = (c_far_origin, the store's ring, c_far_q, c_far_spread,
    the far horizons [F], c_far_coverage)), then advance the experts
    (``expert_kernels.advance``, ``advanced`` = the values ring, the seasonal tables and the
    rows' fields in ``experts.ADVANCED`` order); ``phased`` = (c_phase, c_phase_of, x_season_length, the
    values ring, two scratches [B, d]): the errors' phase factors and the levels' growth (``hybrid_kernels.score``;
    ``level_widths.growths`` before the scoring, the widths grown by it after the advance, ``level_widths.follow``);
    ``judged`` = (the values as sent, x_nonneg [B, d] each): what the coverage per horizon counts."""
    seen, scale, level = scored
    normal, multiplier = normals
    growth = phased[6]  # [B, d] the level's growth a value where the spread grows with it (``level_widths``)
    ring, lengths, trend, positive = advanced[0], advanced[2], advanced[5], advanced[6]
    level_widths.growths(slot, step, ring, lengths, trend, positive, growth)
    hybrid_kernels.score(
        slot, step, y, mask, seen, scale, level, origin, origin_ref, *combined, interval_level, normal, multiplier,
        phased, judged,
    )  # fmt: skip
    factor, far_at, far_coverage = phased[5], far[3], far[4]
    hybrid_kernels.score_far(
        slot, step, y, mask, seen, scale, level, *far[:3], far_at, interval_level, multiplier, factor, growth,
        far_coverage, judged,
    )  # fmt: skip
    hybrid_kernels.target(y, mask, seen, *target)
    expert_kernels.advance(slot, step, y, mask, shifted, *advanced)
    level_widths.follow(growth, positive, shifted, *combined[6:8], *far[1:3])


@compiled
def after_seasons(slot, step, y, target, read, weights, far_at, paths, base, next_base, features, origins):
    """The experts' ``paths`` [B, Hc + F, E - 1, d] (``expert_kernels.paths``, ``read`` = the values
    ring, the seasonal tables and the fields of ``experts.READ``): the horizons 1 .. Hc, then the far
    horizons ``far_at`` [F], their combination
    ``base`` = (path, partial, net) (``hybrid_kernels.base``, ``weights`` = the combination's
    fields, x_positive, x_season_length, c_member_n, o_shift_at; past Hc, Hc's weights; ``origins`` = the
    store's c_origin, c_origin_ref: the forecasts made since a change, ``after_change``), ``next_base`` = (n_base,
    n_scale) [B, d] each written in place (the base's next value and the local scale it is made in),
    and the network's input ``features`` [B, F * d] (``hybrid_kernels.features``)."""
    ring, lengths, scale, level = read[0], read[2], read[3], read[4]  # (read[1]: the seasonal tables)
    tracked = base[2].shape[1]  # Hc
    expert_kernels.paths(paths, tracked, far_at, calibration.FAR_EVERY, slot, step, *read)  # Hc, then the far ones
    path, partial, net = base
    changed = (slot, step, weights[-1], origins[0], origins[1], ring)  # (``after_change``)
    hybrid_kernels.base(paths, *weights[:-1], changed, path, partial, net)
    n_base, n_scale = next_base
    n_rows, d = y.shape
    for b in range(n_rows):
        for k in range(d):
            n_base[b, k] = path[b, 0, k]
            n_scale[b, k] = _local_scale(scale[b, k], level[b, 0, expert_kernels.REFERENCE, k])
    hybrid_kernels.features(slot, step, y, ring, lengths, scale, level, target, n_base, features)


@compiled
def _local_scale(scale: float, level: float) -> float:
    """``experts.local_scale`` of one row and feature: numpy's ``maximum`` (NaN if either is)."""
    relative = expert_kernels.UNIT_RELATIVE * abs(level)
    wider = scale if math.isnan(scale) or scale >= relative else relative
    return wider if math.isnan(wider) or wider >= expert_kernels.UNIT_FLOOR else expert_kernels.UNIT_FLOOR


@inlined
def _interval(mean: float, half: float, seen: bool, nonneg: bool) -> tuple[float, float, float]:
    """The forecast served about ``mean`` with half-width ``half`` (NaN: no interval yet):
    (mean, lower, upper), NaN before a value was ``seen``, the lower bound not below 0 where
    every value so far was >= 0 (``nonneg``): the mean is not either (``hybrid_kernels._served``),
    and a counter's 24-step path with lower bounds down to -2,402 told its reader nothing the
    value could be."""
    m = mean if seen else math.nan
    lower = m - half
    return m, 0.0 if nonneg and lower < 0.0 else lower, m + half


@inlined
def _width_after(full, q, far, far_at, ratio, b: int, k: int, h: int, missing: int) -> float:
    """The half-width of the forecast h + 1 steps ahead (``h`` 0-based) after ``missing`` values
    missing in a row: that of horizon j = missing + h + 1, from ``full`` [B, Hw, d] (horizons
    1 .. Hw, ``calibration.fill_half_widths`` of ``q`` [B, Hq, d], the far horizons' ``far`` [B, F, d]
    at ``far_at`` [F] and ``ratio`` [B, R, d], Hw >= Hq) up to Hw, past it by that rule in closed
    form: ``calibration.beyond`` (q_1 sqrt(j) where q_Hq is not > 0), times the last ratio, at least
    ``SLACK`` of the widest of ``full`` and of the known far widths before j (the widths past Hq run
    from one known width to the next as a power of h: the widest between Hw and j is one of them, or
    j's own; without the far ones, a width narrowing from 24 to 48 served 7.0 at the same step asked
    for 40 horizons and 3.3 asked for 20, a review)."""
    j, widths, tracked = missing + h + 1, full.shape[1], q.shape[1]
    if j <= widths:
        return full[b, j - 1, k]
    first = q[b, 0, k]
    if not first > 0.0:
        return math.nan
    known = calibration.beyond(q, far, far_at, b, k, j, math.sqrt(j / tracked))
    width = (known if known > 0.0 else first * math.sqrt(j)) * ratio[b, ratio.shape[1] - 1, k]
    widest = -math.inf
    for i in range(widths):
        widest = max(widest, full[b, i, k])
    for f in range(far_at.shape[0]):
        if widths < far_at[f] < j and far[b, f, k] > 0.0 and q[b, tracked - 1, k] > 0.0:
            widest = max(widest, far[b, f, k] * ratio[b, ratio.shape[1] - 1, k])
    return max(width, calibration.SLACK * widest)


@compiled
def served(q, far, ratio, roots, remembered, slot, at, origin, origin_ref, seen, missing, half, mean, out, phased):
    """The half-widths at the tracked level ``half`` [B, Hc, d] from ``q`` = c_q and ``far`` =
    (c_far_q, the far horizons [F], the store's ring c_far_origin, the ring's place of each row, step % R)
    (``calibration.fill_half_widths``, ``ratio`` [B, 1, d] of ones, ``roots`` = its two tables;
    after ``missing`` [B, d] values missing in a row, those of horizons missing + 1 .. missing + Hc:
    ``_width_after``), the tick's served ``mean`` [B, Hc, d] and the origin's forecasts written into
    the ring (``hybrid_kernels.remember``, ``remembered`` = (paths, path, partial, net,
    n_correction, x_scale, x_level, x_nonneg); a horizon whose own q is 0 remembered with width 0),
    and the one-step forecast as served into ``out`` [B, 4, d]: mean, mean, lower, upper
    (``_interval``, ``seen`` = x_seen, x_nonneg). The far horizons' served means, at the paths' rows
    Hc .., and their half-widths (``calibration.fill_far_widths``; 0, none of their own, after values
    missing in a row) are written into the far ring (``hybrid_kernels.remember_far``). Every half-width
    served (and remembered) is the tracked one times its target's phase factor (``phased`` = (c_phase,
    c_phase_of, c_phase_fit, x_season_length, step), ``calibration.phase_widths``)."""
    far_q, far_at, far_origin, far_place = far
    calibration.fill_half_widths(q, far_q, far_at, ratio, roots[0], roots[1], half)
    far_half = np.empty(far_q.shape)
    calibration.fill_far_widths(q, far_q, far_at, half, far_half)
    owned = q > 0.0  # [B, Hc, d] the horizons with a width of their own (else taken from shorter ones)
    if (missing > 0).any():
        full = half.copy()
        n_rows, hc, d = half.shape
        for b in range(n_rows):
            for k in range(d):
                if missing[b, k] > 0:
                    for f in range(far_at.shape[0]):
                        far_half[b, f, k] = 0.0  # judged against c_far_q itself
                    for h in range(hc):
                        half[b, h, k] = _width_after(full, q, far_q, far_at, ratio, b, k, h, missing[b, k])
                        owned[b, h, k] = q[b, min(missing[b, k] + h + 1, hc) - 1, k] > 0.0
    phase, phase_of, gain, lengths, step = phased
    calibration.phase_widths(phase, phase_of, gain, lengths, step, far_at, half, far_half)
    own = np.where(owned, half, 0.0)  # [B, Hc, d] the widths remembered: 0 where not the horizon's own
    paths, path, partial, net, correction, scale, level, nonneg = remembered
    hc = net.shape[1]
    hybrid_kernels.remember(
        paths[:, :hc], path[:, :hc], partial[:, :hc], net, correction, scale, level, nonneg, own, slot, at, origin,
        origin_ref, mean,
    )  # fmt: skip
    if far_at.shape[0] > 0:
        hybrid_kernels.remember_far(
            path, partial, net, correction, scale, level, nonneg, seen, far_half, slot, far_place, far_origin
        )
    n_rows, _, d = half.shape
    for b in range(n_rows):
        for k in range(d):
            m, out[b, 2, k], out[b, 3, k] = _interval(mean[b, 0, k], half[b, 0, k], seen[b, k], nonneg[b, k])
            out[b, 0, k], out[b, 1, k] = m, m


@compiled
def forecast_rows(path, q, far, far_at, ratio, roots, seen, nonneg, missing, out, phased) -> bool:
    """A view's forecast to horizon H of B rows from what the last tick served: ``path`` [B, H, d]
    the served mean, ``q`` [B, Hq, d] the rows' c_q and ``far`` [B, F, d] their c_far_q at the far
    horizons ``far_at`` [F], with ``ratio`` [B, R, d] the level asked's
    width over the tracked one's (``calibration.half_widths``, ``roots`` = its two tables, to
    max(H, Hq): ``horizon_roots``), after ``missing`` [B, d] values missing in a row the widths of
    horizons missing + 1 .. missing + H (``_width_after``), into ``out`` [B, 3, H, d]: mean, lower,
    upper (``_interval``, ``seen`` and ``nonneg`` [B, d]), each width times its target's phase factor
    (``phased`` = (c_phase, c_phase_of, c_phase_fit, x_season_length, step), ``calibration.phase_widths``). Returns
    whether any is NaN."""
    n_rows, horizon, d = path.shape
    half = np.empty((n_rows, roots[0].shape[0], d))  # [B, max(H, Hq), d]
    calibration.fill_half_widths(q, far, far_at, ratio, roots[0], roots[1], half)
    widths = np.empty((n_rows, horizon, d))  # [B, H, d]: the widths served, after missing values, then factored
    for b in range(n_rows):
        for h in range(horizon):
            for k in range(d):
                widths[b, h, k] = _width_after(half, q, far, far_at, ratio, b, k, h, missing[b, k])
    phase, phase_of, gain, lengths, step = phased
    no_far = np.empty((n_rows, 0, d))  # [B, 0, d]
    calibration.phase_widths(phase, phase_of, gain, lengths, step, far_at[:0], widths, no_far)
    nan = False
    for b in range(n_rows):
        for h in range(horizon):
            for k in range(d):
                width = widths[b, h, k]
                m, lower, upper = _interval(path[b, h, k], width, seen[b, k], nonneg[b, k])
                out[b, 0, h, k], out[b, 1, h, k], out[b, 2, h, k] = m, lower, upper
                nan = nan or math.isnan(m) or math.isnan(lower) or math.isnan(upper)
    return nan
