"""The hybrid forecast (in the spirit of Smyl's ES-RNN): simple experts, a network that
corrects their combination, and one online combination of all of them, with intervals
calibrated at every horizon.

Per series and feature, each value ``y_t`` (as the hybrid takes it: at its interval's
bound when it is an outlier, see ``outliers``):

1. **scores** the forecasts of ``y_t`` made at the ``Hc`` origins before it (each member's,
   the served combination's and the fast and slow combiners', kept in the ``c_origin``
   ring), folding the members' absolute errors into both combiners' discounted losses per
   horizon and the combiners' into the mixture's (``combination.discounted``; see
   ``combination``), and the served forecast's error into the interval's half-width at that
   horizon (``calibration.spread_stepped``; all called from ``hybrid_kernels.score``);
2. **advances** the experts (``expert_kernels.advance``) and, at the detection steps of
   ``season_length="auto"``, looks for seasons again (``season.detect_seasons``; where it
   finds none, a provisional season of 2 to 4 cycles, ``young_season.young_seasons``);
3. forecasts: the experts' paths ``[Hc, 23]``, the served weights of all 24 members (the
   three combiners' mixed; computed once), the experts' share of them renormalised (the **base**), and the network's
   member ``base + c * scale``, where ``c`` is the network's output (a correction in
   units of the local scale; 0 for an untrained model, whose last layer starts at zero);
   the served forecast is the combination of all 24 members, i.e. ``base + w_net * c *
   scale``: the correction counts as much as the network has earned.

The network is fed ``FEATURES`` values per feature (the base's last error, the last
change, the base's next step, the values one and two seasons back and one second
season back, the phase of the next step in the first season), all relative to the
last value and in units of the local scale, clamped to +-``CLAMP``; its target at step
``t`` is the base's error ``(y_t - base_t) / scale_{t-1}``, clamped alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import torch

from tbptt_online import calibration, combination, experts, outliers
from tbptt_online import hybrid_kernels as kernels
from tbptt_online.compiled import over_rows, readable, writable
from tbptt_online.saved_rows import AsOfSnapshot
from tbptt_online.season import detect_seasons, fill_gaps, onto_comb, significantly_better, stitched, z_one_sided
from tbptt_online.young_season import EXACT, VALUE_GAIN, young_seasons

FEATURES = 8
CLAMP = kernels.CLAMP  # the network's inputs and target are clamped to +-this (units of the scale)
N_MEMBERS = experts.N_EXPERTS + 1  # the experts and the network
MEMBERS = (*experts.NAMES, "network")
COMBINERS = combination.COMBINERS
ORIGIN_COLUMNS = N_MEMBERS + 2 + COMBINERS  # the ring's: the members, served, half-width, the combiners
DETECT_AT = (24, 36, 48, 72, 96, 144, 192, 288, 384, 576, 768, 1024)  # then every DETECT_EVERY
DETECT_EVERY = 1024
DETECT_UNSETTLED = (16, 20, 30, 42, 54, 60, 66, 84, 120)  # a row whose seasons are none or short (at most
# SHORT_SEASON) looks at these steps too: a short quarterly or monthly series whose season shows between the
# usual looks gets it sooner (pmdarima's ausbeer: its 4 at 16, not 24; woolyrnq's at 42, not 72, of 119
# values), and a short season found first may be a divisor of the true one (wineind's 4 at 30: its 12 at 42,
# not 48); a row with a longer season is not asked again until DETECT_AT (every row asked at 30, 42, 60, 84,
# 120 moved airline's and elec_equip's found 12 back and forth: session 21)
SHORT_SEASON = 6  # a monthly series' 3, 4 or 6 may stand for its 12
AFTER_CHANGE = 8  # a row whose level or spread changed keeps its seasons until this many values follow (``detect``)


def fields(n: int, d: int, ring: int, max_season: int, horizons: int, level: float) -> dict[str, torch.Tensor]:
    """Blank rows of the hybrid's per-series state for ``n`` series whose intervals track ``level``."""
    f64 = torch.float64
    far = calibration.far_horizons(horizons)  # F far horizons, the longest the ring's length
    start = calibration.start_multiplier(level)  # the widths' multiplier past one step, before any error
    return {
        **experts.fields(n, d, ring, max_season),
        "c_loss": torch.zeros(n, horizons, N_MEMBERS, d, dtype=f64),  # the fast combiner's discounted losses
        "c_count": torch.zeros(n, horizons, d, dtype=f64),
        "c_slow_loss": torch.zeros(n, horizons, N_MEMBERS, d, dtype=f64),  # the slow combiner's
        "c_slow_count": torch.zeros(n, horizons, d, dtype=f64),
        "c_meta_loss": torch.zeros(n, horizons, COMBINERS, d, dtype=f64),  # the combiners' own (fast, slow, pooled)
        "c_meta_count": torch.zeros(n, horizons, d, dtype=f64),
        "c_q": torch.zeros(n, horizons, d, dtype=f64),  # the interval half-width per horizon (0: none yet)
        # per horizon: the served forecast's discounted sum of absolute errors, its discounted count, and the
        # multiplier of their mean that c_q serves, over the normal's, from ``start`` (``calibration.spread_stepped``;
        # the one-step column stays a new series': that width keeps its own rule)
        "c_spread": calibration.blank_spread(n, horizons, d, start),
        # per horizon and level of calibration.SHAPE_LEVELS: its width's ratio to c_q's, over the normal's
        "c_shape": torch.ones(n, horizons, len(calibration.SHAPE_LEVELS), d, dtype=f64),
        # per phase of the first season (up to the longest): the one-step errors' discounted sum and count, and the
        # season they were gathered for (0: none): the widths' phase factors (``calibration.phase_factor``)
        # and per horizon the fit of its errors on the factors: how far they are served there
        # (``calibration.phase_share``)
        **dict(
            zip(
                ("c_phase", "c_phase_of", "c_phase_fit"),
                calibration.blank_phase(n, max_season, horizons, d),
                strict=True,
            )
        ),
        # [origin % Hc, h - 1, member (then the served, the half-width served with it at the tracked
        # level, 0: unknown, and the fast, slow and pooled combiners' forecasts: ORIGIN_COLUMNS)]: float32 halves
        # the hybrid's largest field; only errors are read from it (a value past float32's range scores
        # as an infinite, i.e. capped, error)
        "c_origin": torch.zeros(n, horizons, horizons, ORIGIN_COLUMNS, d, dtype=torch.float32),
        # [origin % Hc]: what that origin's forecasts in c_origin are stored relative to (its served
        # one-step mean): float32 rounds their distance from it, not their level (``remember``)
        "c_origin_ref": torch.zeros(n, horizons, d, dtype=f64),
        "c_far_q": torch.zeros(n, len(far), d, dtype=f64),  # the half-width at each far horizon (0: none yet)
        "c_far_spread": calibration.blank_spread(n, len(far), d, start),  # as c_spread, at the far horizons
        # [origin % longest far horizon, far horizon, (the mean served there, the half-width served with it
        # at the tracked level, 0: none of its own)]: NaN where no forecast was remembered (``score_far``)
        "c_far_origin": torch.full((n, max(far, default=1), len(far), 2, d), math.nan, dtype=f64),
        "c_member_abs": torch.zeros(n, N_MEMBERS, d, dtype=f64),  # one-step absolute errors, summed
        "c_member_n": torch.zeros(n, d, dtype=f64),
        # per horizon 1 .. Hc (then per far horizon): the values that fell within the interval served for them at the
        # tracked level, the forecasts scored that had a width of the horizon's own, and the two discounted (recent;
        # ``hybrid_kernels._covered``): the series' coverage per horizon, its statistic (kept across a restart, as
        # ``stats`` is)
        "c_coverage": torch.zeros(n, horizons, kernels.COVERAGE_COLUMNS, d, dtype=f64),
        "c_far_coverage": torch.zeros(n, len(far), kernels.COVERAGE_COLUMNS, d, dtype=f64),
        "n_base": torch.full((n, d), math.nan, dtype=f64),  # the base's forecast of the next value
        "n_scale": torch.ones(n, d, dtype=f64),  # the local scale it was made with
        "n_correction": torch.zeros(n, d, dtype=f64),  # c: the network's correction of the next value
        **outliers.fields(n, d),  # a value far outside its interval is taken at its bound or the edge (``outliers``)
    }


