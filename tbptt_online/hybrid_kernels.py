"""The hybrid's tick, compiled (numba): scoring, the combination's base, the served members,
and the network's input, one pass over the rows ``b`` and features ``k`` each.

``hybrid`` holds their meaning (its module docstring) and the torch-facing calls; the
arithmetic of the combination and of the calibration lives in ``combination`` and
``calibration`` (``discounted``, ``mixed_weights``, ``stepped``), called from here.
Arrays are numpy views of the store's tensors: the rows' own copies ``[B, ...]`` (written
in place), the past forecasts' ring ``origin`` [N, Hc, Hc, E + 2 + COMBINERS, d] and the values ring
[C, R, d] read at the rows' ``slot`` [B].
"""

from __future__ import annotations

import math

import numpy as np

from tbptt_online import after_change, calibration, combination
from tbptt_online.compiled import compiled, inlined, prefetch, ring_value, unsigned
from tbptt_online.expert_kernels import SMOOTHING_CLIP, allowed_experts, local_scale
from tbptt_online.outliers import YOUNG

CLAMP = 10.0  # the network's inputs and target, in units of the local scale, are clamped to +-this


@compiled
def _clamp(x: float) -> float:
    return min(max(x, -CLAMP), CLAMP)


@compiled
def _finite_or(error: float, cap: float) -> float:
    return error if math.isfinite(error) else cap


AHEAD = 2  # ``score`` asks for the ring lines of the row this many rows ahead

# float32's relative spacing (2^-23): the ring ``origin`` keeps past forecasts in float32, relative
# to their origin's reference (``remember``), so the served mean an error is scored against is
# known to within about |y - ref| 2^-24, and a half-width is never below |y - ref| 2^-23. Before
# the reference, a flat series of 5.0 (exact in float32) scored every error 0 against the stored
# mean while the served float64 mean was 1e-14 off: its "90 %" interval, 6e-15 wide, held the
# value 0 to 1 % of the time; and a series at 1e8 with unit noise scored errors rounded to
# float32's spacing there, 8.
STORED_RESOLUTION = 2.0**-23


@inlined
def _prefetch_origins(origin, s, t) -> None:
    """Ask for the lines of row ``s`` of the ring ``origin`` [N, Hc, Hc, E + 2 + COMBINERS, d] that the
    scoring of step ``t`` reads (``compiled.prefetch``): at each horizon h, the forecasts made
    at origin t - h, E + 2 + COMBINERS float32 per feature (a row spans 14 kB, each of its 12 entries
    another part of it: a stall on each, the scoring's main cost at 10,000 series before)."""
    horizons = origin.shape[1]
    entry = origin.shape[3] * origin.shape[4] * origin.itemsize  # bytes of one (origin, h) entry
    for h in range(1, horizons + 1):
        at = origin.ctypes.data + s * origin.strides[0] + ((t - h) % horizons) * origin.strides[1]
        at += (h - 1) * origin.strides[2]
        for line in range(0, entry, 64):
            prefetch(at + line)
        prefetch(at + entry - 1)


RECENT_COVERAGE = 0.99  # the discount of a horizon's recent coverage: about its last 100 forecasts scored
COVERAGE_COLUMNS = 4  # c_coverage's: covered, scored (whole life), and their discounted sums (recent)


@inlined
def _covered(coverage, b: int, h: int, k: int, error: float, half: float, below: bool) -> None:
    """Count a forecast's ``error`` (|y - the mean served|, y as sent; NaN or inf: a miss) in ``coverage[b, h, :,
    k]``: within the half-width ``half`` served with it, scored, and both discounted by ``RECENT_COVERAGE``, where
    that width was the horizon's own (> 0; 0: taken from a shorter horizon, the first values a horizon scores, or
    after values missing in a row at the far ones). ``below``: a value below 0 where every value before it was
    >= 0, so that the served interval's lower bound was cut at 0 (``tick_kernels._interval``): a miss, whatever
    its error (a value >= 0 within the cut interval is within the half-width). Judged by the flag when the value
    comes: a second value below 0 within h steps of a series' first is judged against the uncut interval of an
    origin before the first, whose interval had been served cut (a review's: 1 of 241 at h = 3 to 12)."""
    if half > 0.0:
        hit = 1.0 if error <= half and not below else 0.0
        coverage[b, h, 0, k] += hit
        coverage[b, h, 1, k] += 1.0
        coverage[b, h, 2, k] = RECENT_COVERAGE * coverage[b, h, 2, k] + hit
        coverage[b, h, 3, k] = RECENT_COVERAGE * coverage[b, h, 3, k] + 1.0


