"""Flat runs: a stuck value's repeats held back as missing.

A sensor stuck on one reading sends the same value again and again. Learned as data, a stuck stretch
shrinks the series' interval to nothing (a new user's 15-minute temperatures, session 56: a half-width of
0.002 where a healthy sensor's was 0.43), the real readings after it are flagged as spikes (38 of 40 in the
first hour) and the day ahead is forecast 5.9 times worse than "the same time yesterday". ``hold_flat_runs``
takes such repeats as missing values, before anything of the tick reads them.

**The rule.** An observed value equal to the last observed value (exactly, as sent) extends the series' flat
run r (the values in a row equal to the one before; another value ends it, a missing one leaves it as it is).
The series' repeat rate is p = (R + 1) / (N + 2): R of the N values taken as they came that had an observed
value before them equalled it (Laplace's rule: 1/2 before any). Under p a run reaches r with probability p^r;
a repeat whose run has p^r < ``flat_improbable`` (``ForecasterConfig``, default 1e-9; None turns the rule off)
and r > ``FLAT_LONGEST`` times the longest run the series has taken as it came is *held*: taken as missing by
every part of the model (no learning, no scoring, no update of its levels, seasons, widths or error scales; the
interval after it widens as after missing values) and counted in ``flat_held``; so is every further value of
its run, up to ``FLAT_HOLD_MAX`` of them, after which the run is the series' own and taken as it comes (a
machine that went idle for good: a hold without end served the level from before it, its interval growing).

A held value counts in neither R nor N, nor in the longest run, so a long stuck stretch cannot make itself
probable, nor a second one like it (a review, session 57: with the held run counted as the longest, a sensor
stuck 48 hours twice had its second stretch learned in full). What repeats legitimately repeats often: integer
counts, a quantised sensor, a price that moves now and then have a high p, and their longest runs raise the bar
further. A noisy sensor reading to 0.01 (p about 0.01) is held from its 5th repeat. **A 0 makes no run** (it
ends one, and is never held): 0 is the level of no activity, an intermittent demand's or a discontinued
product's (the accuracy benchmark's pbs ends with 37 zeros after a sparse stretch; with 0 in runs 13 of them
were held), a night's solar power, a closed day's; a sensor stuck at exactly 0 is not told from them.

The counts are rows of the series' statistics (``scoring.STAT_FIELDS[FLAT:FLAT + 5]``): ``flat_run`` (r),
``flat_longest``, ``flat_repeats`` (R), ``flat_pairs`` (N), ``flat_held``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tbptt_online.compiled import compiled, inlined, readable
from tbptt_online.scoring import FLAT, STAT

FLAT_LONGEST = 2.0  # a run is held only past this many times the longest the series has taken as it came
FLAT_HOLD_MAX = 1000  # held values in one run at most: past them the run is the series' own
LAST = STAT["last_value"]


def hold_flat_runs(
    stats: torch.Tensor, value: torch.Tensor, improbable: float
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The tick's ``value`` [B, d] (float64, NaN = missing) with the repeats of a stuck value held back as missing
    (NaN), and where [B, d] bool (None: nowhere, ``value`` itself); the flat runs' rows of ``stats`` [B, F, d] (the
    series' before the tick, a copy: ``SeriesStore.get``) advanced in place. ``improbable``: the config's
    ``flat_improbable`` (the module doc)."""
    held = np.zeros(value.shape, dtype=np.bool_)  # (numpy: a tick's one call, no torch overhead)
    if not _hold(*readable(value), stats.numpy(), held, math.log(improbable), FLAT_LONGEST, FLAT_HOLD_MAX):
        return value, None
    where = torch.from_numpy(held)
    return torch.where(where, math.nan, value), where


@inlined
def _first_held(stats, b, k, log_improbable, longest_factor) -> float:
    """The first run length held by the row's counts: the smallest r with r log p < ``log_improbable`` and
    r > ``longest_factor`` times the longest run (neither count moves while a run is held, so this is where the
    run now in progress was first held, if it was)."""
    p = (stats[b, FLAT + 2, k] + 1.0) / (stats[b, FLAT + 3, k] + 2.0)  # < 1: R <= N
    by_rate = math.floor(log_improbable / math.log(p)) + 1.0
    by_longest = math.floor(longest_factor * stats[b, FLAT + 1, k]) + 1.0
    return max(by_rate, by_longest)


@compiled
def _hold(value, stats, held, log_improbable, longest_factor, hold_max) -> bool:
    any_held = False
    for b in range(value.shape[0]):
        for k in range(value.shape[1]):
            v, last = value[b, k], stats[b, LAST, k]
            if math.isnan(v) or math.isnan(last):  # a missing value leaves the run as it is; a first one starts
                continue
            run = stats[b, FLAT, k]
            if v != last or v == 0.0:  # the run ends (0 makes none): the longest taken as it came
                if run > 0.0:  # (most values end no run: no first to find)
                    first = _first_held(stats, b, k, log_improbable, longest_factor)
                    taken = first - 1.0 if first <= run < first + hold_max else run  # (its held part left out)
                    stats[b, FLAT + 1, k] = max(stats[b, FLAT + 1, k], taken)
                    stats[b, FLAT, k] = 0.0
                stats[b, FLAT + 2, k] += 1.0 if v == last else 0.0
                stats[b, FLAT + 3, k] += 1.0
                continue
            first = _first_held(stats, b, k, log_improbable, longest_factor)
            run += 1.0
            stats[b, FLAT, k] = run
            if run < first:  # a repeat taken as it came, counted
                stats[b, FLAT + 2, k] += 1.0
                stats[b, FLAT + 3, k] += 1.0
            elif run < first + hold_max:  # held: counted in neither R nor N, so first stays where it was
                held[b, k] = True
                stats[b, FLAT + 4, k] += 1.0
                any_held = True
            # (past the most held: taken as it came, the series' own, and not counted either, so that the run
            # stays released until it ends; its end counts it as the longest)
    return any_held