ORIGIN_RING = ("c_origin", "c_origin_ref", "c_far_origin")  # read by the next values' scoring only, never by a forecast
# the fields a value's scoring writes at the tracked horizons (``hybrid_kernels.score``'s, in its order)
SCORED = (*combination.FIELDS, "c_q", "c_spread", "c_shape", "c_member_abs", "c_member_n", "c_coverage")
COVERAGE = ("c_coverage", "c_far_coverage")  # the series' coverage per horizon: kept across a restart


def rows_at(tensors: Mapping[str, torch.Tensor | AsOfSnapshot], slots: torch.Tensor) -> dict[str, torch.Tensor]:
    """The hybrid's ``rows`` for ``slots`` [B] of a store's tensors: its own fields gathered,
    the shared ones whole (``experts.SHARED``), and ``slot``. Of a snapshot's: every field
    gathered, the shared ones too (a snapshot reads its in-place fields by rows), and
    ``slot`` = 0 .. B - 1, their rows in the gathered tables."""
    fields = {k: v for k, v in tensors.items() if k.startswith(PREFIXES) and k not in ORIGIN_RING}
    if any(isinstance(fields[k], AsOfSnapshot) for k in experts.SHARED):
        rows = {k: v[slots] for k, v in fields.items()}  # [B, ...] each
        rows["slot"] = torch.arange(len(slots))
        return rows
    rows = {k: v if k in experts.SHARED else v[slots] for k, v in fields.items()}
    rows["slot"] = slots
    return rows


def score(
    rows: dict[str, torch.Tensor],
    y: torch.Tensor,
    mask: torch.Tensor,
    step: torch.Tensor,
    level: float,
    origin: torch.Tensor,
    origin_ref: torch.Tensor,
) -> None:
    """Fold value ``y`` [B, d] of step ``step`` [B] into the losses and interval quantiles
    (``hybrid_kernels.score`` alone, for tests and tools: a tick runs it in
    ``tick_kernels.before_seasons``): ``origin`` is the store's ring of past forecasts [N, Hc, Hc,
    E + 2 + COMBINERS, d], relative to ``origin_ref`` [N, Hc, d] (read at the rows' slots only); the
    rows' ``c_*`` copies are updated in place (the coverage per horizon counts ``y`` as it is)."""
    own = readable(rows["slot"], step, y, mask, rows["x_seen"], rows["x_scale"], rows["x_level"])
    sent, nonneg = readable(y, rows["x_nonneg"])
    shift_at = readable(_shift_at(rows))[0]
    written = writable(rows, SCORED)
    ring, ref = origin.numpy(), origin_ref.numpy()  # shared: each row reads its own slot
    normal, multiplier = calibration.normals(float(level))
    phase, phase_of, gain = writable(rows, ("c_phase", "c_phase_of", "c_phase_fit"))
    lengths, values = readable(rows["x_season_length"], rows["x_raw"])
    factor = np.empty(tuple(y.shape))  # [B, d]: the scored values' phase factors (``hybrid_kernels.score``)
    growth = np.ones(tuple(y.shape))  # [B, d]: no level's growth (``level_widths``: the tick's)
    over_rows(
        len(step),
        lambda r: kernels.score(
            *(a[r] for a in own), ring, ref, *(a[r] for a in written), float(level), normal, multiplier,
            (phase[r], phase_of[r], gain[r], lengths[r], values, factor[r], growth[r]),
            (sent[r], nonneg[r], shift_at[r]),
        ),
    )  # fmt: skip


def _shift_at(rows: dict[str, torch.Tensor]) -> torch.Tensor:
    """[B, d] int64: the step of each row's last change (``o_shift_at``; zeros, none, where the rows have none)."""
    if "o_shift_at" in rows:
        return rows["o_shift_at"]
    return torch.zeros(tuple(rows["x_seen"].shape), dtype=torch.int64)