@compiled
def score(
    slot,
    step,
    y,
    mask,
    seen,
    scale,
    level,
    origin,
    origin_ref,
    loss,
    count,
    slow_loss,
    slow_count,
    meta_loss,
    meta_count,
    q,
    spread,
    shape,
    member_abs,
    member_n,
    coverage,
    interval_level,
    normal,
    multiplier,
    phased,
    judged,
):
    """Fold value ``y`` [B, d] of step ``step`` [B] into the combiners' losses of the members
    ``loss``, ``slow_loss`` [B, Hc, E, d] and ``count``, ``slow_count`` [B, Hc, d] (fast and
    slow), the losses of the combiners' own forecasts ``meta_loss`` [B, Hc, 2, d] and
    ``meta_count`` [B, Hc, d], the interval's half-widths ``q`` [B, Hc, d] with their errors' scale and
    multiplier ``spread`` [B, Hc, 3, d] (``calibration.spread_stepped``, ``multiplier`` the normal's at
    ``interval_level``), the other levels'
    width ratios ``shape`` [B, Hc, S, d] (their normal values ``normal`` [S]) and the one-step
    errors ``member_abs`` [B, E, d], ``member_n`` [B, d], and the coverage per horizon ``coverage`` [B, Hc, 4, d]
    (``_covered``): each forecast of y_t made h steps
    before (read from ``origin``, relative to ``origin_ref`` [N, Hc, d]: ``remember``) is
    scored where y_t was observed (``mask``), a forecast was
    made then (t - h >= 1) and something had been observed before it (``seen``, before this
    value). A non-finite error (a forecast past float32's range is stored as inf) counts at
    the cap, not as a perfect forecast. The error of a forecast made at a young origin (t - h at most
    ``outliers.YOUNG``: ``outliers`` judges none of a series' first values, and the naive and AR members read
    them as they came, so a young spike is in the forecasts made just after it) steps the widths at most
    ``SMOOTHING_CLIP`` local scales, as the smoothing takes a young value, where the scale is known (> 0):
    1e9 as a daily series' 6th value (values about 20, noise 0.5) was served an interval of 0 to 3.4e8 at value
    50 and 0 to 8.5e5 at value 200, one of 1e30 an upper bound of 5e23 at value 400 (a hostile test, session
    53), where the same spike at value 30 cost nothing.

    ``phased`` = (c_phase, c_phase_of, c_phase_fit [B, Hc, 5, d], x_season_length, the values ring, ``factor`` [B,
    d], ``growth`` [B, d]): the phase statistics of the rows' first seasons (``calibration.phase_scored``,
    re-estimated from the ring where the season changed) and the one-step error folded into its phase's
    (``calibration.phase_learned``); at each horizon the factor of the target's phase is served as far as the
    errors there follow it (``calibration.phase_share``, stepped with each error, ``phase_fitted``), and each
    error that steps a width, with the width served with it, is divided by the factor served; ``factor``: the
    factor served at Hc (1 where not scored), for ``score_far``; ``growth`` [B, d]: the level's growth a value where
    the errors grow with it (``level_widths``; 1 elsewhere): an error at h and its width, times growth^h, count in
    the level h values after the origin the widths are now served from.

    ``judged`` = (the values as sent [B, d], ``y`` before the outliers clipped a value, and x_nonneg
    [B, d], every value before them >= 0): what the coverage counts (``_covered``)."""
    phase, phase_of, fit, lengths, ring, factor, growth = phased
    sent, nonneg, shift_at = judged
    n_rows, d = y.shape
    horizons, members = loss.shape[1], loss.shape[2]
    fast, slow, meta = combination.DISCOUNT, combination.SLOW_DISCOUNT, combination.META_DISCOUNT
    for b in range(n_rows):
        s, t = slot[b], step[b]
        if b + AHEAD < n_rows:
            _prefetch_origins(origin, slot[b + AHEAD], step[b + AHEAD])
        for k in range(d):
            factor[b, k] = 1.0
            if not (mask[b, k] and seen[b, k]):
                continue
            candidate, typical = calibration.phase_scored(phase, phase_of, fit, lengths, ring, s, b, k, t)
            factor[b, k] = calibration.phase_served(candidate, calibration.phase_share(fit, b, horizons - 1, k))
            first = math.nan  # the one-step error, for its phase's statistics
            unit = local_scale(scale, level, b, k)  # the scale before this value
            cap = combination.CAP * unit
            known = scale[b, k] > 0  # (a young error is capped where the scale is known)
            for h in range(1, min(horizons, t - 1) + 1):  # origins t - h >= 1
                made = origin[s, (t - h) % horizons, h - 1]  # [E + 2 + COMBINERS, d]: members, served, width, combiners
                ref = origin_ref[s, (t - h) % horizons, k]  # what the forecasts were stored relative to
                for e in range(members):
                    error = abs(y[b, k] - (ref + np.float64(made[e, k])))
                    x, x_cap = combination.scored_error(error, unit, True)  # in local scales
                    loss[b, h - 1, e, k] = combination.discounted(loss[b, h - 1, e, k], x, x_cap, fast)
                    x, x_cap = combination.scored_error(error, unit, False)  # in the series' units
                    slow_loss[b, h - 1, e, k] = combination.discounted(slow_loss[b, h - 1, e, k], x, x_cap, slow)
                    if h == 1:
                        member_abs[b, e, k] += _finite_or(error, cap)
                count[b, h - 1, k] = fast * count[b, h - 1, k] + 1.0
                slow_count[b, h - 1, k] = slow * slow_count[b, h - 1, k] + 1.0
                for i in range(combination.COMBINERS):
                    error = abs(y[b, k] - (ref + np.float64(made[members + 2 + i, k])))
                    x, x_cap = combination.scored_error(error, unit, False)
                    meta_loss[b, h - 1, i, k] = combination.discounted(meta_loss[b, h - 1, i, k], x, x_cap, meta)
                meta_count[b, h - 1, k] = meta * meta_count[b, h - 1, k] + 1.0
                widest = SMOOTHING_CLIP * unit if t - h <= YOUNG and known else math.inf  # a young origin's error
                mean = ref + np.float64(made[members, k])  # the served forecast
                served = min(_finite_or(abs(y[b, k] - mean), cap), widest)
                # a width: stored as it is; 0 where the horizon had none of its own (``tick_kernels.served``);
                # judged against q where not above the floor (``calibration.spread_stepped``)
                half = np.float64(made[members + 1, k])
                _covered(coverage, b, h - 1, k, abs(sent[b, k] - mean), half, nonneg[b, k] and sent[b, k] < 0.0)
                # (see STORED_RESOLUTION; a young error's as it is taken: from a spike's distance, the floor alone
                # made the width 1.2e23 after 1e30 among values 0 to 4)
                floor = max(1e-6 * unit, STORED_RESOLUTION * min(abs(y[b, k] - ref), widest))
                if t - h < shift_at[b, k]:  # made before the series' last change: a width of the old series
                    continue  # (the combiners and the coverage count it; the widths, the phases and ratios not)
                if h == 1:
                    first = served
                # in the phase's units: the width served was the factor's multiple of the one tracked (a miss
                # is judged against it all the same: both divided by the same factor)
                f = calibration.phase_served(candidate, calibration.phase_share(fit, b, h - 1, k))
                # and in the level h values after the width will be served from: the errors' growth (``level_widths``)
                if growth[b, k] != 1.0:  # (most rows: none)
                    f /= growth[b, k] ** h
                served, half, floor = served / f, half / f, floor / f
                if half > floor:  # do the errors at h follow the factor as it stands? (``phase_fitted``)
                    calibration.phase_fitted(fit, b, h - 1, k, candidate, served * f, half)
                q[b, h - 1, k] = calibration.spread_stepped(
                    q[b, h - 1, k], spread, b, h - 1, k, served, interval_level, multiplier, floor, half, h
                )
                if half > floor:  # the other levels' ratios to this width (``calibration``)
                    for i in range(len(calibration.SHAPE_LEVELS)):
                        ratio = shape[b, h - 1, i, k]
                        shape[b, h - 1, i, k] = calibration.shape_stepped(ratio, served, half, normal[i], i)
            calibration.phase_learned(phase, phase_of, b, k, t, first, typical)
            if t >= 2:
                member_n[b, k] += 1.0


