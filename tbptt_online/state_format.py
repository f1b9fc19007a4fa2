"""The state dict's format, and the migration of older formats to the current one.

- format 1: tbptt-online 0.1 (network-only forecasts): refused, it learned under another rule.
- format 2: the hybrid (experts, combination, calibration) and the warm-up updates.
- format 3: the truncation probe (``probe``), the instability guards (``engine.guard``), the
  window K_t of each recent update (``engine.recent[i][5]``) and the config fields
  ``k2_min``, ``k2_max``, ``truncation_bias``, ``probe_every``, ``probe_length``, ``guards``;
  and the hybrid's ring of past forecasts keeps the half-width served with each forecast
  (``c_origin`` [C, Hc, Hc, E + 2, d]: members, served, its half-width).
- format 4: the hybrid's long AR on the changes (``ar_changes``: the fields ``x_arc``,
  ``x_arc_p``), a 20th expert, so the members' fields (``c_loss``, ``c_member_abs``,
  ``c_origin``) gain its column before the network's.
- format 5: the combination's slow combiner and the mixture of the two (``combination``:
  the fields ``c_slow_loss``, ``c_slow_count``, ``c_meta_loss``, ``c_meta_count``), and the
  ring of past forecasts keeps the two combiners' forecasts (``c_origin`` [C, Hc, Hc, E + 4,
  d]: members, served, its half-width, fast, slow).
- format 6: the hybrid's outliers (``outliers``: the fields ``o_run``, ``o_count``,
  ``o_largest``).
- format 7: the probe counts, per followed row, the probes in a row at which it held no full
  window (``probe.tensors["missed"]``), to give a stale row to another series; a series'
  statistics count the scored forecasts that had an interval (``stats`` row ``interval_n``,
  the coverage's denominator: a forecast served without one counted as a miss).
- format 8: the probe keeps the relative truncation bias it measured on its windows at its
  last probe (``probe.tensors["measured"]`` [1], NaN: none; ``engine.measured_bias``).
- format 9: the hybrid's ring of past forecasts keeps them relative to each origin's served
  one-step mean (``c_origin_ref`` [C, Hc, d] float64; ``hybrid_kernels.remember``): float32
  rounded a series at 1e8 to multiples of 8.
- format 10: a series' statistics count its restarts (``stats`` rows ``restarts`` and
  ``restarted_steps``, 0 in an older state: ``forecaster._restart_broken``).
- format 11: the experts' excursions (``excursions``: the fields ``x_sdiff``, the usual size
  of a seasonal difference, ``x_excursion``, the step an excursion began, and ``x_repaired``,
  the step the last one repaired began), and the median expert (``x_median``), a 21st expert,
  so the members' fields (``c_loss``, ``c_slow_loss``, ``c_member_abs``, ``c_origin``) gain
  its column before the network's.
- format 12: the long AR on the levels (``ar_levels``: the fields ``x_arl``, ``x_arl_p``,
  ``x_arl_ref``, ``x_arl_count``, ``x_arl_unit``), a 22nd expert, so the members' fields gain
  its column before the network's.
- format 13: the detections in a row that gave each series' first season (``x_period_runs``:
  a season given twice in a row is held, ``hybrid._replaces``).
- format 14: whether every value so far was >= 0 (``x_nonneg``: no forecast, and no interval's
  lower bound, served below 0 there; ``hybrid_kernels._served``, ``tick_kernels._interval``), and the
  other levels' width ratios learned from the errors (``c_shape``: ``calibration.level_ratios``).
- format 15: one name for a season's length: the experts' ``x_period`` is ``x_season_length``, and
  format 13's ``x_period_runs`` is ``x_season_runs``; and the values missing in a row up to now
  (``x_missing`` int64, for the flag ``x_last_observed``): the next forecast is served with the
  width of that many more steps (``tick_kernels._width_after``).
- format 16: the steps of each series' last values beyond their bounds (``o_recent``: a value
  beyond its bound a season after one on the same side recurs and is taken as it came, ``outliers``;
  ``o_recent_value``, those values as they came), and the step from which the long AR on the levels
  reads its lags as they are (``x_arl_from``: a level shift to another order of magnitude starts it
  again, ``ar_levels``).
- format 17: the step at which each series' last change (of its level or spread) was found
  (``o_shift_at``: a re-check of the seasons reads the values on each side of it in their own level
  and spread, ``hybrid.detect``, and a new season is estimated from the values after it).
- format 18: the short AR on the levels (``ar_short``, an AR(2) with a mean, fitted beside the long
  one on its mean: the fields ``x_ars``, ``x_ars_p``, ``x_ars_ref``, ``x_ars_unit``), a 23rd expert,
  so the members' fields gain its column before the network's.
- format 19: the AR experts' least-squares P (``x_ar_p``, ``x_arc_p``, ``x_arl_p``, ``x_ars_p``) are
  exactly symmetric (``rls``: formed element by element, they drifted from symmetry by a factor of
  1 / 0.995 a value and were indefinite after a few thousand values).
- format 20: the interval's half-width at the far horizons past ``calibrated_horizon``
  (``calibration.far_horizons``: ``c_far_q``) and the ring of the forecasts served there
  (``c_far_origin``: ``hybrid_kernels.score_far``). A state of format 19 gains them blank, as a new
  series has them (no far width known, no far forecast remembered): its forecasts past the calibrated
  horizon are served as before (``q_H sqrt(h / H)``) until the far horizons' first values are scored.
- format 21: each horizon's half-width past the first served as a scale times a multiplier
  (``calibration``: the served forecast's discounted absolute errors and their count, and the
  multiplier, ``c_spread``, and at the far horizons ``c_far_spread``). A state of format 20 gains them
  from the widths it has: where a horizon's ``c_q`` (``c_far_q``) is known, the scale of one error ``q /
  M(level)``, counted once, and the normal multiplier, so its widths are served as they were until the
  next values are scored; the scale then follows the new errors within a few values. The one-step
  column is a new series' (its width keeps its own rule).
- format 22: where one of a series' two seasons is a multiple of the other (24 and 168), the smoothing of the
  gamma-0.1 family holds it as one table of the longer (``expert_kernels.smoothing_seasons``), and the
  seasonal naive reads the longer season back. A state of format 21 has those variants' two tables made
  one (``_with_one_table``): its index at phase p is the first table's at p mod m0 plus the second's at p mod m1,
  the sum their forecasts read, and the second table 0; their forecasts are as they were, bit for bit,
  and their next values update one table.
- format 23: each smoothing variant's second level is a slow one (alpha 0.03, ``expert_kernels.SLOW``), starting
  again at a level shift, where it was a level of alpha 0.5 (and the smoothing and the local scale take a young
  value at most ``SMOOTHING_CLIP`` scales off, which changes no field); past ``TREND_STABLE`` the seasons are
  measured against it, where they were against the alpha-0.2 level. A state of format 22 keeps its tensors
  (``_with_slow_level``): the slow level starts from the alpha-0.5 level's value and its member from that
  member's records (its losses, its past forecasts still to be scored). Every other member's level and records
  are as they were; the seasons past ``TREND_STABLE`` are measured against the slow level from the next value on.
- format 24: the widths' phase factors (``calibration.phase_factor``): per phase of each series' first season the
  discounted sums of its one-step errors, their count and their squares (``c_phase``), the season they were
  gathered for (``c_phase_of``) and per horizon the fit of its errors on the factors (``c_phase_fit``: how far
  they are served there). A state of format 23 gains them blank (``_with_phase``), gathered for no season: each
  series' next value re-estimates them from its values ring (``calibration.phase_reestimated``), as after a change
  of season, and its forecasts are served as they were (factors 1) until a horizon's errors have been seen to
  follow them.
- format 25: each series' recent errors (the statistics' rows ``recent_n``, ``recent_abs_err``,
  ``recent_naive_abs_err``: ``scoring.RECENT``) and coverage per horizon (``c_coverage`` at 1 .. Hc,
  ``c_far_coverage`` at the far horizons: the values within the interval served for them, the forecasts scored
  with a width of the horizon's own, and the two discounted, ``hybrid_kernels._covered``). A state of format 24
  gains them at 0 (``_with_recent_scores``): the recent errors and the coverage per horizon in its series' stats
  count from the load on (the whole life's figures go on, as before).
- format 26: each series' flat runs (the statistics' rows ``flat_run``, ``flat_longest``, ``flat_repeats``,
  ``flat_pairs``, ``flat_held``: ``flat_runs.hold_flat_runs``), which hold a stuck value's repeats back as missing.
  A state of format 25 gains them at 0 (``_with_flat_runs``): each series' repeat rate is counted from the load on,
  from Laplace's 1/2, so a run in progress at the load is never held (its repeats, counted as they come, make it
  probable: a review, session 57); the rule holds runs once the series has shown values that move.
- format 27: the combination's pooled combiner (``combination.POOLED``: at horizon h the mean of the fast
  combiner's weights at h and at one step, a third candidate of the mixture): the mixture's losses gain its column
  (``c_meta_loss`` [C, Hc, 3, d]) and the ring of past forecasts its forecasts (``c_origin`` [C, Hc, Hc, E + 5,
  d]). A state of format 26 gains them as the fast combiner's (``_with_pooled_combiner``: at one step its forecasts
  are the fast one's, so its record there is the fast one's; at longer horizons it starts even with it, and its
  past forecasts still to be scored count as the fast one's): past one step the mixture then takes it as a second
  fast combiner until their errors part, so the served forecasts there move at the load (at most by the fast
  combiner's share toward it); at one step it takes no weight (``combination.mixed_weights``): no move.

A ring of past forecasts without the half-widths' slot (format 2, and format 3 before the
slot was added) gains it, at 0 = unknown: the next ``calibrated_horizon`` values judge their
misses against the interval in force, as before.

A hybrid state of format 2 or 3 gains the long AR (``_with_changes_ar``): its coefficients
start at 0 and its P at the prior, as for a new series, and it starts as the worst member
it could be: its discounted loss at every horizon is the cap times the count
(``combination.CAP``: every past target an error at the cap), so its weight is 0 (the
softmax underflows) and the served forecasts stay the old members' until its own errors
have replaced the cap's (about 400 values); its past forecasts still to be scored are the
served ones and its one-step MAE in the series' stats starts as the naive's.

A hybrid state of format 4 (or older, migrated to 4 first) gains the slow combiner
(``_with_slow_combiner``): it starts from the fast one's losses, converted to the series'
units at its local scale (the fast combiner measures errors in local scales, the slow one
in the series' units), with the fast one's count, so both give the same weights (to within
an ulp: the ratios to the best member are what count); the mixture starts even (nothing
scored), and the past forecasts still to be scored count as both combiners' (the served
ones). So the served forecasts go on as before, to within an ulp, until the two combiners'
losses part.

A state of format 7 (or older, migrated to 7 first) gains the probe's ``measured`` bias as NaN
(not measured): the advisor reports none until the next probe measures it.

A hybrid state of format 8 (or older, migrated to 8 first) gains ``c_origin_ref`` at 0: its ring
holds the forecasts themselves, which is what a reference of 0 means, so they are scored as
before; the next ``calibrated_horizon`` origins write relative ones.

A state of format 6 (or older, migrated to 6 first) gains the probe's ``missed`` counts at 0,
as a probe that has just taken its rows: a row is given to another series two probes later at
the earliest (probe.py); and each series' ``interval_n`` equal to its scored forecasts
(``score_n``): its coverage reads as before, every forecast counted, until new ones are.

A hybrid state of format 5 (or older, migrated to 5 first) gains the outliers' fields
(``_with_outliers``) as a new series has them: no run, nothing taken at a bound, no error
taken yet (so the first values' bounds are the interval's alone). Its next values are
judged against the intervals it serves: a value within ``outlier_sigmas`` of them is
learned from as before.

A hybrid state of format 11 (or older, migrated to 11 first) gains the long AR on the levels
(``_with_levels_ar``) as format 4 gave the long AR on the changes: its fields as a new series
has them (no coefficients, the prior's P, no reference: it starts from the next value, and
fits from it with the ORDER values before it in the ring), and its columns at the worst loss
it could have, so it takes (next to) no weight until its own errors replace the cap's; the
other members go on as they would have.

A hybrid state of format 12 (or older, migrated to 12 first) gains ``x_period_runs`` at 1 where a
series has a season, 0 where it has none: as if each season had just been found, so the next
detection that gives it again holds it.

A hybrid state of format 13 (or older, migrated to 13 first) gains ``x_nonneg`` from what it
kept: true where every value so far was > 0 (``x_positive``), or where the series' values all
lie in its ring of the last R values (its step count at most R) and none is below 0; false
otherwise (nothing older is known), as for a series that has gone below 0: its forecasts are
as before. It gains ``c_shape`` at 1, as a new series: its intervals at other levels are the
normal distribution's ratios of its tracked width, as before, until its errors move them.

A hybrid state of format 14 (or older, migrated to 14 first) has its two fields renamed
(``_with_season_names``): the same tensors under the new names; and gains ``x_missing`` from
``x_last_observed`` (``_with_missing_runs``): 0 where the last value was observed, else 1, the
fewest it can have been (the run was not kept). A series whose last value was observed forecasts
and learns bit for bit as before; one after missing values serves its next forecast with the width
of one more step than the one-step width it served, until its next value.

A hybrid state of format 15 (or older, migrated to 15 first) gains ``x_arl_from`` at 0 (no shift
since its start: every lag as it is, as before) and ``o_recent``, ``o_recent_value`` at 0: no value
beyond its bound remembered. Its next season's values are judged as before the rule existed
(one a season after a spike taken at its bound is taken at its bound too), and recorded; a
model none of whose series meets a recurring value or a change of order of magnitude goes on
bit for bit as before (the network is shared: one series that meets one changes the others').

A hybrid state of format 16 (or older, migrated to 16 first) gains ``o_shift_at`` at 0: no change
found, as before the field existed. Its re-checks of the seasons read the values in the ring as
before until its next change; a model none of whose series changes goes on bit for bit as before.

A hybrid state of format 17 (or older, migrated to 17 first) gains the short AR on the levels
(``_with_short_ar``) as format 12 gave the long one: its fields as a new series has them (no
coefficients, the prior's P, no units: it fits from the next value, with the two values before it
in the ring, on the long AR's mean), and its columns at the worst loss it could have, so it takes
(next to) no weight until its own errors replace the cap's; the other members go on as they would
have.

A hybrid state of format 18 (or older, migrated to 18 first) has each AR expert's P made symmetric,
(P + P') / 2 (a change of 1e-11 to 1e-8 of P's largest entry in series of about 2,000 values, none in
one whose P never drifted: the tensors as saved), and a fit whose P had drifted from symmetry by
``rls.ASYMMETRY`` of its largest entry or more, or is not positive semi-definite once symmetric,
starts again: its coefficients at 0 and its P at its prior, as a new series' (its forecasts were
noise; its member's errors in the combination say so, and it regains weight as its new fit earns it).

A format-2 state written before the probe and the guards existed is migrated, exactly: every
saved field is kept as it was, and what was never measured starts as it would for a model
built at that moment — the config's new fields take their defaults, the probe follows the
first ``PROBE_SERIES`` live series (by slot) with nothing recorded yet, the guards have no
history (their running median fills over the next updates), the learning rate is the
configured one, the last good copy is the saved weights and optimizer state, and the old
updates' windows are 0 (not recorded). Until a guard fires, the migrated model learns and
forecasts bit for bit as the version that wrote the state would have (the probe changes no
weight). A format-2 state that already has those keys (written by the version that added
them, before the number moved on) is read as format 3.

>>> from tbptt_online import Forecaster, ForecasterConfig
>>> f = Forecaster(ForecasterConfig(hidden_size=4, k1=2, k2=4, hybrid=False))
>>> _ = f.observe("a", 1.0)
>>> old = f.state_dict()
>>> old["format"], old["engine"]["recent"] = 2, [r[:5] for r in old["engine"]["recent"]]
>>> del old["probe"], old["engine"]["guard"]
>>> old["store"]["tensors"]["stats"] = old["store"]["tensors"]["stats"][:, :STAT["interval_n"]]  # nor restarts
>>> new = current_state(old)
>>> new["format"], new["engine"]["guard"]["lr_scale"], new["engine"]["recent"][0][5], new["probe"]["probes"]
(27, 1.0, 0, 0)
>>> current_state({"format": 28})
Traceback (most recent call last):
...
ValueError: format=28 is invalid: this version reads formats 2 to 27 (it writes 27)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from tbptt_online import (
    ar_changes,
    ar_levels,
    calibration,
    excursions,
    expert_kernels,
    experts,
    hybrid_kernels,
    outliers,
    rls,
    scoring,
)
from tbptt_online.calibration import SHAPE_LEVELS
from tbptt_online.combination import CAP
from tbptt_online.config import ForecasterConfig
from tbptt_online.config import migrated as within_tightened_bounds
from tbptt_online.guards import InstabilityGuard, _clone_state
from tbptt_online.network import RecurrentNetwork
from tbptt_online.probe import PROBE_SERIES, TruncationProbe
from tbptt_online.scoring import STAT

log = logging.getLogger(__name__)

FORMAT_VERSION = 27
BEFORE_GUARDS = 2
BEFORE_CHANGES_AR = 3
BEFORE_SLOW_COMBINER = 4
BEFORE_OUTLIERS = 5
BEFORE_PROBE_MISSES = 6
BEFORE_MEASURED_BIAS = 7
BEFORE_ORIGIN_REF = 8
BEFORE_RESTARTS = 9
BEFORE_EXCURSIONS = 10
BEFORE_LEVELS_AR = 11
BEFORE_SEASON_RUNS = 12
BEFORE_NONNEG = 13
BEFORE_SEASON_NAMES = 14
BEFORE_RECENT_OUTLIERS = 15
BEFORE_SHIFT_STEPS = 16
BEFORE_SHORT_AR = 17
BEFORE_SYMMETRIC_P = 18
BEFORE_FAR_HORIZONS = 19
BEFORE_SPREAD = 20
BEFORE_ONE_TABLE = 21
BEFORE_SLOW_LEVEL = 22
BEFORE_PHASE = 23
BEFORE_COVERAGE = 24
BEFORE_FLAT_RUNS = 25
BEFORE_POOLED = 26
FORMAT_26_COMBINERS = 2  # the combiners of formats 5 to 26: fast, slow
OLD_MEMBERS = 20  # the members of formats 2 and 3: 19 experts and the network
NEW_EXPERT = experts.NAMES.index("ar_changes")  # format 4's new column, before the network's then
MEDIAN = experts.NAMES.index("median")  # format 11's, the last expert's, before the network's
FORMAT_10_MEMBERS = MEDIAN + 1  # the members of formats 4 to 10: 20 experts and the network
LEVELS_AR = experts.NAMES.index("ar_levels")  # format 12's, the last expert's, before the network's
FORMAT_11_MEMBERS = LEVELS_AR + 1  # the members of format 11: 21 experts and the network
SHORT_AR = experts.NAMES.index("ar_short")  # format 18's, the last expert's, before the network's
FORMAT_17_MEMBERS = SHORT_AR + 1  # the members of formats 12 to 17: 22 experts and the network
SHORT_AR_FIELDS = ("x_ars", "x_ars_p", "x_ars_ref", "x_ars_unit")  # format 18's, after x_arl_from
NEW_COMBINER_FIELDS = ("c_slow_loss", "c_slow_count", "c_meta_loss", "c_meta_count")  # format 5's


def current_state(state: Any) -> Any:
    """``state`` in the current format: itself when it is, a migrated copy of an older one
    (the input is not changed), ``ValueError`` saying why for a format this version cannot
    read or an older state too malformed to migrate. Not a dict: returned as it is."""
    if not isinstance(state, dict):
        return state
    if isinstance(state.get("config"), dict):  # a bound tightened since it was saved (config.migrated)
        config, notes = within_tightened_bounds(state["config"])
        if notes:
            for note in notes:
                log.warning("a saved state's config: %s", note)
            state = {**state, "config": config}
    found = state.get("format")
    if found == FORMAT_VERSION and not isinstance(found, bool):
        return state
    # per older format: what its states were written before, and the steps to the next format
    steps = (
        (BEFORE_GUARDS, "the truncation probe and the instability guards", (_migrate,)),
        (BEFORE_CHANGES_AR, "the long AR expert", (_with_served_widths, _with_changes_ar)),
        (BEFORE_SLOW_COMBINER, "the slow combiner", (_with_slow_combiner,)),
        (BEFORE_OUTLIERS, "the outliers' fields", (_with_outliers,)),
        (BEFORE_PROBE_MISSES, "the probe's missed counts and the series' interval counts", (_with_format_7_counts,)),
        (BEFORE_MEASURED_BIAS, "the probe's measured bias", (_with_measured_bias,)),
        (BEFORE_ORIGIN_REF, "the references of the ring of past forecasts", (_with_origin_ref,)),
        (BEFORE_RESTARTS, "the series' restart counts", (_with_restarts,)),
        (BEFORE_EXCURSIONS, "the experts' excursions and the median expert", (_with_excursions,)),
        (BEFORE_LEVELS_AR, "the long AR on the levels", (_with_levels_ar,)),
        (BEFORE_SEASON_RUNS, "the held seasons' detection runs", (_with_season_runs,)),
        (BEFORE_NONNEG, "the never-negative flags and the levels' width ratios", (_with_nonneg,)),
        (
            BEFORE_SEASON_NAMES,
            "the season fields' new names and the missing runs",
            (_with_season_names, _with_missing_runs),
        ),
        (
            BEFORE_RECENT_OUTLIERS,
            "the recent values beyond their bounds and the long AR on the levels' start",
            (_with_recent_outliers,),
        ),
        (BEFORE_SHIFT_STEPS, "the steps of the series' last changes", (_with_shift_steps,)),
        (BEFORE_SHORT_AR, "the short AR on the levels", (_with_short_ar,)),
        (BEFORE_SYMMETRIC_P, "the AR experts' symmetric P", (_with_symmetric_p,)),
        (BEFORE_FAR_HORIZONS, "the far horizons' half-widths", (_with_far_horizons,)),
        (BEFORE_SPREAD, "the half-widths' scale and multiplier", (_with_spread,)),
        (BEFORE_ONE_TABLE, "the one-table seasons of the gamma-0.1 smoothing", (_with_one_table,)),
        (BEFORE_SLOW_LEVEL, "the smoothing's slow levels", (_with_slow_level,)),
        (BEFORE_PHASE, "the widths' phase factors", (_with_phase,)),
        (BEFORE_COVERAGE, "the recent errors and the coverage per horizon", (_with_recent_scores,)),
        (BEFORE_FLAT_RUNS, "the flat runs", (_with_flat_runs,)),
        (BEFORE_POOLED, "the pooled combiner", (_with_pooled_combiner,)),
    )
    if found == 1 and not isinstance(found, bool):
        raise ValueError(
            "format=1 is a checkpoint of tbptt-online 0.1 (network-only forecasts); it cannot be loaded by this "
            f"version (format {FORMAT_VERSION}): its model has no experts' state and learned under another update "
            "rule. Re-create the model and send its series again."
        )
    start = next((k for k, (number, _, _) in enumerate(steps) if found == number and not isinstance(found, bool)), None)
    if start is None:
        raise ValueError(
            f"format={found!r} is invalid: this version reads formats {BEFORE_GUARDS} to {FORMAT_VERSION} "
            f"(it writes {FORMAT_VERSION})"
        )
    if start == 0 and "probe" in state:  # written by the version that added the probe, still numbered 2
        return current_state({**state, "format": BEFORE_CHANGES_AR})
    number, written_before, _ = steps[start]
    migrated = state
    try:
        for _, _, functions in steps[start:]:
            for function in functions:
                migrated = function(migrated)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as error:
        raise ValueError(
            f"format={number} state (written before {written_before}) cannot be migrated to format "
            f"{FORMAT_VERSION}: {_why(error, number)}"
        ) from None
    return migrated


def _why(error: Exception, number: int) -> str:
    """What a migration's error says of the state: a part missing, or not as format ``number`` writes it (the
    exception's own words were all a malformed old state got, e.g. "KeyError: 'stats'": a hostile test, session 57).
    A ``ValueError`` of a migration's own check names the field already."""
    if isinstance(error, ValueError):
        return str(error)
    if isinstance(error, KeyError):
        return f"it has no {error} where format {number} has one (a part of the state is missing)"
    return (
        f"a part of it is not of the type or shape format {number} writes ({type(error).__name__}: {error}); "
        "was it written by tbptt-online?"
    )