def detection_due(step: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[B] bool: the steps at which ``season_length="auto"`` looks for seasons again, for rows
    whose season lengths are ``lengths`` [B, d, 2]: ``DETECT_AT``, and ``DETECT_UNSETTLED`` where every
    feature's first season is none or at most ``SHORT_SEASON``."""
    steps = step.numpy()  # (numpy: a tick's few elements without torch's per-call overhead)
    low, high = (int(steps.min()), int(steps.max())) if len(steps) else (0, -1)
    # a tick's rows have one step, or a few (series that restarted): the rules are applied to each step from
    # the lowest to the highest once and read per row, not to every row (0.4 ms a tick at 10,000 series)
    at = np.arange(low, high + 1) if high - low < STEP_TABLE else steps  # [S] the steps the rules are applied to
    due = (at[:, None] == _DETECT_AT).any(axis=1) | (at % DETECT_EVERY == 0)
    extra = (at[:, None] == _DETECT_UNSETTLED).any(axis=1)
    if at is not steps:
        due, extra = due[steps - low], extra[steps - low]  # [B] each
    if extra.any():  # the seasons are read only on those steps, not on every tick
        due |= extra & (lengths.numpy()[:, :, 0] <= SHORT_SEASON).all(axis=1)  # none (0) or short
    return torch.from_numpy(due)


STEP_TABLE = 4096  # ``detection_due`` applies its rules once per step where a tick's steps span fewer than this
_DETECT_AT = np.array(DETECT_AT)
_DETECT_UNSETTLED = np.array(DETECT_UNSETTLED)
_DETECT_ANY = frozenset(DETECT_AT) | frozenset(DETECT_UNSETTLED)  # the steps where some row may look


def may_detect(step: torch.Tensor) -> bool:
    """Whether any of ``step`` [B] is a step where ``detection_due`` may be true for some row
    (most ticks: none is). For a tick of a few series, in Python: ``detection_due``'s numpy
    calls cost a single series' tick more than its scoring does."""
    if len(step) > 64:
        return True  # (``detection_due`` decides: numpy beats a Python loop)
    return any(s in _DETECT_ANY or s % DETECT_EVERY == 0 for s in step.tolist())


def detect(rows: dict[str, torch.Tensor], step: torch.Tensor, max_season: int, changed_at: torch.Tensor) -> None:
    """Look for seasons in the values in the ring (all rows have the same step) and
    re-estimate the components of the rows whose seasons changed. Where the autocorrelation
    finds none, a season of 2 to 4 cycles may be taken provisionally (``young_seasons``: a
    monthly series serves its season from value 24, not 36). A found season may be a
    divisor of the true one (a monthly series' 6 for 12): the multiple of it whose seasonal
    naive forecast fits the changes best (by at least ``MULTIPLE_GAIN``) is taken instead.

    Where a row's level or spread changed among the values read (``changed_at`` [B, d]: the step
    of its last change, ``outliers``; 0: none), it keeps its seasons while fewer than
    ``AFTER_CHANGE`` values follow the change. Where the change was a break, its spread
    ``season.SPREAD_BREAK`` times larger or smaller after it, the values after it are read in
    the level and spread of those before it (``season.stitched``), and the seasons change
    (taken, moved or dropped) only once two cycles of the longest season involved follow the
    break: the feature's components are estimated from those values alone (``set_seasons``).

    A season given by ``HELD_AFTER`` detections in a row is held: another one replaces it only
    when it fits clearly better (``_replaces``), and a neighbour or a divisor of it that fits at
    least as well leaves it no longer held (``_no_longer_held``)."""
    ring, slot = rows["x_raw"], rows["slot"]
    b, r, d = len(slot), ring.shape[1], ring.shape[2]
    n = min(int(step[0]), r)
    at = step[:, None] - torch.arange(n - 1, -1, -1)[None, :]  # [B, n] the last n steps, oldest first
    if bool((step == step[0]).all()):  # (always, from the tick) one index row: the same values, a sixth of the work
        values = ring[slot[:, None], (at[:1] - 1) % r].transpose(1, 2).reshape(b * d, n)
    else:
        values = experts.ring_at(ring, slot, at[:, :, None].expand(-1, -1, d)).transpose(1, 2).reshape(b * d, n)
    after = (step[:, None] + 1 - changed_at).reshape(b * d)  # [B * d] the values from the last change on
    inside = (changed_at.reshape(b * d) > 0) & (after < n)  # [B * d] a change after the first value read
    broke = torch.zeros_like(inside)  # [B * d] a break among the values read: stitched
    if bool(inside.any()):  # (rarely: the changes of the last ring's values)
        values, broke = stitched(values, torch.where(inside & (after >= AFTER_CHANGE), n - after, 0))
    found = detect_seasons(values, max_seasons=2, max_length=min(n // 3, max_season))  # [B * d, 2]
    none = (found[:, 0] == 0).nonzero().squeeze(1)
    if len(none):  # a season the autocorrelation cannot test yet (2 to 4 cycles): provisional
        filled = fill_gaps(values if len(none) == len(values) else values[none])  # [N, n] (noise: every row)
        found[none, 0] = young_seasons(filled, max_season)
        if n // 3 >= max_season:  # past the young test: a long smooth season in the means of blocks
            still = found[none, 0] == 0  # [N]
            found[none[still], 0] = _coarse_seasons(filled[still], max_season)
    seasonal = (found[:, 0] > 0).nonzero().squeeze(1)  # the rows with a season (of many noisy series, few)
    if len(seasonal):
        some = values[seasonal]  # [S, n]: the two checks below go row by row, so only these pay for them
        # a change among the values read (kept apart from its zone: ``_best_multiple``); a break's values are
        # stitched, but a change of spread under SPREAD_BREAK is not
        cut = torch.where(inside & (after >= AFTER_CHANGE), n - after, 0)[seasonal]  # [S]
        first = _best_multiple(some, found[seasonal, 0], min(n // 3, max_season), cut)
        found[seasonal, 0] = _best_neighbour(fill_gaps(some), first, min(n // 2, max_season))
    held = rows["x_season_length"][:, :, 0].reshape(b * d)  # [B * d] the first seasons served until now
    runs = rows["x_season_runs"].reshape(b * d)  # [B * d] the detections in a row that gave them
    held_both = rows["x_season_length"].reshape(b * d, 2)
    wide = _wide_again(held, found[:, 0])  # [B * d] a long season found again a few lags off: the same one
    # a held season is contested by another one, not by none (a false season found twice in noise would
    # stay: there the last value and the value a season back forecast alike; but see ``_lapsed_kept``) nor
    # by a multiple of it (a week over a day: taylor's 336 over its 48 waited from value 1024 to 2048 when
    # contested) nor by itself found a few lags off (``_wide_again``)
    contested = (runs >= HELD_AFTER) & (held > 0) & (found[:, 0] > 0) & (found[:, 0] % held.clamp(min=1) != 0)
    contested &= ~wide
    # a season released at the detection before (its run at 0, ``_no_longer_held``) takes the neighbour or
    # divisor found now, or comes back, as held at once: with a half-integer period (12.5) the detections
    # found 12 and 13 by turns, and a season taken once was never held again (a review: 12 -> 13 -> 12 at
    # six detections in a row). Not a short divisor (SHORT_SEASON or less: it may stand for a longer season,
    # and held at once it resisted the next season found, a second review)
    released = (runs == 0) & (held > 0) & (found[:, 0] > 0)
    divisor = (held % found[:, 0].clamp(min=1) == 0) & (found[:, 0] > SHORT_SEASON)
    released &= ((found[:, 0] - held).abs() <= 1) | divisor | wide
    moved = contested.nonzero().squeeze(1)
    unheld = torch.zeros_like(contested)  # [B * d] held seasons kept once more, no longer held
    if len(moved):
        filled = fill_gaps(values[moved])  # [M, n]
        stays = ~_replaces(filled, found[moved, 0], held[moved])  # [M]
        kept = moved[stays]
        unheld[kept] = _no_longer_held(filled[stays], held[kept], found[kept, 0], max_season)
        _held_first(found, kept, filled[stays], held)
    steady = (wide & (runs >= HELD_AFTER)).nonzero().squeeze(1)  # held long seasons found a few lags off
    if len(steady):  # the held one served on, unless the one found fits clearly better (then served, held)
        filled = fill_gaps(values[steady])  # [W, n]
        spreads = _spreads_at(filled, torch.stack([found[steady, 0], held[steady]], dim=1))  # [W, 2]
        stay = spreads[:, 0] >= RELEASE_SPREAD * spreads[:, 1]  # [W]
        _held_first(found, steady[stay], filled[stay], held)
    lapsed = ((found[:, 0] == 0) & (runs >= HELD_AFTER) & (held > 0)).nonzero().squeeze(1)  # held, none found
    if len(lapsed) and n // 3 >= max_season:  # kept once more where its profile still fits (``_lapsed_kept``)
        kept = lapsed[_lapsed_kept(fill_gaps(values[lapsed]), held[lapsed])]
        found[kept] = held_both[kept]
        unheld[kept] = True
    again = ((found[:, 0] == held) | wide) & (held > 0)
    new_runs = torch.where(again, runs + 1, (found[:, 0] > 0).long())
    new_runs[released] = HELD_AFTER
    new_runs[unheld] = 0
    # the first season moved to a multiple or a neighbour can land on the second: one season then
    # (a daily sine whose season went from 24 to 36 served [72, 72] for 190 values: a hostile test)
    found[:, 1] = torch.where(found[:, 1] == found[:, 0], 0, found[:, 1])
    # where the autocorrelation gave a first season and no second: a multiple of the first taken (the held
    # one where it stayed) from the values' seasonal naive, the one held before kept while it fits
    alone = ((found[:, 0] > 0) & (found[:, 1] == 0)).nonzero().squeeze(1)
    if len(alone):
        longest = min(n // 3, max_season)
        found[alone, 1] = _second_multiple(fill_gaps(values[alone]), found[alone, 0], longest, held_both[alone, 1])
    if bool(inside.any()):  # too few values since a change to tell, or since a break to estimate a new season
        new = (found != held_both).any(dim=1)  # [B * d] (either season: taken, moved or dropped)
        involved = torch.maximum(found.amax(dim=1), held_both.amax(dim=1))  # [B * d] the longest season involved
        settling = inside & broke & (after < 2 * involved)  # [B * d] under two cycles since a break
        # a row changes no feature's seasons while one of its features settles after a break: the row is
        # re-estimated whole, and a feature re-estimated from under two cycles since its break loses its
        # tables (a review); a feature within AFTER_CHANGE values of a change waits alone
        wait = (settling.view(b, d).any(dim=1) & new.view(b, d).any(dim=1)).repeat_interleave(d)
        wait |= inside & (after < AFTER_CHANGE)
        found[wait] = held_both[wait]
        new_runs[wait] = runs[wait]
    rows["x_season_runs"].copy_(new_runs.view(b, d))  # in place
    found = found.view(b, d, 2)
    changed = (found != rows["x_season_length"]).any(dim=2).any(dim=1)  # [B]
    if bool(changed.any()):  # a feature with a break is estimated from the values since it
        set_seasons(rows, step, found, changed, torch.where(broke, after, 0).view(b, d))


def _held_first(found: torch.Tensor, kept: torch.Tensor, values: torch.Tensor, held: torch.Tensor) -> None:
    """In place: the rows ``kept`` [K] of ``found`` [R, 2] serve their held first season ``held`` [R] on, the
    held one back first and the one found second where the held one was (the two seasons' order swapped),
    on the held one's comb (``_onto_held_comb``, from those rows' ``values`` [K, n], finite)."""
    second = torch.where(found[kept, 1] == held[kept], found[kept, 0], found[kept, 1])
    found[kept] = torch.stack([held[kept], _onto_held_comb(values, second, held[kept])], dim=1)


def _onto_held_comb(values: torch.Tensor, second: torch.Tensor, held: torch.Tensor) -> torch.Tensor:
    """[K]: per row of ``values`` [K, n] (finite), the second season ``second`` [K] (0: none) moved
    onto the comb of the held first season ``held`` [K] (``season.onto_comb``) where the multiple's
    seasonal profile spreads no more than the season's own (``_profile_spread``). A weekend's broad
    peak, found first at 161 or 176 beside a held 24, was kept second as it came (3 of 20 daily sines
    with a weekend lower at 1,200 values, ``benchmarks.true_seasons``, session 44); put on the comb
    whatever the fit, a right 168 beside a wrong held 25 or 26 became 175 or 156 (a review)."""
    snapped = torch.where(second > 0, onto_comb(second.double(), held.double()).long(), second)  # [K]
    moved = (snapped != second).nonzero().squeeze(1)
    if len(moved):
        fits = _spreads_at(values[moved], torch.stack([snapped[moved], second[moved]], dim=1))  # [M, 2]
        second = second.clone()
        second[moved] = torch.where(fits[:, 0] <= fits[:, 1], snapped[moved], second[moved])
    return second


WIDE_FROM = 60  # a first season this long is moved to the lag within WIDE_SHARE of it whose profile spreads least
WIDE_SHARE = 0.15  # (``_best_neighbour``): the autocorrelation's peak is as broad as the season is long, and the
# whitened changes it reads hold little of a smooth long season (differencing shrinks it by 2 sin(pi / m), 0.022 at
# 288), so its top wandered: a daily sine at 5-minute data (288) was found as 251 to 301, another season at nearly
# every detection (a new user, session 53), while the profile of the values about their line fitted best at 288 or
# 289 in 9 of 9 windows of 1,008 values. Below it the two measures' rule of one lag: at 24, the profile alone took
# waterflow's 24 for 23 (session 6).


def _best_neighbour(values: torch.Tensor, lengths: torch.Tensor, longest: int) -> torch.Tensor:
    """[R]: per row of ``values`` [R, n] (finite) with a season of length ``lengths`` [R] > 0, the one of
    lengths - 1, lengths, lengths + 1 (in [2, longest]) that fits the values best by two
    measures at once, else ``lengths``: (a) the seasonal naive forecast one cycle back with
    the drift, y_{t-m} + m * mean(change), has the lowest mean absolute error over the values
    all three forecast (local: it follows a wandering level); (b) the seasonal profile has
    the lowest spread: the values about their straight line (least squares), less their
    mean at each phase t mod m, as a mean square per degree of freedom (n - m - 2) (global:
    every cycle at once). A short sample's autocorrelation has a broad top at a smooth
    season (r at 24 +- 1 is cos(2 pi / 24) = 0.97 of r at 24 for a daily sine), so its
    peak's refined position wanders by half a lag and rounds to 23 or 25; one step off
    misaligns every phase. Either measure alone moved a right season by its own noise
    ((a): server_metrics' web-2, its 24 taken for 23 at value 96; (b): waterflow's 24 for
    23 from value 576), so a neighbour must win both."""
    best = lengths.clone()
    n = values.shape[1]
    slope = values.diff(dim=1).mean(dim=1, keepdim=True)  # [R, 1] the drift per step
    about = _about_line(values)  # [R, n]
    for p in torch.unique(lengths[lengths > 0]).tolist():
        rows = (lengths == p).nonzero().squeeze(1)
        if p >= WIDE_FROM:  # a long season: its profile's best fit within WIDE_SHARE of it (``WIDE_FROM``)
            reach = round(WIDE_SHARE * p)
            near = [m for m in range(max(2, p - reach), min(longest, p + reach) + 1) if n - m - 2 > 0]
            if len(near) > 1:
                about_g = about[rows]  # [G, n]
                spread = torch.stack([_profile_spread(about_g, m) for m in near])  # [L, G]
                best[rows] = torch.tensor(near)[spread.argmin(dim=0)]  # (ties: the shortest)
            continue
        candidates = [m for m in (p, p - 1, p + 1) if 2 <= m <= longest and n - m - 2 > 0]
        if len(candidates) < 2 or candidates[0] != p:
            continue
        start = max(candidates)
        naive, spread = [], []
        v, drift, about_g = values[rows], slope[rows], about[rows]  # [G, n], [G, 1], [G, n] (gathered once)
        for m in candidates:
            naive.append(_drift_naive_errors(v, drift, m, start).mean(dim=1))  # [G]
            spread.append(_profile_spread(about_g, m))  # [G]
        local, overall = torch.stack(naive).argmin(dim=0), torch.stack(spread).argmin(dim=0)  # [G]; ties: ``lengths``
        best[rows] = torch.tensor(candidates)[torch.where(local == overall, local, 0)]
    return best


COARSE_VALUES = 128  # a row read again as the means of blocks of n // COARSE_VALUES values (``_coarse_seasons``)
COARSE_SPREAD = VALUE_GAIN**2  # ...its season's profile must leave this share of the line's spread (per dof)


def _coarse_seasons(values: torch.Tensor, longest: int) -> torch.Tensor:
    """[R] int64: per row of ``values`` [R, n] (finite) past the young test (``young_seasons``: n // 3
    >= ``longest``) without a season, a first season of WIDE_FROM to ``longest`` (0: none): one found
    by ``season.detect_seasons`` in the means of consecutive blocks of b = n // COARSE_VALUES values
    (counted back from the last value), times b, placed at the lag within b of it whose profile
    spreads least (``_profile_spread``), where that spread per degree of freedom is below
    COARSE_SPREAD of the values' about their line (the young values test's 40 % cut of the line's
    error, as a mean square). The changes hold little of a long smooth season (differencing
    shrinks it by 2 sin(pi / m), 0.022 at 288) and whitening lifts only its few harmonics, while a
    block's mean keeps the season and averages the noise: a 5-minute daily cycle, 80 + 30 day(t)
    under noise 4 (the values' autocorrelation at 288 0.57, the changes' 0.02), had no season in
    7 days (a new user, session 55). The blocks of a seasonless row are seasonless (white noise,
    a random walk, a smoother AR(1)) and the block test holds them to its false rate of 1 %
    (1,011 values: 0.5-2.2 % of 2,000 rows of noise, random walks, AR(1) and integrated AR(1)),
    the profile's spread to none of them (its ratio 0.36-1.2 there, 0.26-0.31 on the daily cycle)."""
    r, n = values.shape
    out = torch.zeros(r, dtype=torch.int64)
    b = n // COARSE_VALUES
    if r == 0 or b < 2:
        return out
    k = n // b
    low, high = max(2, math.ceil(WIDE_FROM / b)), min(longest // b, k // 3)
    if high < low:
        return out
    blocks = values[:, n - k * b :].reshape(r, k, b).mean(dim=2)  # [R, k]
    coarse = detect_seasons(blocks, max_seasons=1, min_length=low, max_length=high)[:, 0] * b  # [R]
    about = _about_line(values)  # [R, n]
    line = about.square().sum(dim=1) / (n - 2)  # [R] the spread about the line, per degree of freedom
    for p in torch.unique(coarse[coarse > 0]).tolist():
        rows = (coarse == p).nonzero().squeeze(1)
        near = [m for m in range(max(2, p - b), min(longest, p + b) + 1) if n - m - 2 > 0]
        spread = torch.stack([_profile_spread(about[rows], m) for m in near])  # [L, G]
        least, at = spread.min(dim=0)  # [G] (ties: the shortest)
        out[rows] = torch.where(least < COARSE_SPREAD * line[rows], torch.tensor(near)[at], 0)
    return out


def _about_line(values: torch.Tensor) -> torch.Tensor:
    """[R, n]: the rows of ``values`` [R, n] (finite) less their straight line (least squares)."""
    n = values.shape[1]
    t = torch.arange(n, dtype=values.dtype) - (n - 1) / 2  # [n] centred time
    return values - values.mean(dim=1, keepdim=True) - (values * t).sum(dim=1, keepdim=True) / t.square().sum() * t


def _profile_spread(about: torch.Tensor, m: int) -> torch.Tensor:
    """[R]: the spread of the rows ``about`` [R, n] (``_about_line``) less their mean at each phase
    t mod ``m``, a mean square per degree of freedom (n - m - 2)."""
    n = about.shape[1]
    phase = torch.arange(n) % m  # [n]
    count = torch.bincount(phase, minlength=m).to(about.dtype)  # [m]
    profile = torch.zeros(about.shape[0], m, dtype=about.dtype).index_add_(1, phase, about) / count  # [R, m]
    return (about - profile[:, phase]).square().sum(dim=1) / (n - m - 2)


def _spreads_at(values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[K, c]: per row of ``values`` [K, n] (finite), ``_profile_spread`` of its values about their line
    at each of its season lengths ``lengths`` [K, c] (each distinct length computed once for every row)."""
    about = _about_line(values)  # [K, n]
    distinct = torch.unique(lengths)  # [L] sorted
    spread = torch.stack([_profile_spread(about, m) for m in distinct.tolist()], dim=1)  # [K, L]
    return spread.gather(1, torch.searchsorted(distinct, lengths))


HELD_AFTER = 2  # a first season given by this many detections in a row is *held*: another replaces it...
SWITCH_GAIN, Z_SWITCH = 0.85, 2.33  # ...when its seasonal naive errs this much less, and significantly (1 %)
NEAR_SHARE = 10  # a season within max(1, held // NEAR_SHARE) lags of the held one is near it (26 for 24)
RELEASE_SPREAD = 0.8  # a neighbour found whose seasonal profile spreads this much less on each half releases it


def _replaces(values: torch.Tensor, new: torch.Tensor, held: torch.Tensor) -> torch.Tensor:
    """[R] bool: per row of ``values`` [R, n] (finite), whether the season ``new`` [R] fits
    clearly better than the ``held`` one [R] (> 0, not a divisor of ``new``): over the values
    both forecast, the seasonal naive one cycle back with the drift, y_{t-m} + m * mean(change),
    errs less than SWITCH_GAIN of the held one's and the paired improvement is significant
    (``significantly_better`` at Z_SWITCH). The autocorrelation of a window of recent values
    follows a quasi-cycle's length (sunspots' 11 years found as 10 at value 96 and as 11 again
    at 192), and each change of season re-estimates the components and restarts the seasonal
    AR: a season found twice in a row is left only for one that earns it. Rows of one pair
    (new, held) are decided together."""
    out = torch.zeros(len(new), dtype=torch.bool)
    for rows, err_new, err_held in _paired_drift_errors(values, new, held):
        out[rows] = significantly_better(err_new, err_held, SWITCH_GAIN, Z_SWITCH)
    return out


def _wide_again(held: torch.Tensor, found: torch.Tensor) -> torch.Tensor:
    """[R] bool: whether the first season ``found`` [R] (0: none) is the first season ``held`` [R]
    (0: none) found again a few lags off: a long one (``WIDE_FROM``), another length within WIDE_SHARE
    of it. Such a season's length wanders from detection to detection (``_best_neighbour``): a 5-minute
    CPU metric's daily cycle was found as 288, 291 and 290 at values 576, 768 and 1,024, so it was never
    held, and the first detection whose window held two quieter weekend days (none found) dropped it, on
    6 of 6 seeds (a new user, session 59). Counted as found again (``x_season_runs`` + 1; held at once
    after a release), neither contested (``_replaces``) nor released (``_no_longer_held``). A held one is
    served on unless the one found (the best fit of the values read, ``_best_neighbour``) spreads less
    than RELEASE_SPREAD of it (then that one, held): a season's change re-estimates its components, and
    a wide season's best fit wanders by a few lags. One not yet held is served at the length found.
    Served at the length found even where held (``benchmarks.wandering_seasons``' 12 series), the geometric mean of
    the h=12 MAE / naive over the last 3 of 17 days was 0.779 (0.772 so), h=288 MAE / seasonal naive
    0.932 (0.940), and a held weekly 168 could go to a daily multiple within its reach (144 or 192,
    where ``_best_neighbour`` moved some weak weeks: ``WIDE_FROM``'s history, not measured here)."""
    reach = torch.round(WIDE_SHARE * held.double()).long()  # [R] (rounded as ``_best_neighbour`` rounds)
    return (held >= WIDE_FROM) & (found > 0) & (found != held) & ((found - held).abs() <= reach)


LAPSE_SPREAD = VALUE_GAIN  # a held season's profile leaving under this share of the line's spread stays once


def _lapsed_kept(values: torch.Tensor, held: torch.Tensor) -> torch.Tensor:
    """[K] bool: per row of ``values`` [K, n] (finite) whose held season ``held`` [K] was not found at
    this detection (none found), whether it is kept once more, no longer held (``x_season_runs`` at
    0: found again at the next detection it is held at once, else dropped): where the values' seasonal
    profile at ``held`` still spreads (``_profile_spread``, per degree of freedom) under LAPSE_SPREAD of
    their spread about their line. The 5-minute CPU metric of ``_wide_again`` lost its daily season at
    the detection whose window of 1,011 values held two weekend days at half the weekday's swing (none
    found; the profile's share 0.34-0.51 on 6 seeds, 0.09-0.13 without the weekend). In noise a held
    false season goes as before at the next detection without it: at a fixed lag of 7 to 336, 0 of
    2,000 windows of 1,011 values each of white noise and AR(1) 0.7 and 0.8 are under 0.6, the fewest of
    AR(1) 0.95 (1 at 336), random walks (5 at 288, 10 at 336) and integrated AR(1) 0.9 (7, 16). Asked only
    past the young tests (three of the longest season read, as ``_coarse_seasons``), the windows measured:
    asked at every detection, it kept ``benchmarks.false_seasons``' false seasons (150 values) a little
    longer (white noise's share of (series, value) with one 1.865 % -> 1.873 %, AR(1) 0.7's 0.617 % ->
    0.681 %)."""
    about = _about_line(values)  # [K, n]
    line = about.square().sum(dim=1) / (values.shape[1] - 2)  # [K] the spread about the line, per dof
    return _spreads_at(values, held[:, None])[:, 0] < LAPSE_SPREAD * line


def _no_longer_held(values: torch.Tensor, held: torch.Tensor, found: torch.Tensor, max_season: int) -> torch.Tensor:
    """[K] bool: per row of ``values`` [K, n] (finite) whose held season ``held`` [K] stays against the
    season ``found`` [K] at this detection (not clearly better: ``_replaces``), whether it is no longer
    held: kept now (``x_season_runs`` at 0: released), and held again at the next detection with the
    neighbour or divisor found there, or with itself found again (``detect``).

    - A neighbour found (within max(1, held // NEAR_SHARE) lags of the held one) that, on each half
      of the values, wins the neighbours' test (``_best_neighbour`` from the held one, one lag off
      only) or has a seasonal profile whose spread (``_profile_spread``) is below RELEASE_SPREAD of
      the held one's. (A daily sine with a weekend lower, given 26 at values 144 and 192, served it
      to 1,200 values, every later detection finding 24: two lags off, session 44.) A smooth season's broad top
      gave a noisy daily sine 23 or 25 at two early detections, held for good (24 errs about 0.9 of
      23's, not under SWITCH_GAIN) while every later detection found 24: 11 of 40 such sines at
      1,200 values. With the neighbours' test alone, 2 of 20 daily sines under noise 0.5 still
      served 23 at 1,200 values (session 44): on one half the seasonal naive of 23 erred 0.581
      where 24's erred 0.593 (a smooth season's one-step-off naive is close, its noise decides),
      while 24's profile spread 0.25 and 23's 0.82; their one-step MAE from value 400 was 0.77 and
      0.76 of naive where a given 24 reads 0.73 and 0.74. A quasi-cycle's wandering length
      (sunspots' 10 found for its 11 at values 96 and 144) loses a half.
    - A divisor found of a held multiple (the multiple test, ``_best_multiple``, no longer took the
      held one) where the multiple forecasts the values not clearly better (``_not_clearly_better``):
      a noisy daily sine given 96 at values 288 and 384 (the changes' test won by chance) kept it for
      good. Released only where the multiple forecast no better at all, a noisy sine of 12 given 60 at
      values 192 and 288 (its seasonal naive 0.80 of 12's on the changes there) still served 60 at
      1,200 values (session 44)."""
    out = torch.zeros(len(held), dtype=torch.bool)
    half = values.shape[1] // 2
    near = ((found - held).abs() <= (held // NEAR_SHARE).clamp(min=1)).nonzero().squeeze(1)
    if len(near):
        wins = torch.ones(len(near), dtype=torch.bool)
        for part in (values[near, :half], values[near, half:]):
            neighbours = _best_neighbour(part, held[near], min(part.shape[1] // 2, max_season)) == found[near]
            own = _spreads_at(part, torch.stack([found[near], held[near]], dim=1))  # [N, 2]
            profile = own[:, 0] < RELEASE_SPREAD * own[:, 1]
            wins &= neighbours | profile
        out[near] = wins
    shorter = (held % found == 0).nonzero().squeeze(1)
    if len(shorter):
        out[shorter] = _not_clearly_better(values[shorter], held[shorter], found[shorter])
    return out


def _not_clearly_better(values: torch.Tensor, longer: torch.Tensor, shorter: torch.Tensor) -> torch.Tensor:
    """[R] bool: per row of ``values`` [R, n] (finite), whether the season ``longer`` [R] (a multiple of
    ``shorter`` [R]) forecasts the values not clearly better than ``shorter``: over the values both
    forecast, the seasonal naive one cycle back with the drift does not err less than MULTIPLE_GAIN of
    the shorter's with a paired improvement significant at MULTIPLE_FALSE_RATE (one test: the multiple
    held is the one asked about). Rows of one pair are decided together."""
    out = torch.zeros(len(longer), dtype=torch.bool)
    z = z_one_sided(MULTIPLE_FALSE_RATE)
    for rows, err_longer, err_shorter in _paired_drift_errors(values, longer, shorter):
        out[rows] = ~significantly_better(err_longer, err_shorter, MULTIPLE_GAIN, z)
    return out


def _paired_drift_errors(values: torch.Tensor, first: torch.Tensor, second: torch.Tensor):
    """Per group of the rows of ``values`` [R, n] (finite) with one pair of seasons (``first`` [R],
    ``second`` [R]): the rows [G] and the absolute errors [G, n - start] of each season's seasonal
    naive with the drift (``_drift_naive_errors``) over the values both forecast (t >= start, the
    longer season); a pair with fewer than two such values is left out."""
    n = values.shape[1]
    slope = values.diff(dim=1).mean(dim=1, keepdim=True)  # [R, 1] the drift per step
    for a, b in torch.unique(torch.stack([first, second], dim=1), dim=0).tolist():
        start = max(a, b)
        if n - start < 2:
            continue
        rows = ((first == a) & (second == b)).nonzero().squeeze(1)
        v, drift = values[rows], slope[rows]  # [G, n], [G, 1]
        yield rows, _drift_naive_errors(v, drift, a, start), _drift_naive_errors(v, drift, b, start)


def _drift_naive_errors(values: torch.Tensor, slope: torch.Tensor, m: int, start: int) -> torch.Tensor:
    """[G, n - start]: the absolute errors of the seasonal naive one cycle ``m`` back with the drift,
    |y_t - (y_{t-m} + m * drift)|, at t >= ``start`` (>= m) of the rows ``values`` [G, n]; ``slope``
    [G, 1]: each row's drift per step."""
    n = values.shape[1]
    return (values[:, start:] - values[:, start - m : n - m] - m * slope).abs()


CHANGE_ROUNDING = 1e-9  # an error up to this share of a row's mean |change| is rounding (sin(2 pi t / 12) at
# t = 1,200 errs by 1e-12: the multiple test took 84 for 12 by its pattern)
MULTIPLE_GAIN = 0.85  # a multiple of the found season is taken when its seasonal naive error is this much lower...
MULTIPLE_FALSE_RATE = 0.01  # ...and the paired improvement is significant (one-sided 1 % over the multiples
# tested, Bonferroni): not noise of a short sample


def _best_multiple(
    values: torch.Tensor, lengths: torch.Tensor, longest: int, cut: torch.Tensor | None = None
) -> torch.Tensor:
    """[R]: per row of ``values`` [R, n], the season (a multiple k * lengths <= longest) whose
    seasonal-naive absolute error on the changes y_t - y_{t-1} (free of a trend) is lowest,
    preferring the shorter: a longer one is taken when, over the changes both can forecast,
    its mean error is below MULTIPLE_GAIN of the chosen one's and the paired improvement is
    significant at MULTIPLE_FALSE_RATE over the multiples tested past a short season (``_longer_wins``;
    at 1 % each, a noisy sine of 7 was given 56 at value 192, 12 was given 60: 5 of 120 such sines
    served a multiple at 1,200 values, session 44; a short season, SHORT_SEASON or less, keeps 1 %
    each: it often stands for a longer one, and wineind, a monthly series found as 4, waited from
    value 42 to 54 for its 12). Rows of one season length are decided together; a row with a
    gap on its own (its changes without the gaps).

    ``cut`` [R] (0: none): where a row's level or spread changed, the index of the first value read
    after the change (``detect``: the step at which ``outliers`` found it, up to AFTER_CHANGE values
    late). Such a row is decided on its own: a multiple must win on each side of the change, on the
    changes whose pairs lie before the change's zone (AFTER_CHANGE values before ``cut``) and on those
    whose pairs lie after it, for both lags (a side without two such pairs: not taken). A longer lag
    pairs more values after a change with values before it, and where the spread grew (a latency
    multiplied by 1.6 at a deploy) such a pair errs less than two values after it: a daily season 24
    was moved to 120 or 216 at value 576, 176 values after the change, its 12-step MAE 61-65 % worse
    (a new user, session 55); with the pairs across the change left out but the sides pooled, the
    side before it alone moved one row of 20 to 192 by chance."""
    best = lengths.clone()
    cut = torch.zeros_like(lengths) if cut is None else cut
    alone = torch.isnan(values).any(dim=1) | (cut > 0)  # [R] rows with a gap or a change: one row at a time
    groups = [((lengths == p) & ~alone).nonzero().squeeze(1) for p in torch.unique(lengths[(lengths > 0) & ~alone])]
    groups += [torch.tensor([row]) for row in ((lengths > 0) & alone).nonzero().squeeze(1).tolist()]
    for rows in groups:  # [G]
        p = int(lengths[rows[0]])
        values_g = values[rows]
        change = 0  # the index of the change after which the row's first change is read (0: none)
        if len(rows) == 1:
            finite = ~torch.isnan(values_g[0])
            change = int(finite[: int(cut[rows[0]])].sum()) if int(cut[rows[0]]) > 0 else 0  # gaps left out
            values_g = values_g[:, finite]
        changes = values_g.diff(dim=1)  # [G, L]
        floor = torch.maximum(  # [G, 1] errors this small are rounding: of the values, of the changes
            EXACT * values_g.abs().amax(dim=1, keepdim=True), CHANGE_ROUNDING * changes.abs().mean(dim=1, keepdim=True)
        )
        chosen = torch.full_like(rows, p)
        multiples = range(2 * p, longest + 1, p)
        z = z_one_sided(MULTIPLE_FALSE_RATE, 1 if p <= SHORT_SEASON else len(multiples))
        for m in multiples:  # the shorter first: a longer one must beat the chosen
            chosen = torch.where(_longer_wins(changes, chosen, m, floor, z, change), m, chosen)
        best[rows] = chosen
    return best


def _longer_wins(
    changes: torch.Tensor, chosen: torch.Tensor, m: int, floor: torch.Tensor, z: float, change: int = 0
) -> torch.Tensor:
    """[G] bool: per row of ``changes`` [G, L], whether the seasonal naive of lag ``m`` beats
    that of lag ``chosen`` [G] (< m) on the changes both forecast (t >= m): mean absolute
    error below MULTIPLE_GAIN of the chosen one's, and the paired improvement significant
    (``season.significantly_better`` at ``z``). Errors up to ``floor`` [G, 1] count as 0:
    on a sine without noise both lags err by rounding alone, and its chance ordering took a
    season 7 for 77, 12 for 24, 24 for 72. ``change`` > 0 (one row): the index of the value
    after the row's last change; the longer must win on each side of it, over the targets before
    change - 1 - AFTER_CHANGE and over those whose lag m reaches no further back than ``change``
    (``_best_multiple``)."""
    g, length = changes.shape
    n = length - m
    if n < 2:
        return torch.zeros(g, dtype=torch.bool)
    now = changes[:, m:]  # [G, n]
    longer = (now - changes[:, :n]).abs()
    at = torch.arange(m, length)[None, :] - chosen[:, None]  # [G, n] t - chosen
    shorter = (now - torch.gather(changes, 1, at)).abs()
    longer, shorter = (torch.where(e <= floor, 0.0, e) for e in (longer, shorter))  # rounding: no error
    if change > 0:  # one row: better on each side of the change (the change's own is changes[change - 1])
        t = torch.arange(m, length)
        before, after = t < change - 1 - AFTER_CHANGE, t - m >= change  # [n] each
        return significantly_better(longer[:, before], shorter[:, before], MULTIPLE_GAIN, z) & significantly_better(
            longer[:, after], shorter[:, after], MULTIPLE_GAIN, z
        )
    return significantly_better(longer, shorter, MULTIPLE_GAIN, z)


SECOND_GAIN, SECOND_FALSE_RATE = 0.7, 0.01  # a multiple of the first season is a second one when its seasonal
# naive of the values errs this much less, and significantly (one-sided 1 % over the multiples tested)
KEEP_GAIN = 0.85  # a second season held is kept while its seasonal naive errs this much less than the first's
SECOND_MULTIPLES = 7  # a second season is at most this many first ones: a week of a daily cycle
NEIGHBOUR_GAIN = 0.75  # ...and errs this much less than the multiples next to it


def _second_multiple(
    values: torch.Tensor, first: torch.Tensor, longest: int, held: torch.Tensor | None = None
) -> torch.Tensor:
    """[R]: per row of ``values`` [R, n] (finite) with the first season ``first`` [R] > 0 and no
    second one, a multiple k * first <= ``longest`` (2 <= k <= SECOND_MULTIPLES: a slow wave of
    period 130 about a daily cycle fitted 11 x 24 = 264 by the tests below in 156 of 200 rows of
    1,011 values, a review, 5-6 % worse) as the second season, else 0:

    * the one held before (``held`` [R], 0: none), where it is such a multiple, while its seasonal
      naive one cycle back with the drift, y_{t-m} + m * mean(change), errs less than KEEP_GAIN of
      the first season's on the values (a second season decided afresh at each detection came and
      went at 1 or 2 of every 7 detections of a weekend 2.0 lower under noise 0.7, a review, each
      time re-estimating the components);
    * else the shortest whose seasonal naive errs less than SECOND_GAIN of the first season's (and
      of every shorter multiple taken), significantly (``significantly_better``, paired over the
      values both forecast, at SECOND_FALSE_RATE over the multiples tested: an AR(1) of 0.9 about
      a daily cycle was given one in 5 of 300 rows at 1 % each), and also less than NEIGHBOUR_GAIN
      of the multiples next to it, (k - 1) * first and (k + 1) * first: a slow wave of period 130
      about a daily cycle fits 120 better than 24 (in 133 of 200 rows at 576 values, a review) but
      144 nearly as well, where a week is fitted by 168 alone (at 0.7 a weekend 2 lower under noise
      0.7 took 168 in 3 of 40 rows at 576 values, a third review; at 0.8 the wave took 120 in 13 of
      200).

    A weekly pattern of levels on a daily cycle (a weekend 3 lower, noise 0.5) changes only at two
    of a week's 168 hourly changes, so the autocorrelation's comb test for a second season
    (``season.detect_seasons``) missed it at 576 to 1,024 values, and again at 3,072: its level's
    autocorrelation at 168 stood 0.10 above 144 and 192, under the margin of 0.13 for 1,011
    values; the seasonal naive of the values at 168 errs 0.58 where 24's errs 1.26."""
    out = torch.zeros_like(first)
    n = values.shape[1]
    slope = values.diff(dim=1).mean(dim=1, keepdim=True)  # [R, 1] the drift per step
    held = torch.zeros_like(first) if held is None else held
    for p in torch.unique(first).tolist():
        rows = (first == p).nonzero().squeeze(1)  # [G]
        v, drift = values[rows], slope[rows]  # [G, n], [G, 1] (gathered once: a detection of 10,000 rows)
        top = min(longest, SECOND_MULTIPLES * p)  # the longest multiple tested
        first_errors = _drift_naive_errors(v, drift, p, p)  # [G, n - p]
        chosen = torch.full_like(rows, p)
        old = held[rows]  # [G]
        for h in torch.unique(old[(old > p) & (old % p == 0) & (old <= top) & (n - old >= 2)]).tolist():
            keep = (old == h).nonzero().squeeze(1)
            mine = _drift_naive_errors(v[keep], drift[keep], h, h).mean(dim=1)
            fits = mine < KEEP_GAIN * first_errors[keep, h - p :].mean(dim=1)
            chosen[keep[fits]] = h
        settled = chosen != p  # [G] kept the one held: not searched again
        z = z_one_sided(SECOND_FALSE_RATE, len(range(2 * p, top + 1, p)))
        for m in range(2 * p, top + 1, p):  # the shorter first: a longer one must beat the chosen
            if n - m < 2:
                break
            err = _drift_naive_errors(v, drift, m, m)  # [G, n - m]
            err_chosen = first_errors[:, m - p :]  # [G, n - m] the first season's where none was taken yet...
            moved = ((chosen != p) & ~settled).nonzero().squeeze(1)
            if len(moved):  # ...and the taken multiple's where one was (rarely any)
                err_chosen = err_chosen.clone()
                at = torch.arange(m, n)[None, :] - chosen[moved, None]  # [M, n - m] t - chosen
                lagged = torch.gather(v[moved], 1, at)
                err_chosen[moved] = (v[moved, m:] - lagged - chosen[moved, None] * drift[moved]).abs()
            better = significantly_better(err, err_chosen, SECOND_GAIN, z) & ~settled
            for other in (m - p, m + p):  # the multiples next to it (m - p = p: the first, tested above)
                cand = better.nonzero().squeeze(1)
                if other == p or n - max(m, other) < 2 or not len(cand):
                    continue
                start = max(m, other)
                mine = _drift_naive_errors(v[cand], drift[cand], m, start).mean(dim=1)
                theirs = _drift_naive_errors(v[cand], drift[cand], other, start).mean(dim=1)
                better[cand] = mine < NEIGHBOUR_GAIN * theirs
            chosen = torch.where(better, m, chosen)
        out[rows] = torch.where(chosen != p, chosen, 0)
    return out


def set_seasons(
    rows: dict[str, torch.Tensor],
    step: torch.Tensor,
    lengths: torch.Tensor,
    which: torch.Tensor,
    counts: torch.Tensor | None = None,
) -> None:
    """Give the rows ``which`` [B] the season lengths ``lengths`` [B, d, 2], re-estimated from the
    values in the ring: per row and feature the last ``counts`` [B, d] of them (0 or None: all it
    holds; ``detect``: the values since a break, where a trend measured across a level shift by
    1e6 served 3.7e8, 29 times any value sent, a hostile test)."""
    idx = which.nonzero().squeeze(1)
    part = experts.subset(experts.experts_only(rows), idx)
    experts.reseason(part, step[idx], lengths[idx], None if counts is None else counts[idx])
    for key, value in experts.own(part).items():
        # in place: the rows are the store's own (a tick's views) or the tick's copies, saved for the
        # snapshots before the tick (as the kernels' writes are); a new tensor per field cost a copy of
        # every row of it, and another when the tick put it back (~40 ms a detection at 10,000 series)
        rows[key].index_put_((idx,), value)


def allowed(rows: dict[str, torch.Tensor]) -> torch.Tensor:
    """[B, E, d]: which members may take weight (every network row may)."""
    simple = experts.log_share_allowed(rows, rows["c_member_n"])
    return torch.cat([simple, torch.ones_like(simple[:, :1])], dim=1)


def served_weights(rows: dict[str, torch.Tensor]) -> torch.Tensor:
    """[B, Hc, E, d]: the members' served weights (``combination.served_weights``)."""
    return combination.served_weights(rows, allowed(rows))[0]


class Base(NamedTuple):
    """The experts' combination ``path`` [B, H, d] (what the network corrects); the experts'
    terms ``partial`` [B, H, 1 + COMBINERS, d] of the served mean and of each combiner's forecast (fast,
    slow, pooled) and the network member's weights ``net`` [B, min(H, Hc), 1 + COMBINERS, d] (served, then
    each combiner's), from
    which ``members`` completes the combinations once the network's correction is known."""

    path: torch.Tensor
    partial: torch.Tensor
    net: torch.Tensor


class Members(NamedTuple):
    """Every member's forecasts ``every`` [B, H, E, d], the served ``mean`` [B, H, d] and each
    combiner's forecast ``combined`` [B, H, COMBINERS, d] (fast, slow, pooled)."""

    every: torch.Tensor
    mean: torch.Tensor
    combined: torch.Tensor


def members(
    rows: dict[str, torch.Tensor],
    step: torch.Tensor,
    horizon: int,
    paths: torch.Tensor | None = None,
    base: Base | None = None,
    origin: tuple[torch.Tensor, ...] | None = None,
) -> Members:
    """Every member's forecasts ``[B, H, E, d]``, their combination ``[B, H, d]`` (the served
    mean) and each combiner's ``[B, H, COMBINERS, d]``, from the rows as they are (the network's
    correction included); ``paths`` and ``base``: the experts' forecasts and ``base_path`` of
    these rows when already made; ``origin``: the store's c_origin and c_origin_ref, to leave out
    the members that lag after a change as a tick does (``base_path``; a view has none)."""
    if paths is None:
        paths = experts.paths(rows, step, horizon, rows["c_loss"].shape[1])  # [B, H, E - 1, d]; past Hc, no AR change
    if base is None:
        base = base_path(rows, paths, step, origin)
    b, h, e, d = paths.shape
    every = torch.empty(b, h, e + 1, d, dtype=torch.float64)
    mean = torch.empty(b, h, d, dtype=torch.float64)
    combined = torch.empty(b, h, COMBINERS, d, dtype=torch.float64)
    arrays = readable(paths, base.path, base.partial, base.net, rows["n_correction"])
    own = readable(rows["x_scale"], rows["x_level"], rows["x_nonneg"])
    kernels.serve(*arrays, *own, every.numpy(), mean.numpy(), combined.numpy())
    return Members(every, mean, combined)


def changes_of(
    rows: dict[str, torch.Tensor], origin: tuple[torch.Tensor, ...] | None
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """What ``after_change`` reads of the rows: their o_shift_at [B, d] and the store's forecasts remembered
    (``origin``: c_origin and c_origin_ref, read at the rows' slots, the values ring's rows); without
    ``origin`` (a view's rows: no snapshot holds it) no change, and nothing to read."""
    if origin is None:
        empty = (np.zeros((1, 1, 1, 1, 1), dtype=np.float32), np.zeros((1, 1, 1)))
        return np.zeros(tuple(rows["x_seen"].shape), dtype=np.int64), empty
    return readable(_shift_at(rows))[0], (origin[0].numpy(), origin[1].numpy())


def base_path(
    rows: dict[str, torch.Tensor],
    paths: torch.Tensor,
    steps: torch.Tensor | None = None,
    origin: tuple[torch.Tensor, ...] | None = None,
) -> Base:
    """The base from the experts' ``paths`` [B, H, E - 1, d]: their share of the served
    combination, renormalised (the weights of all members, the network's included, are
    computed once per tick; ``hybrid_kernels.base``); ``origin``: the store's c_origin and c_origin_ref,
    where the members that lag after a change are to be left out as the tick left them out, at the rows'
    ``steps`` [B] (``after_change``; None: none are)."""
    b, h, _, d = paths.shape
    tracked = min(h, rows["c_loss"].shape[1])  # the horizons whose weights are tracked (Hc), up to H
    path = torch.empty(b, h, d, dtype=torch.float64)
    partial = torch.empty(b, h, 1 + COMBINERS, d, dtype=torch.float64)
    net = torch.empty(b, tracked, 1 + COMBINERS, d, dtype=torch.float64)
    arrays = readable(
        paths,
        *(rows[name] for name in combination.FIELDS),
        rows["x_positive"],
        rows["x_season_length"],
        rows["c_member_n"],
    )
    shift_at, (ring_origin, ref) = changes_of(rows, origin)
    steps = torch.zeros(b, dtype=torch.int64) if steps is None else steps
    slot, step, ring = readable(rows["slot"], steps, rows["x_raw"])
    outs = [path.numpy(), partial.numpy(), net.numpy()]  # every one [B, ...]
    over_rows(
        b,
        lambda r: kernels.base(
            *(a[r] for a in arrays), (slot[r], step[r], shift_at[r], ring_origin, ref, ring), *(a[r] for a in outs)
        ),
    )
    return Base(path, partial, net)


def half_widths(rows: dict[str, torch.Tensor], horizons: int) -> torch.Tensor:
    """[B, H, d]: the interval half-widths at horizons 1 .. ``horizons`` at the tracked level before their
    targets' phase factors (from the rows' ``c_q`` and ``c_far_q``, ``calibration.half_widths``; a forecast
    serves them times the factors, ``calibration.phase_widths``); NaN while nothing is scored."""
    return calibration.half_widths(rows["c_q"], horizons, None, rows["c_far_q"])


PREFIXES = ("x_", "c_", "n_", "o_")  # the store's fields that belong to the hybrid