@compiled
def _allowed(out: np.ndarray, positive: bool, seasonal: bool, scored: float) -> None:
    """Which members may take weight [E]: the experts' rule (``allowed_experts``), and the
    network (the last member) always."""
    allowed_experts(out[:-1], positive, seasonal, scored)
    out[-1] = True


@compiled
def base(
    paths,
    fast_loss,
    fast_count,
    slow_loss,
    slow_count,
    meta_loss,
    meta_count,
    positive,
    lengths,
    scored,
    changed,
    out,
    partial,
    net,
) -> None:
    """The base ``out`` [B, H, d]: the experts' ``paths`` [B, H, E - 1, d] combined by their
    share of the served weights of all members (the network last; each combiner's and their
    mixture, ``combination.mixed_weights``), renormalised (where the network took nearly all
    the weight, each combiner's softmax of the experts' own logits, mixed as the combiners
    are); beyond the last tracked horizon Hc its weights hold. Which members may take weight
    (``_allowed``) follows ``positive``, ``lengths`` and ``scored`` (``c_member_n``). For ``serve``, which adds the
    network's member once the network has run: ``partial`` [B, H, 1 + COMBINERS, d] the experts' terms
    of each combiner's forecast (fast, slow: summed in member order; pooled: the mean of the fast one's and of
    the sum by the fast one's one-step weights) and of the served mean (the three mixed by mu), and ``net``
    [B, min(H, Hc), 1 + COMBINERS, d] the network's served weight and its weight in each
    combiner. A row's weights live in scratch arrays of one row while its sums are made
    (nothing of size [B, Hc, E, d] is written and read back). ``changed`` = (the rows' slots [B],
    steps [B] and o_shift_at [B, d], the store's c_origin and c_origin_ref, the values ring): within Hc
    values after a row's last change, the members that have not caught up take no weight at the horizons
    not yet scored since it (``after_change``; o_shift_at 0: none, as a view's rows are served)."""
    n_rows, horizon, experts, d = paths.shape
    horizons, members = fast_loss.shape[1], fast_loss.shape[2]
    allowed = np.empty(members, dtype=np.bool_)
    logits = combination.scratch(horizons, members)  # one row's, less each one's largest: the combiners', the mixture's
    combiners = combination.scratch(horizons, members)  # their weights (mu in row MIXTURE: ``combination.mixed``)
    weights = np.empty((horizons, members))  # the served weights
    totals = np.empty(horizons)  # the experts' share of them, per horizon
    own = np.empty(experts)
    lags = np.empty(members, dtype=np.bool_)  # which members lag after a change (``after_change``)
    slot, step, shift_at, origin, origin_ref, ring = changed
    for b in range(n_rows):
        for k in range(d):
            _allowed(allowed, positive[b, k], lengths[b, k, 0] > 0, scored[b, k])
            combination.mixed_weights(
                fast_loss, fast_count, slow_loss, slow_count, meta_loss, meta_count, allowed,
                b, k, logits, combiners, weights,
            )  # fmt: skip
            if shift_at[b, k] > 0:  # members that have not caught up after a change (``after_change``)
                at = shift_at[b, k]
                since = after_change.lagging(origin, origin_ref, ring, slot[b], k, step[b], at, members, lags)
                if since > 0:
                    after_change.dropped(weights, combiners, lags, since)
            for h in range(net.shape[1]):
                net[b, h, 0, k] = weights[h, experts]
                for i in range(combination.COMBINERS):
                    net[b, h, 1 + i, k] = combination.pooled(combiners, i, h * members, experts)
            _experts_totals(weights, experts, totals)
            for h in range(horizon):
                tracked = min(h, horizons - 1)
                at = tracked * members  # the combiners' block of this horizon
                total = totals[tracked]
                # the experts' share of the served weights, renormalised: each weight scaled before its product
                # (tiny weights times tiny values would underflow); unused where the network took nearly all
                inverse = 1.0 / total if total >= 1e-200 else 0.0
                fast = slow = first = acc = 0.0  # four sums in flight in one loop, each in member order
                for e in range(experts):
                    path = paths[b, h, e, k]
                    fast += path * combiners[0, unsigned(at + e)]
                    slow += path * combiners[1, unsigned(at + e)]
                    first += path * combiners[0, unsigned(e)]  # by the fast combiner's one-step weights
                    acc += path * (weights[tracked, e] * inverse)
                # the pooled combiner's weights are the mean of the fast one's at h and at h = 1, and the served
                # weights the combiners' mixed by mu (``combination.mixed_weights``): so are their sums
                pooled = 0.5 * (fast + first)
                mu_fast, mu_slow = combination.mixed(combiners, tracked, 0), combination.mixed(combiners, tracked, 1)
                mu_pooled = combination.mixed(combiners, tracked, combination.POOLED)
                served = (mu_fast * fast + mu_slow * slow) + mu_pooled * pooled
                partial[b, h, 0, k], partial[b, h, 1, k], partial[b, h, 2, k] = served, fast, slow
                partial[b, h, 1 + combination.POOLED, k] = pooled
                if total >= 1e-200:
                    out[b, h, k] = acc
                else:  # the network took (nearly) all the weight: each combiner's softmax of the experts' logits
                    acc = 0.0
                    for i in range(combination.COMBINERS):
                        for block in range(2 if i == combination.POOLED else 1):  # (the pooled one's: two halves)
                            row, start = (0, block * at) if i == combination.POOLED else (i, at)
                            share = combination.mixed(combiners, tracked, i) * (0.5 if i == combination.POOLED else 1.0)
                            for e in range(experts):
                                own[e] = logits[row, start + e]
                            combination.softmax(own)
                            for e in range(experts):
                                acc += paths[b, h, e, k] * share * own[e]
                    out[b, h, k] = acc