def _migrate(state: dict[str, Any]) -> dict[str, Any]:
    """A format-2 state written before the probe and the guards in format 3: those start fresh
    (module doc)."""
    config = ForecasterConfig.from_dict(state["config"])  # the new fields at their defaults
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    engine = dict(state["engine"])
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        names = [name for name, _ in RecurrentNetwork(config).named_parameters()]
    params = [state["network"][name] for name in names]
    guard = InstabilityGuard(params)
    guard.keep_good(params, _clone_state(engine["optimizer"]["state"]), int(engine["attempts"]))
    engine["guard"] = guard.state_dict()
    engine["recent"] = [[*record, 0] if len(record) == 5 else record for record in engine["recent"]]
    probe = TruncationProbe(config, dtype)
    live = [slot for slot, name in enumerate(state["store"]["names"]) if name is not None]
    probe.follow(torch.tensor(live[:PROBE_SERIES], dtype=torch.int64))
    return {
        **state,
        "config": config.to_dict(),
        "engine": engine,
        "probe": probe.state_dict(),
    }


def _with_served_widths(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` whose hybrid ring of past forecasts has the served half-widths' slot (a copy
    with a slot of zeros, 0 = unknown, when it has none; itself otherwise)."""
    store = state.get("store")
    tensors = store.get("tensors") if isinstance(store, dict) else None
    ring = tensors.get("c_origin") if isinstance(tensors, dict) else None
    if not isinstance(ring, torch.Tensor) or ring.dim() != 5 or ring.shape[3] != OLD_MEMBERS + 1:
        return state
    padded = torch.cat([ring, ring.new_zeros(*ring.shape[:3], 1, ring.shape[4])], dim=3)
    return {**state, "store": {**store, "tensors": {**tensors, "c_origin": padded}}}


def _insert(old: torch.Tensor, column: torch.Tensor, dim: int, at: int) -> torch.Tensor:
    """``old`` with ``column`` (size 1 along ``dim``) inserted at index ``at`` of ``dim``: a new
    member's column in the members' fields."""
    return torch.cat([old.narrow(dim, 0, at), column, old.narrow(dim, at, old.shape[dim] - at)], dim=dim)


def _with_changes_ar(state: dict[str, Any]) -> dict[str, Any]:
    """A format-2 or 3 ``state`` (with the served half-widths' slot) in format 4: a hybrid's
    store gains the long AR's fields and its member's columns (module doc); a copy, the input
    is not changed."""
    store = state.get("store")
    tensors = store.get("tensors") if isinstance(store, dict) else None
    if not isinstance(tensors, dict) or "c_loss" not in tensors or "x_arc" in tensors:
        return {**state, "format": BEFORE_SLOW_COMBINER}  # no hybrid: nothing else changed
    loss, count = tensors["c_loss"], tensors["c_count"]  # [C, Hc, E, d], [C, Hc, d]
    member_abs, ring = tensors["c_member_abs"], tensors["c_origin"]  # [C, E, d], [C, Hc, Hc, E + 2, d]
    if loss.shape[2] != OLD_MEMBERS or member_abs.shape[1] != OLD_MEMBERS or ring.shape[3] != OLD_MEMBERS + 2:
        raise ValueError(f"format={state['format']} hybrid state has {loss.shape[2]} members, expected {OLD_MEMBERS}")
    capacity, d = count.shape[0], count.shape[2]
    at = NEW_EXPERT
    new = {
        **tensors,
        **ar_changes.fields(capacity, d),
        "c_loss": _insert(loss, (CAP * count)[:, :, None], 2, at),  # the worst it could be: weight 0
        "c_member_abs": _insert(member_abs, member_abs[:, :1], 1, at),  # the naive's (index 0)
        "c_origin": _insert(ring, ring[:, :, :, OLD_MEMBERS : OLD_MEMBERS + 1], 3, at),  # the served forecasts
    }
    return {**state, "format": BEFORE_SLOW_COMBINER, "store": {**store, "tensors": new}}


def _with_slow_combiner(state: dict[str, Any]) -> dict[str, Any]:
    """A format-4 ``state`` in format 5: a hybrid's store gains the slow combiner, the
    mixture's losses and the combiners' columns of the ring (module doc); a copy, the input is
    not changed."""
    store = state.get("store")
    tensors = store.get("tensors") if isinstance(store, dict) else None
    if not isinstance(tensors, dict) or "c_loss" not in tensors:
        return {**state, "format": BEFORE_OUTLIERS}  # no hybrid: nothing else changed
    loss, count, ring = tensors["c_loss"], tensors["c_count"], tensors["c_origin"]  # [C, Hc, E, d], [C, Hc, d]
    members = loss.shape[2]
    if ring.shape[3] != members + 2:
        raise ValueError(f"format=4 ring of past forecasts has {ring.shape[3]} columns, expected {members + 2}")
    unit = experts.local_scale(tensors)  # [C, d]
    served = ring[:, :, :, members : members + 1]  # [C, Hc, Hc, 1, d]
    new = {
        **tensors,
        "c_slow_loss": loss * unit[:, None, None, :],  # the fast one's, in the series' units
        "c_slow_count": count.clone(),
        "c_meta_loss": loss.new_zeros(loss.shape[0], loss.shape[1], FORMAT_26_COMBINERS, loss.shape[3]),
        "c_meta_count": torch.zeros_like(count),
        "c_origin": torch.cat([ring, served.expand(-1, -1, -1, FORMAT_26_COMBINERS, -1)], dim=3),
    }
    return {**state, "format": BEFORE_OUTLIERS, "store": {**store, "tensors": new}}


def _with_outliers(state: dict[str, Any]) -> dict[str, Any]:
    """A format-5 ``state`` in format 6: a hybrid's store gains the outliers' fields, as a new
    series has them (module doc); a copy, the input is not changed."""
    store = state.get("store")
    tensors = store.get("tensors") if isinstance(store, dict) else None
    if not isinstance(tensors, dict) or "c_loss" not in tensors:
        return {**state, "format": BEFORE_PROBE_MISSES}  # no hybrid: nothing else changed
    capacity, d = tensors["x_scale"].shape
    new = {**tensors, **outliers.fields(capacity, d)}
    return {**state, "format": BEFORE_PROBE_MISSES, "store": {**store, "tensors": new}}


def _with_format_7_counts(state: dict[str, Any]) -> dict[str, Any]:
    """A format-6 ``state`` in format 7: the probe's ``missed`` counts at 0 and the series'
    ``interval_n`` row equal to ``score_n`` (module doc); a copy, the input is not changed."""
    probe = state["probe"]
    missed = torch.zeros(probe["tensors"]["slots"].shape[0], dtype=torch.int64)
    store = state["store"]
    stats = store["tensors"]["stats"]  # [C, F', d]: the rows of STAT_FIELDS before interval_n
    if stats.shape[1] != STAT["interval_n"]:
        raise ValueError(f"format=6 stats have {stats.shape[1]} rows, expected {STAT['interval_n']}")
    stats = torch.cat([stats, stats[:, STAT["score_n"]].unsqueeze(1)], dim=1)  # interval_n = score_n
    return {
        **state,
        "format": BEFORE_MEASURED_BIAS,
        "probe": {**probe, "tensors": {**probe["tensors"], "missed": missed}},
        "store": {**store, "tensors": {**store["tensors"], "stats": stats}},
    }


def _with_measured_bias(state: dict[str, Any]) -> dict[str, Any]:
    """A format-7 ``state`` in format 8: the probe's ``measured`` bias NaN, not measured (module
    doc); a copy, the input is not changed."""
    probe = state["probe"]
    measured = torch.full((1,), torch.nan, dtype=torch.float64)
    return {
        **state,
        "format": BEFORE_ORIGIN_REF,
        "probe": {**probe, "tensors": {**probe["tensors"], "measured": measured}},
    }


def _with_origin_ref(state: dict[str, Any]) -> dict[str, Any]:
    """A format-8 ``state`` in format 9: a hybrid's ring of past forecasts gains its references
    at 0, the forecasts it holds being the forecasts themselves (module doc); a copy, the input
    is not changed."""
    store = state.get("store")
    tensors = store.get("tensors") if isinstance(store, dict) else None
    if not isinstance(tensors, dict) or "c_origin" not in tensors:
        return {**state, "format": BEFORE_RESTARTS}  # no hybrid: nothing else changed
    ring = tensors["c_origin"]  # [C, Hc, Hc, E + 4, d]
    ref = torch.zeros(ring.shape[0], ring.shape[1], ring.shape[4], dtype=torch.float64)  # [C, Hc, d]
    return {**state, "format": BEFORE_RESTARTS, "store": {**store, "tensors": {**tensors, "c_origin_ref": ref}}}


def _with_restarts(state: dict[str, Any]) -> dict[str, Any]:
    """A format-9 ``state`` in format 10: the series' statistics gain the rows ``restarts`` and
    ``restarted_steps`` at 0 (module doc); a copy, the input is not changed."""
    return {**_with_stats_rows(state, STAT["restarts"], 2, BEFORE_RESTARTS), "format": BEFORE_EXCURSIONS}


def _with_stats_rows(state: dict[str, Any], rows: int, added: int, found: int) -> dict[str, Any]:
    """``state`` whose series' statistics, of the ``rows`` first rows of STAT_FIELDS ([C, rows, d]), gain the
    ``added`` next at 0 (a copy; its format as it was); ``ValueError`` where a format-``found`` state's have not
    ``rows`` rows."""
    store = state["store"]
    stats = store["tensors"]["stats"]
    if stats.shape[1] != rows:
        raise ValueError(f"format={found} stats have {stats.shape[1]} rows, expected {rows}")
    stats = torch.cat([stats, stats.new_zeros(stats.shape[0], added, stats.shape[2])], dim=1)
    return {**state, "store": {**store, "tensors": {**store["tensors"], "stats": stats}}}


def _with_excursions(state: dict[str, Any]) -> dict[str, Any]:
    """A format-10 ``state`` in format 11: a hybrid's store gains the excursions' fields, none
    under way and the usual seasonal difference measured on each series' values ring as a
    season found now measures it (``excursions.usual_seasonal_difference``), and the median
    expert, at the median of each series' values in the ring, with its member's columns as format 4 gave the long AR
    its own (the worst loss it could have: weight 0 until its errors replace the cap's); a copy,
    the input is not changed."""
    store = state["store"]
    tensors = store.get("tensors") if isinstance(store, dict) else None
    if not isinstance(tensors, dict) or "x_raw" not in tensors:
        return {**state, "format": BEFORE_LEVELS_AR}  # no hybrid: nothing else changed
    ring, steps, lengths = tensors["x_raw"], tensors["steps"], tensors["x_period"][:, :, 0]  # [C, R, d], [C], [C, d]
    sdiff = torch.zeros(ring.shape[0], ring.shape[2], dtype=torch.float64)  # [C, d]
    median = torch.zeros_like(sdiff)  # [C, d]: the median expert's start
    for slot in (steps > 0).nonzero().flatten().tolist():
        n = min(int(steps[slot]), ring.shape[1])
        past = (int(steps[slot]) - torch.arange(n - 1, -1, -1)).view(1, -1, 1).expand(-1, -1, ring.shape[2])
        values = experts.ring_at(ring, torch.tensor([slot]), past)  # [1, n, d] oldest first
        sdiff[slot] = excursions.usual_seasonal_difference(values, lengths[slot : slot + 1])[0]
        median[slot] = values[0].median(dim=0).values  # of the values the ring holds (the last may be a spike)
    new = {
        **tensors,
        **excursions.fields(*sdiff.shape),
        "x_sdiff": sdiff,
        "x_median": median,
        **_worst_member_columns(tensors, FORMAT_10_MEMBERS, MEDIAN, BEFORE_EXCURSIONS),
    }
    return {**state, "format": BEFORE_LEVELS_AR, "store": {**store, "tensors": new}}


def _with_levels_ar(state: dict[str, Any]) -> dict[str, Any]:
    """A format-11 ``state`` in format 12: a hybrid's store gains the long AR on the levels, its
    fields as a new series has them and its member's columns at the worst loss it could have
    (module doc); a copy, the input is not changed."""
    store = state["store"]
    tensors = store.get("tensors") if isinstance(store, dict) else None
    if not isinstance(tensors, dict) or "x_raw" not in tensors:
        return {**state, "format": BEFORE_SEASON_RUNS}  # no hybrid: nothing else changed
    long_fit = {k: v for k, v in ar_levels.fields(*tensors["x_scale"].shape).items() if k not in SHORT_AR_FIELDS}
    new = {
        **tensors,
        **long_fit,
        **_worst_member_columns(tensors, FORMAT_11_MEMBERS, LEVELS_AR, BEFORE_LEVELS_AR),
    }
    return {**state, "format": BEFORE_SEASON_RUNS, "store": {**store, "tensors": new}}


def _with_season_runs(state: dict[str, Any]) -> dict[str, Any]:
    """A format-12 ``state`` in format 13: a hybrid's store gains ``x_period_runs``, 1 where a
    series has a first season and 0 where it has none (module doc); a copy, the input is not
    changed."""
    store = state["store"]
    tensors = store.get("tensors") if isinstance(store, dict) else None
    if not isinstance(tensors, dict) or "x_period" not in tensors:
        return {**state, "format": BEFORE_NONNEG}  # no hybrid: nothing else changed
    runs = (tensors["x_period"][:, :, 0] > 0).long()  # [C, d]
    return {**state, "format": BEFORE_NONNEG, "store": {**store, "tensors": {**tensors, "x_period_runs": runs}}}


def _with_nonneg(state: dict[str, Any]) -> dict[str, Any]:
    """A format-13 ``state`` in format 14: a hybrid's store gains ``x_nonneg`` and ``c_shape``
    (module doc); a copy, the input is not changed."""
    store = state["store"]
    tensors = store.get("tensors") if isinstance(store, dict) else None
    if not isinstance(tensors, dict) or "x_raw" not in tensors:
        return {**state, "format": BEFORE_SEASON_NAMES}  # no hybrid: nothing else changed
    ring, steps = tensors["x_raw"], tensors["steps"]  # [C, R, d], [C]
    held = torch.arange(ring.shape[1])[None, :, None] < steps[:, None, None]  # [C, R, 1]: a value of the series
    whole = (steps <= ring.shape[1])[:, None] & ((ring >= 0) | ~held).all(dim=1)  # [C, d]
    nonneg = tensors["x_positive"] | whole
    c, horizons, d = tensors["c_q"].shape
    shape = torch.ones(c, horizons, len(SHAPE_LEVELS), d, dtype=torch.float64)  # [C, Hc, S, d]
    new = {**tensors, "x_nonneg": nonneg, "c_shape": shape}
    return {**state, "format": BEFORE_SEASON_NAMES, "store": {**store, "tensors": new}}


OLD_SEASON_NAMES = {"x_period": "x_season_length", "x_period_runs": "x_season_runs"}  # format 14's: format 15's


def _with_season_names(state: dict[str, Any]) -> dict[str, Any]:
    """A format-14 ``state`` in format 15: a hybrid's store has its season fields under their
    new names (``OLD_SEASON_NAMES``), the same tensors; a copy, the input is not changed."""
    store = state["store"]
    tensors = store.get("tensors") if isinstance(store, dict) else None
    if not isinstance(tensors, dict) or "x_period" not in tensors:
        return {**state, "format": BEFORE_RECENT_OUTLIERS}  # no hybrid: nothing else changed
    renamed = {OLD_SEASON_NAMES.get(name, name): value for name, value in tensors.items()}
    return {**state, "format": BEFORE_RECENT_OUTLIERS, "store": {**store, "tensors": renamed}}


def _with_missing_runs(state: dict[str, Any]) -> dict[str, Any]:
    """A hybrid store's ``x_last_observed`` (a flag, format 14 and older) as format 15's ``x_missing``
    (module doc), at its place among the fields; a copy, the input is not changed."""
    store = state["store"]
    tensors = store.get("tensors") if isinstance(store, dict) else None
    if not isinstance(tensors, dict) or "x_last_observed" not in tensors:
        return state  # no hybrid: nothing else changed
    flag = tensors["x_last_observed"]
    if not isinstance(flag, torch.Tensor) or flag.dtype != torch.bool:  # (~ of a uint8 1 is 254: a review)
        raise ValueError(
            f"store.tensors['x_last_observed'] is invalid: {getattr(flag, 'dtype', type(flag))}, expected torch.bool"
        )
    renamed = {
        ("x_missing" if name == "x_last_observed" else name): ((~value).long() if name == "x_last_observed" else value)
        for name, value in tensors.items()
    }
    return {**state, "store": {**store, "tensors": renamed}}


def _with_recent_outliers(state: dict[str, Any]) -> dict[str, Any]:
    """A format-15 ``state`` in format 16: a hybrid's store gains ``x_arl_from``, ``o_recent`` and
    ``o_recent_value`` as a new series has them, at 0 (module doc), each at its place among the
    fields; a copy, the input is not changed."""
    after = {"x_arl_unit": ("x_arl_from",), "o_shifts": ("o_recent", "o_recent_value")}  # each after this one
    return _with_blank_fields(state, after, BEFORE_SHIFT_STEPS)


def _with_shift_steps(state: dict[str, Any]) -> dict[str, Any]:
    """A format-16 ``state`` in format 17: a hybrid's store gains ``o_shift_at`` at 0, no change found
    (module doc), after ``o_recent_value``; a copy, the input is not changed."""
    return _with_blank_fields(state, {"o_recent_value": ("o_shift_at",)}, BEFORE_SHORT_AR)


def _with_short_ar(state: dict[str, Any]) -> dict[str, Any]:
    """A format-17 ``state`` in format 18: a hybrid's store gains the short AR on the levels, its
    fields as a new series has them (after ``x_arl_from``) and its member's columns at the worst
    loss it could have (module doc); a copy, the input is not changed."""
    placed = _with_blank_fields(state, {"x_arl_from": SHORT_AR_FIELDS}, BEFORE_SYMMETRIC_P)
    tensors = placed["store"].get("tensors") if isinstance(placed["store"], dict) else None
    if not isinstance(tensors, dict) or "o_run" not in tensors:
        return placed  # no hybrid: nothing else changed
    columns = _worst_member_columns(tensors, FORMAT_17_MEMBERS, SHORT_AR, BEFORE_SHORT_AR)
    return {**placed, "store": {**placed["store"], "tensors": {**tensors, **columns}}}


def _with_symmetric_p(state: dict[str, Any]) -> dict[str, Any]:
    """A format-18 ``state`` in format 19: a hybrid's AR experts' P made symmetric, and each fit whose P
    had drifted (``rls.ASYMMETRY``) or is not positive semi-definite started again from its prior (module
    doc); a copy, the input is not changed."""
    store = state["store"]
    tensors = store.get("tensors") if isinstance(store, dict) else None
    if not isinstance(tensors, dict) or "o_run" not in tensors:
        return {**state, "format": BEFORE_FAR_HORIZONS}  # no hybrid: nothing else changed
    new = dict(tensors)
    for key, (coefficients, prior) in experts.FITS.items():
        p, theta = tensors[key], tensors[coefficients]  # [C, d, K, K], [C, d, K]
        symmetric = (p + p.transpose(-2, -1)) / 2
        largest = p.abs().flatten(start_dim=-2).amax(dim=-1)  # [C, d]
        drift = (p - p.transpose(-2, -1)).abs().flatten(start_dim=-2).amax(dim=-1)
        restart = (drift > rls.ASYMMETRY * largest) | ~rls.positive_semidefinite(symmetric)  # [C, d]
        if not bool(restart.any()):  # no fit starts again: P made symmetric, its tensor as saved where it was
            new[key] = p if torch.equal(p, symmetric) else symmetric
            continue
        eye = prior * torch.eye(p.shape[-1], dtype=p.dtype)
        new[key] = torch.where(restart[..., None, None], eye, symmetric)
        new[coefficients] = torch.where(restart[..., None], torch.zeros_like(theta), theta)
    return {**state, "format": BEFORE_FAR_HORIZONS, "store": {**store, "tensors": new}}


def _with_far_horizons(state: dict[str, Any]) -> dict[str, Any]:
    """A format-19 ``state`` in format 20: a hybrid's store gains, after ``c_origin_ref``, the far
    horizons' half-widths ``c_far_q`` at 0 and their ring ``c_far_origin`` at NaN, as a new series
    has them (module doc); a copy, the input is not changed."""

    def blank(tensors: dict[str, Any]) -> dict[str, torch.Tensor]:
        n, d = tensors["o_run"].shape[0], tensors["o_run"].shape[-1]
        far = calibration.far_horizons(int(tensors["c_q"].shape[1]))
        return {
            "c_far_q": torch.zeros(n, len(far), d, dtype=torch.float64),
            "c_far_origin": torch.full((n, max(far, default=1), len(far), 2, d), float("nan"), dtype=torch.float64),
        }

    return _with_fields_after(state, {"c_origin_ref": ("c_far_q", "c_far_origin")}, BEFORE_SPREAD, blank)


def _with_spread(state: dict[str, Any]) -> dict[str, Any]:
    """A format-20 ``state`` in format 21: a hybrid's store gains ``c_spread`` after ``c_q`` and
    ``c_far_spread`` after ``c_far_q``, each the scale and multiplier that serve the width it had (module
    doc); a copy, the input is not changed."""
    level = float(state["config"].get("interval_level", ForecasterConfig.interval_level))
    # a level outside (0, 1) has no multipliers: the config's check refuses the state, naming it, after the migration
    valid = 0.0 < level < 1.0
    multiplier = calibration.normal_multiplier(level) if valid else 1.0
    start = calibration.start_multiplier(level) if valid else 1.0

    def serving(tensors: dict[str, Any]) -> dict[str, torch.Tensor]:
        tracked = _spread_of(tensors["c_q"], multiplier, start)
        tracked[:, :1] = calibration.blank_spread(tracked.shape[0], 1, tracked.shape[-1], start)  # h = 1: its own rule
        return {"c_spread": tracked, "c_far_spread": _spread_of(tensors["c_far_q"], multiplier, start)}

    return _with_fields_after(state, {"c_q": ("c_spread",), "c_far_q": ("c_far_spread",)}, BEFORE_ONE_TABLE, serving)


def _with_one_table(state: dict[str, Any]) -> dict[str, Any]:
    """A format-21 ``state`` in format 22: where one of a series' two seasons is a multiple of the other, each
    one-table variant's (``expert_kernels.ONE_TABLE``) two seasonal tables made one of the longer, its index at
    phase p the first's at p mod m0 plus the second's at p mod m1, the second 0 (module doc); a copy, the input
    is not changed. One step per distinct pair of seasons (a review: a loop over every series' features took
    0.99 s for 16,000 of them, before the state's shapes were checked)."""
    store = state["store"]
    tensors = store.get("tensors") if isinstance(store, dict) else None
    if not isinstance(tensors, dict) or "x_season" not in tensors:
        return {**state, "format": BEFORE_SLOW_LEVEL}  # no hybrid: nothing else changed
    season, lengths = tensors["x_season"], tensors["x_season_length"]  # [C, V, 2, d, S], [C, d, 2]
    if season.dim() != 5 or lengths.dim() != 3 or lengths.shape[2] != 2 or season.shape[2] != 2:
        raise ValueError(f"store.tensors has x_season of shape {tuple(season.shape)} and x_season_length of shape "
                         f"{tuple(lengths.shape)}: not a format-21 hybrid's")  # fmt: skip
    multiple = experts.multiple_pairs(lengths) & (lengths.max(dim=2).values <= season.shape[-1])  # [C, d]
    if not bool(multiple.any()):
        return {**state, "format": BEFORE_SLOW_LEVEL}
    season = season.clone()
    one_table = torch.tensor([v for v, whole in enumerate(expert_kernels.ONE_TABLE) if whole])  # [W]
    for m0, m1 in torch.unique(lengths[multiple], dim=0).tolist():  # the series' features of one pair
        c, k = (multiple & (lengths[..., 0] == m0) & (lengths[..., 1] == m1)).nonzero(as_tuple=True)  # [G] each
        phases = torch.arange(max(m0, m1))
        rows, variants, features = c[:, None, None], one_table[None, :, None], k[:, None, None]  # [G, W, m]
        folded = season[rows, variants, 0, features, phases % m0] + season[rows, variants, 1, features, phases % m1]
        season[rows, variants, 0, features, phases] = folded
        season[c[:, None], one_table[None, :], 1, k[:, None]] = 0.0
    return {**state, "format": BEFORE_SLOW_LEVEL, "store": {**store, "tensors": {**tensors, "x_season": season}}}


def _with_slow_level(state: dict[str, Any]) -> dict[str, Any]:
    """A format-22 ``state`` in format 23: the same tensors, each smoothing variant's alpha-0.5 level and member
    now the slow level's, which starts from them (module doc)."""
    return {**state, "format": BEFORE_PHASE}


def _with_phase(state: dict[str, Any]) -> dict[str, Any]:
    """A format-23 ``state`` in format 24: a hybrid's store gains ``c_phase``, ``c_phase_of`` and ``c_phase_fit``
    after ``c_shape``, blank, gathered for no season (module doc); a copy, the input is not changed."""

    def blank(tensors: dict[str, Any]) -> dict[str, torch.Tensor]:
        n, d = tensors["o_run"].shape[0], tensors["o_run"].shape[-1]
        horizons = int(tensors["c_q"].shape[1])
        phase, phase_of, gain = calibration.blank_phase(n, int(tensors["x_season"].shape[-1]), horizons, d)
        return {"c_phase": phase, "c_phase_of": phase_of, "c_phase_fit": gain}

    return _with_fields_after(state, {"c_shape": ("c_phase", "c_phase_of", "c_phase_fit")}, BEFORE_COVERAGE, blank)


def _with_recent_scores(state: dict[str, Any]) -> dict[str, Any]:
    """A format-24 ``state`` in format 25: the series' statistics gain the recent errors' rows (``recent_n``,
    ``recent_abs_err``, ``recent_naive_abs_err``) at 0, and a hybrid's store ``c_coverage`` and ``c_far_coverage``
    after ``c_member_n``, at 0: each series' recent errors and coverage per horizon count from the load on (module
    doc); a copy."""
    state = _with_stats_rows(state, scoring.RECENT_SCORES, 3, BEFORE_COVERAGE)

    def blank(tensors: dict[str, Any]) -> dict[str, torch.Tensor]:
        n, d = tensors["o_run"].shape[0], tensors["o_run"].shape[-1]
        horizons, far = int(tensors["c_q"].shape[1]), int(tensors["c_far_q"].shape[1])
        columns = hybrid_kernels.COVERAGE_COLUMNS
        return {
            "c_coverage": torch.zeros(n, horizons, columns, d, dtype=torch.float64),
            "c_far_coverage": torch.zeros(n, far, columns, d, dtype=torch.float64),
        }

    return _with_fields_after(state, {"c_member_n": ("c_coverage", "c_far_coverage")}, BEFORE_FLAT_RUNS, blank)


def _with_flat_runs(state: dict[str, Any]) -> dict[str, Any]:
    """A format-25 ``state`` in format 26: the series' statistics gain the flat runs' rows (``flat_run``,
    ``flat_longest``, ``flat_repeats``, ``flat_pairs``, ``flat_held``) at 0 (module doc); a copy."""
    return {**_with_stats_rows(state, scoring.FLAT, 5, BEFORE_FLAT_RUNS), "format": BEFORE_POOLED}


def _with_pooled_combiner(state: dict[str, Any]) -> dict[str, Any]:
    """A format-26 ``state`` in format 27: a hybrid's mixture gains the pooled combiner's losses and its ring the
    pooled combiner's past forecasts, both the fast combiner's (module doc); a copy, the input is not changed.
    ``ValueError`` where the mixture or the ring has not format 26's two combiners."""
    store = state.get("store")
    tensors = store.get("tensors") if isinstance(store, dict) else None
    if not isinstance(tensors, dict) or "c_meta_loss" not in tensors:
        return {**state, "format": FORMAT_VERSION}  # no hybrid: nothing else changed
    meta, ring, members = tensors["c_meta_loss"], tensors["c_origin"], tensors["c_loss"].shape[2]
    if meta.shape[2] != FORMAT_26_COMBINERS or ring.shape[3] != members + 2 + FORMAT_26_COMBINERS:
        raise ValueError(
            f"format=26 hybrid state has {meta.shape[2]} combiners' losses and {ring.shape[3]} ring columns, "
            f"expected {FORMAT_26_COMBINERS} and {members + 2 + FORMAT_26_COMBINERS}"
        )
    fast = members + 2  # the ring's fast combiner column
    new = {
        **tensors,
        "c_meta_loss": torch.cat([meta, meta[:, :, :1]], dim=2),  # [C, Hc, 3, d]: fast, slow, pooled
        "c_origin": torch.cat([ring, ring[:, :, :, fast : fast + 1]], dim=3),  # [C, Hc, Hc, E + 5, d]
    }
    return {**state, "format": FORMAT_VERSION, "store": {**store, "tensors": new}}


def _spread_of(q: torch.Tensor, multiplier: float, start: float) -> torch.Tensor:
    """[C, H, SPREAD_COLUMNS, d]: where a half-width ``q`` [C, H, d] is known (> 0), the scale of one error
    and the level's normal multiplier ``multiplier`` that serve it (S = q / M(level), N = 1, m = 1); elsewhere
    a new series' (m at ``start``, ``calibration.start_multiplier`` of the level)."""
    spread = calibration.blank_spread(*q.shape, start)
    known = q > 0
    scale = (q.to(torch.float64) / multiplier).clamp(max=1e300)  # (check_state's bound)
    spread[:, :, 0] = torch.where(known, scale, 0.0)
    spread[:, :, 1] = known.to(torch.float64)
    spread[:, :, 2] = torch.where(known, 1.0, spread[:, :, 2])
    return spread


def _with_blank_fields(state: dict[str, Any], after: dict[str, tuple[str, ...]], number: int) -> dict[str, Any]:
    """``state`` as format ``number``: a hybrid's store gains the fields ``after`` names, each after
    its field there, as a new series has them (``ar_levels.fields``, ``outliers.fields``); a copy."""

    def blank(tensors: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {**ar_levels.fields(*tensors["o_run"].shape), **outliers.fields(*tensors["o_run"].shape)}

    return _with_fields_after(state, after, number, blank)


def _with_fields_after(
    state: dict[str, Any],
    after: dict[str, tuple[str, ...]],
    number: int,
    made: Callable[[dict[str, Any]], dict[str, torch.Tensor]],
) -> dict[str, Any]:
    """``state`` as format ``number``: a hybrid's store gains, after each field ``after`` names, the fields
    it lists, in that order, their tensors ``made`` of the store's tensors; a copy (a store without a hybrid
    gains nothing). ``ValueError`` naming a field ``after`` names that the store has not."""
    store = state["store"]
    tensors = store.get("tensors") if isinstance(store, dict) else None
    if not isinstance(tensors, dict) or "o_run" not in tensors:
        return {**state, "format": number}  # no hybrid: nothing else changed
    for name, fields in after.items():
        if name not in tensors:
            raise ValueError(f"store.tensors has no {name!r}, after which format {number} places {', '.join(fields)}")
    values = made(tensors)
    new = {}
    for name, value in tensors.items():
        new[name] = value
        new.update({field: values[field] for field in after.get(name, ())})
    return {**state, "format": number, "store": {**store, "tensors": new}}


def _worst_member_columns(tensors: dict[str, Any], members: int, at: int, found: int) -> dict[str, torch.Tensor]:
    """The members' fields of a hybrid store of format ``found`` (``members`` members, the
    combiners' columns in its ring) with a new expert's column inserted at ``at``, the worst it
    could be (module doc: formats 11, 12 and 18): its losses at the cap times each combiner's count,
    so its weight is 0 until its own errors replace the cap's; its absolute errors the naive's
    (index 0); its past forecasts still to be scored the served ones."""
    loss, count, slow, slow_count = (
        tensors["c_loss"],
        tensors["c_count"],
        tensors["c_slow_loss"],
        tensors["c_slow_count"],
    )
    member_abs, origins = tensors["c_member_abs"], tensors["c_origin"]  # [C, E, d], [C, Hc, Hc, E + 4, d]
    if loss.shape[2] != members or member_abs.shape[1] != members or origins.shape[3] != members + 4:
        raise ValueError(f"format={found} hybrid state has {loss.shape[2]} members, expected {members}")
    unit = experts.local_scale(tensors)  # [C, d]
    return {
        "c_loss": _insert(loss, (CAP * count)[:, :, None], 2, at),  # the worst it could be: weight 0
        "c_slow_loss": _insert(slow, (CAP * unit[:, None] * slow_count)[:, :, None], 2, at),  # series' units
        "c_member_abs": _insert(member_abs, member_abs[:, :1], 1, at),  # the naive's (index 0)
        "c_origin": _insert(origins, origins[:, :, :, members : members + 1], 3, at),  # the served forecasts
    }