@inlined
def _experts_totals(weights, experts, totals) -> None:
    """``totals`` [Hc]: per horizon the sum of the first ``experts`` served ``weights`` [Hc, E + 1] (the experts'
    share), each in member order: the horizons' sums are independent, so they run side by side (member outer),
    not one chain after another."""
    totals[:] = 0.0
    for e in range(experts):
        for h in range(weights.shape[0]):
            totals[h] += weights[h, e]


@inlined
def _network_member(base_path, correction, unit, b, h, k) -> float:
    """The network's member at horizon h: the base corrected by c * scale."""
    return base_path[b, h, k] + correction[b, k] * unit


@inlined
def _served(mean: float, nonneg: bool) -> float:
    """The served mean: the combination, cut at 0 where every value so far was >= 0
    (``nonneg``). Only what is served is cut: the members and the combiners are scored and
    weighted on their own forecasts, so every other forecast is as without the cut, and the
    served one is never further from a value at or above 0. (Cutting each member instead took
    weight toward members whose forecasts it had cut: lynx one step 0.848 -> 0.862.)"""
    return 0.0 if nonneg and mean < 0.0 else mean


@inlined
def _with_network(partial, net, member, b, h, tracked, j, k) -> float:
    """A combination (j = 0 served, 1 + i combiner i) over all members: the experts' terms
    ``partial``, then the network's member by its weight (the last term of the sum)."""
    return partial[b, h, j, k] + member * net[b, tracked, j, k]


@compiled
def serve(paths, base_path, partial, net, correction, scale, level, nonneg, every, mean, combined) -> None:
    """The members' forecasts ``every`` [B, H, E, d] (the experts' ``paths``, then the
    network's member ``base + c * scale``, c = ``correction`` [B, d]), their combination
    ``mean`` [B, H, d] (not below 0 where ``nonneg`` [B, d], ``_served``) and each
    combiner's ``combined`` [B, H, COMBINERS, d]: the experts' terms ``partial`` [B, H, 1 + COMBINERS, d] plus
    the network member's by its weights ``net`` [B, min(H, Hc), 1 + COMBINERS, d] (``base``; beyond Hc
    the last horizon's): the fast and slow combiners' the same sums in the same order as over all members at
    once; the served mean the combiners' experts' terms mixed by mu, plus the network's by its served weight."""
    n_rows, horizon, experts, d = paths.shape
    horizons = net.shape[1]
    for b in range(n_rows):
        for k in range(d):
            unit = local_scale(scale, level, b, k)
            for h in range(horizon):
                tracked = min(h, horizons - 1)
                for e in range(experts):
                    every[b, h, e, k] = paths[b, h, e, k]
                member = _network_member(base_path, correction, unit, b, h, k)
                every[b, h, experts, k] = member
                mean[b, h, k] = _served(_with_network(partial, net, member, b, h, tracked, 0, k), nonneg[b, k])
                for i in range(combination.COMBINERS):
                    combined[b, h, i, k] = _with_network(partial, net, member, b, h, tracked, 1 + i, k)


@compiled
def score_far(
    slot, step, y, mask, seen, scale, level, far_origin, far_q, far_spread, far_at, interval_level, multiplier, factor,
    growth, coverage, judged,
) -> None:  # fmt: skip
    """Step the far horizons' half-widths ``far_q`` [B, F, d] and their ``far_spread`` [B, F, 3, d] with
    value ``y`` [B, d] of step ``step`` [B] (``calibration.spread_stepped``, as ``score`` steps ``q``, at
    the far horizon's rate; a far width is scored every ``FAR_EVERY``
    values): at far horizon ``far_at[f]`` the mean served there from origin
    t - far_at[f] and its half-width (``far_origin`` [N, R, F, 2, d], the store's ring, read at the
    rows' ``slot``: ``remember_far``), where y was observed (``mask``) after an earlier value
    (``seen``) and a forecast was remembered (not NaN: an origin at an odd step, before the series'
    first value, or before its state had the ring). A non-finite forecast scores at the cap, as in
    ``score``; the error and the width served with it divided by ``factor`` [B, d], the factor of the value's
    phase, and times ``growth`` [B, d] to the far horizon's power (``score``). The coverage per far horizon
    ``coverage`` [B, F, 4, d] of the values as sent (``judged``, as ``score``'s; ``_covered``)."""
    sent, nonneg, shift_at = judged
    n_rows, d = y.shape
    ring = far_origin.shape[1]
    for b in range(n_rows):
        s, t = slot[b], step[b]
        for k in range(d):
            if not (mask[b, k] and seen[b, k]):
                continue
            unit = local_scale(scale, level, b, k)
            for f in range(far_at.shape[0]):
                origin = t - far_at[f]
                if origin < 1:
                    continue
                made = far_origin[s, origin % ring, f, 0, k]
                if math.isnan(made):
                    continue
                g, served = factor[b, k], far_origin[s, origin % ring, f, 1, k]
                _covered(coverage, b, f, k, abs(sent[b, k] - made), served, nonneg[b, k] and sent[b, k] < 0.0)
                if origin < shift_at[b, k]:  # made before the series' last change (``score``)
                    continue
                if growth[b, k] != 1.0:  # the level's growth (``score``)
                    g = g / growth[b, k] ** far_at[f]
                error = _finite_or(abs(y[b, k] - made), combination.CAP * unit) / g
                half = served / g
                far_q[b, f, k] = calibration.spread_stepped(
                    far_q[b, f, k], far_spread, b, f, k, error, interval_level, multiplier, 1e-6 * unit / g, half,
                    far_at[f],
                )  # fmt: skip


@compiled
def remember_far(base_path, partial, net, correction, scale, level, nonneg, seen, half, slot, at, far_origin) -> None:
    """The means served at the far horizons and their half-widths ``half`` [B, F, d] (0: none of
    their own) written into the ring ``far_origin`` [N, R, F, 2, d] at the rows' ``slot`` [B], ring
    place ``at`` [B] (step % R): the far horizons are the rows Hc .. Hc + F - 1 of the base's
    ``base_path`` [B, Hc + F, d] and ``partial`` [B, Hc + F, 3, d] (``base``), served as a forecast
    past Hc is, with the last tracked horizon's weights ``net`` [B, Hc, 3, d] (``serve``); NaN, none, where
    nothing was ``seen`` [B, d] yet (a view serves no forecast there: scored later, the made-up mean of a
    series' leading missing values set its far widths 20 times too wide, a review)."""
    n_rows, d = half.shape[0], half.shape[2]
    horizons, far = net.shape[1], half.shape[1]
    for b in range(n_rows):
        s, o = slot[b], at[b]
        for k in range(d):
            if not seen[b, k]:  # nothing served: nothing remembered
                far_origin[s, o, :, :, k] = math.nan
                continue
            unit = local_scale(scale, level, b, k)
            for f in range(far):
                h = horizons + f
                member = _network_member(base_path, correction, unit, b, h, k)
                far_origin[s, o, f, 0, k] = _served(
                    _with_network(partial, net, member, b, h, horizons - 1, 0, k), nonneg[b, k]
                )
                far_origin[s, o, f, 1, k] = half[b, f, k]


@compiled
def remember(
    paths, base_path, partial, net, correction, scale, level, nonneg, half, slot, at, origin, origin_ref, mean
) -> None:
    """The tick's ``serve`` without a members' table: the served ``mean`` [B, Hc, d] (as
    ``serve``'s), and
    this origin's forecasts written as float32 straight into the ring ``origin`` [N, Hc, Hc,
    E + 2 + COMBINERS, d] at the rows' ``slot`` [B], ring place ``at`` [B] (step % Hc): every member's
    (the experts' ``paths`` [B, Hc, E - 1, d], then the network's), the served mean, the
    half-width ``half`` [B, Hc, d] served with it (NaN: 0, the ring's "unknown") and the
    combiners' forecasts (fast, slow, pooled). The forecasts are stored relative to the origin's
    reference, its served one-step mean (0 where that is not finite), kept in float64 in
    ``origin_ref`` [N, Hc, d]: float32 then rounds their distance from it, not their level
    (at 1e8 float32's spacing is 8); the half-widths are stored as they are."""
    n_rows, horizon, experts, d = paths.shape
    horizons = net.shape[1]
    members = experts + 1
    for b in range(n_rows):
        s, o = slot[b], at[b]
        for k in range(d):
            unit = local_scale(scale, level, b, k)
            first = _network_member(base_path, correction, unit, b, 0, k)
            ref = _served(_with_network(partial, net, first, b, 0, 0, 0, k), nonneg[b, k])  # the served one-step mean
            ref = ref if math.isfinite(ref) else 0.0
            origin_ref[s, o, k] = ref
            for h in range(horizon):
                tracked = min(h, horizons - 1)
                for e in range(experts):
                    origin[s, o, h, e, k] = np.float32(paths[b, h, e, k] - ref)
                member = _network_member(base_path, correction, unit, b, h, k)
                origin[s, o, h, experts, k] = np.float32(member - ref)
                mean[b, h, k] = _served(_with_network(partial, net, member, b, h, tracked, 0, k), nonneg[b, k])
                origin[s, o, h, members, k] = np.float32(mean[b, h, k] - ref)
                width = half[b, h, k]
                origin[s, o, h, members + 1, k] = np.float32(0.0 if math.isnan(width) else width)
                for i in range(combination.COMBINERS):
                    combined = _with_network(partial, net, member, b, h, tracked, 1 + i, k)
                    origin[s, o, h, members + 2 + i, k] = np.float32(combined - ref)


@compiled
def features(slot, step, y, ring, lengths, scale, level, target, base_next, out) -> None:
    """What the network is fed after value ``y`` [B, d] of step ``step`` (rows already
    advanced), per feature ``FEATURES`` columns of ``out`` [B, FEATURES * d]: the target,
    the last change, the base's next step ``base_next`` [B, d], the values one and two first
    seasons and one second season before the next step, the next step's phase in the first
    season (sin, cos); relative to y and in units of the local scale, clamped to +-CLAMP
    (0 where unknown)."""
    n_rows, d = y.shape
    r = ring.shape[1]
    n_features = out.shape[1] // d
    for b in range(n_rows):
        s, t = slot[b], step[b]
        for k in range(d):
            unit = local_scale(scale, level, b, k)
            m1, m2 = lengths[b, k, 0], lengths[b, k, 1]
            column = out[b, k * n_features : (k + 1) * n_features]
            column[0] = _clamp(target[b, k])
            column[1] = _clamp((y[b, k] - ring_value(ring, s, k, t - 1)) / unit) if t > 1 else 0.0
            column[2] = _clamp((base_next[b, k] - y[b, k]) / unit)
            for i, back in enumerate((m1, 2 * m1, m2)):  # y at step t + 1 - back
                at = t + 1 - back
                known = back > 0 and at >= 1 and at > t - r
                column[3 + i] = _clamp((ring_value(ring, s, k, at) - y[b, k]) / unit) if known else 0.0
            if m1 > 0:
                phase = 2 * math.pi * ((t + 1) % m1) / m1
                column[6], column[7] = _clamp(math.sin(phase)), _clamp(math.cos(phase))
            else:
                column[6], column[7] = 0.0, 0.0


@compiled
def target(y, mask, seen, base_before, scale_before, out, defined) -> None:
    """The network's target for value ``y`` [B, d] into ``out``: the base's error in units of
    the scale it was made with (``base_before``, ``scale_before``), clamped; ``defined``
    where it exists (observed, a base existed, something was seen before this value)."""
    n_rows, d = y.shape
    for b in range(n_rows):
        for k in range(d):
            defined[b, k] = mask[b, k] and math.isfinite(base_before[b, k]) and seen[b, k]
            out[b, k] = _clamp((y[b, k] - base_before[b, k]) / scale_before[b, k]) if defined[b, k] else 0.0
