"""Outliers: a value far outside its served interval is learned from at the interval's edge.

A stream of monitoring or sensor values carries spikes: one reading 100 or 10^15 times
the usual, a counter that wraps, a unit mixed up. Taken as it came, one such value entered
every expert's state (the levels, the seasonal index of its phase for many cycles, the AR's
lags, the local scale, the values ring that the naive and seasonal naive members and the
network read) and the combination's losses, and the forecasts stayed wrong long after it:
with ``season_length=12``, level 10, amplitude 1 and noise 0.1, one value of 110 left the
one-step error 27 times its usual size over the next 60 values, and one of 1e15 left the
forecasts wrong by 3 x 10^4 150 values later.

So, per series and feature, before the hybrid scores and learns from an observed value
``y`` (Huber's winsorising, as in the robust Holt-Winters of Gelper, Fried and Croux, 2010):
``sigma = q / z(level)`` is the one-step error's spread implied by the interval served for
``y`` (``q`` its half-width, ``level`` the model's ``interval_level``), ``M`` the largest
error taken as it came so far, fading by ``LARGEST_DECAY`` a value; where ``|y - F| >
bound = max(k * sigma, q, LARGEST_FACTOR * M)`` (``F`` the served mean, ``k`` =
``outlier_sigmas``; never inside the served interval, whatever its level) the value is an
outlier, and the first of a run (below) is **taken as** ``F +- d``, on its side, by every part of
the model (scores, experts, values ring, the network's input and target): ``d`` the bound up to
``REDESCEND_FROM`` (2) times it, the served interval's edge ``q`` from ``REDESCEND_TO`` (3) times it,
which the calibration counts as covered, and linear between (``_redescended``: Hampel's three-part
redescending rule; a value just past its bound may be a level shift's first, one far past it is a
spike, or a shift that the run's third value finds).

Until session 60 a run's first outlier was taken at its bound ``F +- bound`` however far it lay. A
new user's (session 59): one spike of +30 to +60 on AR(1) noise (phi 0.7-0.9, innovations of sd 1,
level 50) was taken 5-8 above its forecast (``2 M`` the widest term), and the members that follow
the last value (the naive, the ARs, the alpha-0.8 levels) moved the next forecast 2.7-7.3 toward
it: the next value, an ordinary one, fell outside its interval in 8 of 8 streams. Now the next
forecast moves 0.7-1.3, and 7 of 8 are covered (``test_outliers.py``). The edge for every first
outlier, tried first, did as well there and gained the four hosts of ``data/server_metrics.csv``
4-9 % one step, but lost macro tbilrate 2.6 % (0.976 -> 1.002: its jumps of 1979-1982 stay a
while) and held back a weekly season whose weekend is a drop of 6 noise sds (its first values,
taken at the edge, left the ring's weekend profile too shallow: ``test_hybrid.py``'s
``test_a_right_week_beside_a_wrong_held_day_...`` found no week in 800 values). With the
redescending rule tbilrate is as before and the hosts gain 0-1.7 %.

``M`` keeps a series that has shown bursts of some size (a flow that switches between two
levels) from having each new one clipped by its interval alone. A level shift's error joins
``M`` only from a series' second shift on: when the first one's did, a spike of 1.5 S
after one shift of size S was taken as it came (``M`` = S) and the next 60 one-step errors
on the test stream of ``test_outliers.py`` were 5 times the usual (0.546 against 0.109);
it was then taken at its bound (0.207: the errors while the forecasts catch up with the
shift are in ``M``), and waterflow, whose flow switches between two levels, is better too
(one step 1.0066 -> 1.0006 against naive). Forgetting every shift's error, or fading ``M``
by 0.99, cost waterflow 10 % (1.106 and 1.098). What the caller sent is still what the
series' prequential statistics score and what results report.

**What is flagged** (a result's ``outlier``, ``o_count``): an outlier (taken as above), and one taken as it
came for ``M`` alone that lay more than ``FLAG_REACH`` times ``max(k * sigma, q)`` from ``F``: ``M`` is the
learning's, not the alert's. A new user's (session 55): after a six-hour incident at three times an hourly
latency's level, its return (a second shift) put its error in ``M``, and no single spike of three times was
flagged for two months; capping ``M``'s reach in the learning too cost waterflow 30 % one step.

A level shift is not a spike. A *run* is values in a row beyond their bounds, on either side;
it is a change of the series from its ``outlier_run``-th value (>= 2) when that value is on the
same side as the one before (for 2: two in a row on one side, a level shift; the default is 3 since session
50, when a new user's sensor sent 4294967295 twice: a shift, and its return another, left the forecasts off
by 10^6 to 10^9 and more than 6 off for hundreds of values; with 3 both were taken at their bounds), and
from its ``outlier_run + 1``-th whatever the sides (for 2: three alternating, a change of the
series' spread: an idle series that started to alternate +-1 had each value taken at its bound
as the first of a run on its side, learned from its own clipped values and ran away, -2e39
after 150 values: the change is what stops it). From there on the run's values are taken as
they came; a value on the other side right after a change starts a new run (a flow switching
back: waterflow, 1.014 against 1.001 one step when it did not, 1.031 when two alternating values
were a change). Before it, the run's first value (and one on the other side of the one before)
is taken as above, a later one on the side of the one before at the interval's edge ``F +- q``,
counted as covered: at their bounds, 99 of them (``outlier_run`` = 100, a step in a flat series)
were 99 misses, each widening the interval and so the bound by exp(0.36), and taught the members
an exponential ramp.

A value within its bound of the value before it *as it came*, when that one was an outlier,
counts as on that one's side, whatever side of its own forecast it falls: the series stays
where the outlier went. A regime change (a cycle 0..6 for 300 values, then 1.0 for good: a
hostile test) gave errors on alternating sides, the first 1.0 below its forecast of 6, the
next above a forecast of -0.1, and the fourth fell within its bound by chance and ended the
run: no change was found for 12 values, 5 of the 40 after it were taken at their bounds, and
its interval held 0.575 of them (0.75 with outliers off). Now 2 are, and 0.675; the accuracy
benchmark moves on waterflow alone (0.9904 / 0.8387 -> 0.9901 / 0.8356 against naive).

**A value beyond its bound a season and two seasons after like ones is taken as it came** (a
*recurring* value: a nightly job's one reading, a weekly peak): with a held season m (either of the
series' two, ``x_season_length``; t - 2m >= 1), where the values m and 2m steps before were beyond
their own bounds on the same side and, as they came, lie within this value's bound of it (what the
seasonal naive forecast would have missed by), this one is no outlier; it is scored and learned from
as it came, and ``M`` stays as it was; on its run it counts as the first of one on its side, never
as the one that makes it a change (recurring values in a row, a two-hour nightly job, make no level
shift; a value beyond its bound on the same side right after it, not recurring, does). Each value
beyond its bound (taken at it or as recurring) is recorded: ``o_recent``, the signed steps (+ above,
- below) of the last ``RECENT`` such values, and ``o_recent_value``, each as it came. A review's:
without the size, one flagged +20 let a 1e9 glitch a day later through, served as 4.9e7 for a day;
without t - m >= 1, an empty entry (0) matched any value at step m of a configured season, and at t
< m the sign of t - m flipped a value's side; and ending the run there, or leaving it as it was (a
second test's), delayed a level shift that came a season after a spike by a value: the values
learned from zig-zagged 59, 17, 58.5 and the long AR on the levels, fitting that, had the served
forecast cut to 0 where 59 came; and with one season's like value alone (a second test's), two
spikes that fell a season apart by chance had the model forecast a third (the one-step MAE of 12
such pairs on a daily series 1.30 against 0.92, now 0.92). Until
session 39 (a hostile test) a daily one-value spike was taken at its bound every day: at 1e6 on
N(10, 1), 124 of 125 spikes, the one-step MAE 38,600 times the seasonal naive's over the last 20
days; at 1e4 the forecast at the spike's hour fed on its own clipped values (``F +- bound`` with
``F`` the served mean, which the seasonal members had learned from the last clipped ones), grew
1.64 times a day and reached 1.95e9 with an interval 0.01 % wide, in 2 of 4 seeds.

**A value like the one before it is no outlier where the served mean left that one**: after a
value within its bound (no run), a value beyond its bound but within it of the value before, as
that one came (what the naive forecast would have missed by), is taken as it came, ``M`` as it
was (and not recorded in ``o_recent``), where the served mean lies more than the bound from that
value before. Without the rule a served forecast far from an ordinary value (a spike forecast that
did not come, a forecast run away) took that value at its bound, toward the wrong forecast, which
it then fed (a hostile test, session 39: after two spikes a season apart the ordinary value a
season later was taken at its bound toward a third, and the wrong forecast lasted another season).
Without its last condition (a review's) a moderate spike after a high value within its bound was
taken as it came, and a level shift whose first value was near a high one was never found.

A young series (its first ``YOUNG`` values: its interval is still a guess; noise was clipped
into a spurious season), a missing value and a value with no served interval are taken as
they came.

State per series and feature: ``o_run`` (int64; +-n: the last n observed values were beyond their
bounds, the last above (+) or below (-); once the run is a change, at least ``outlier_run + 1``; 0:
the last was within), ``o_count`` (int64: the values taken at a bound so far and those flagged past it, summed
over features by ``series_stats``; a result's ``outlier`` says whether any feature of its value was), ``o_shifts``
(int64: the level shifts so far) and ``o_largest`` (``M``), ``o_recent`` (int64 [RECENT]: the signed
steps of the last values beyond their bounds, 0: none) and ``o_recent_value`` (float64 [RECENT]:
those values as they came), ``o_shift_at`` (int64: the step of the value with which the rule last
found a change, a level shift or ``outlier_run + 1`` values in a row beyond their bounds on
alternating sides, 1 to 3 values after the series changed; 0: none; a re-check of the seasons reads
the values before and after it each in its own level and spread where they differ, ``hybrid.detect``;
a spread that grows slowly enough for the interval to follow, or shrinks, is not found here). A
missing value leaves them as they are.

>>> import numpy as np
>>> y = np.array([[110.0]]); mean = np.array([[10.0]]); upper = np.array([[10.5]])
>>> run, count, shifts = np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64)
>>> largest, taken, flagged = np.zeros((1, 1)), np.empty((1, 1)), np.empty((1, 1), bool)
>>> z, state, shifted = 1.6448536269514722, (run, count, largest, shifts), np.empty((1, 1), bool)
>>> last, lengths = np.array([[10.2]]), np.array([[[24, 0]]])
>>> recent, values, at = np.zeros((1, 1, RECENT), np.int64), np.zeros((1, 1, RECENT)), np.zeros((1, 1), np.int64)
>>> clean(np.array([30]), y, np.ones((1, 1), bool), mean, upper, last, lengths, z, 6.0, 2, *state, recent,
...       values, at, taken, flagged, shifted)
>>> round(float(taken[0, 0]), 5), bool(flagged[0, 0]), int(run[0, 0]), int(count[0, 0])  # the edge: 10 + 0.5
(10.5, True, 1, 1)
>>> for t in (54, 78):  # a season (24) and two seasons later, above again and about as far
...     run[0, 0] = 0
...     clean(np.array([t]), y, np.ones((1, 1), bool), mean, upper, last, lengths, z, 6.0, 2, *state, recent,
...           values, at, taken, flagged, shifted)
...     print(round(float(taken[0, 0]), 5), bool(flagged[0, 0]), int(run[0, 0]), int(count[0, 0]))
10.5 True 1 2
110.0 False 1 2
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from tbptt_online.compiled import compiled, writable

YOUNG = 24  # a series' first values are taken as they come: its interval is not yet a measure
RECENT = 24  # the values beyond their bounds a series remembers (``o_recent``): two weeks of a daily one and a
# weekly one (with 8 a daily outlier pushed the weekly value's entries out before its second week, a review)
LARGEST_FACTOR = 2.0
LARGEST_DECAY = 0.999
FLAG_REACH = 3.0  # M widens the flag's bound to at most this many times the sigmas' (module doc)
REDESCEND_FROM, REDESCEND_TO = 2.0, 3.0  # a run's first outlier: at its bound to 2 bounds, at the edge from 3


@compiled
def clean(
    step: np.ndarray,
    y: np.ndarray,
    observed: np.ndarray,
    mean: np.ndarray,
    upper: np.ndarray,
    last: np.ndarray,
    lengths: np.ndarray,
    z: float,
    sigmas: float,
    shift_run: int,
    run: np.ndarray,
    count: np.ndarray,
    largest: np.ndarray,
    shifts: np.ndarray,
    recent: np.ndarray,
    recent_values: np.ndarray,
    shift_at: np.ndarray,
    taken: np.ndarray,
    flagged: np.ndarray,
    shifted: np.ndarray,
) -> None:
    """The values as the model takes them, ``taken`` [B, d], and which were outliers (taken at
    a bound or the edge) or flagged past their bound (module doc), ``flagged`` [B, d] bool, from ``y`` [B, d]
    of the rows' steps ``step`` [B]
    (observed where ``observed``; a missing one is passed through), the served ``mean`` and
    ``upper`` bound [B, d] (NaN: none), ``last`` the value observed before, as it came [B, d]
    (NaN: none), ``lengths`` [B, d, 2] the held seasons (0: none), ``z`` = z(level) of the served
    interval, ``sigmas`` the bound in sigmas, ``shift_run`` the run that is a level shift; ``run``,
    ``count``, ``shifts`` (int64) and ``largest`` [B, d], ``recent`` [B, d, RECENT] (int64),
    ``recent_values`` [B, d, RECENT] and ``shift_at`` [B, d] (int64) updated in place (module doc);
    ``shifted`` [B, d] bool: where this value makes its run a level shift, the ``shift_run``-th
    outlier in a row and on the side of the one before (where the trend members' level starts
    again, ``expert_kernels.advance``; not a change of the spread, ``shift_run + 1`` in a row)."""
    n_rows, d = y.shape
    for b in range(n_rows):
        for k in range(d):
            value = y[b, k]
            taken[b, k] = value
            flagged[b, k] = False
            shifted[b, k] = False
            if not observed[b, k] or step[b] <= YOUNG:  # a young series' interval is a guess yet
                continue
            half = upper[b, k] - mean[b, k]
            if not half > 0:  # no interval yet (NaN) or none to speak of: nothing to judge against
                run[b, k] = 0
                continue
            error = value - mean[b, k]
            beyond = max(sigmas * half / z, half)  # the flag's bound: never inside the interval
            bound = max(beyond, LARGEST_FACTOR * largest[b, k])  # the learning's: past errors this large too
            if abs(error) <= bound:
                run[b, k] = 0
                largest[b, k] = max(abs(error), LARGEST_DECAY * largest[b, k])
                if abs(error) > FLAG_REACH * beyond:  # taken as it came (M), but flagged (module doc)
                    flagged[b, k] = True
                    count[b, k] += 1
                continue
            if run[b, k] == 0 and abs(value - last[b, k]) <= bound < abs(mean[b, k] - last[b, k]):  # the served
                continue  # mean far from the value before, this one as the naive had it: no outlier (module doc)
            side = 1 if error > 0 else -1
            if _recurs(recent, recent_values, lengths, b, k, step[b], side, value, bound):  # a like one a season
                if run[b, k] == 0 or (run[b, k] * side < 0 and abs(run[b, k]) <= shift_run):  # before: taken as
                    run[b, k] = side  # it came, M as it was; it starts a run on its side (a level shift a season
                continue  # after a spike is found at its next value), not within a change on the other side
            # the last value was an outlier on this side too, or it was one and this one is within the
            # bound of it as it came: the series stays where that one went (module doc: a regime change)
            same = run[b, k] * side > 0 or (run[b, k] != 0 and abs(value - last[b, k]) <= bound)
            before = abs(run[b, k])  # outliers in a row before this one, either side (shift_run + 1 or more: a change)
            if before > shift_run and not same:  # the other side of a change (a flow switched back): a new run
                before = 0
            if before + 1 > shift_run or (before + 1 == shift_run and same):  # the series has changed
                if before < shift_run + 1:  # ... from this value on: its level (a run on one side) or its spread
                    shifts[b, k] += 1
                    shifted[b, k] = before + 1 == shift_run and same  # a level shift, not a change of spread
                    shift_at[b, k] = step[b]  # where a re-check of the seasons stitches the values (``hybrid``)
                run[b, k] = side * max(before + 1, shift_run + 1)
                # one shift says little of the next value; a series that shifts again and again
                # (a flow switching between two levels) has shifts of that size as its errors
                largest[b, k] = max(abs(error) if shifts[b, k] >= 2 else 0.0, LARGEST_DECAY * largest[b, k])
                continue
            run[b, k] = side * (before + 1)
            # before a change: on the side of the one before at the interval's edge (the calibration counts it
            # covered), else at the bound, or the edge where far past it (module doc: why each)
            taken[b, k] = mean[b, k] + math.copysign(half if same else _redescended(abs(error), bound, half), error)
            flagged[b, k] = True
            count[b, k] += 1


@compiled
def _redescended(distance: float, bound: float, half: float) -> float:
    """How far from its forecast a run's first outlier is taken, ``distance`` past ``bound`` (module doc):
    the bound up to ``REDESCEND_FROM`` times it, the interval's edge ``half`` from ``REDESCEND_TO`` times it,
    linear between (Hampel's three-part redescending rule)."""
    reach = distance / bound
    if reach <= REDESCEND_FROM:
        return bound
    share = min((reach - REDESCEND_FROM) / (REDESCEND_TO - REDESCEND_FROM), 1.0)
    return bound + share * (half - bound)


@compiled
def _recurs(recent, values, lengths, b: int, k: int, t: int, side: int, value: float, bound: float) -> bool:
    """Whether ``value``, beyond its ``bound`` on ``side`` at step ``t``, recurs: one on the same
    side was a held season before and another two seasons before, each within ``bound`` of it
    (``recent`` [B, d, RECENT] their signed steps, ``values`` as they came, ``lengths`` [B, d, 2]);
    either way it is recorded, over the oldest entry (module doc)."""
    oldest, recurs = 0, False
    for j in range(2):
        m = lengths[b, k, j]
        if m > 0 and t - 2 * m >= 1:  # like ones one season and two seasons before
            recurs = recurs or (_like(recent, values, b, k, side * (t - m), value, bound) and
                                _like(recent, values, b, k, side * (t - 2 * m), value, bound))  # fmt: skip
    for i in range(recent.shape[2]):
        if abs(recent[b, k, i]) < abs(recent[b, k, oldest]):
            oldest = i
    recent[b, k, oldest], values[b, k, oldest] = side * t, value
    return recurs


@compiled
def _like(recent, values, b: int, k: int, signed_step: int, value: float, bound: float) -> bool:
    """Whether ``recent`` [B, d, RECENT] holds ``signed_step`` with a value within ``bound`` of ``value``."""
    for i in range(recent.shape[2]):  # noqa: SIM110 (a loop, not a generator: compiled)
        if recent[b, k, i] == signed_step and abs(value - values[b, k, i]) <= bound:
            return True
    return False


# the store's (module doc)
FIELDS = ("o_run", "o_count", "o_largest", "o_shifts", "o_recent", "o_recent_value", "o_shift_at")


def fields(n: int, d: int) -> dict[str, torch.Tensor]:
    """Blank rows for ``n`` series: no run, nothing taken at a bound, no error taken, no shift."""
    int64 = torch.int64
    return {
        "o_run": torch.zeros(n, d, dtype=int64),  # outliers in a row, either side, signed by the last one's
        "o_count": torch.zeros(n, d, dtype=int64),  # outliers (taken at a bound or the edge) so far, and those flagged
        "o_largest": torch.zeros(n, d, dtype=torch.float64),  # M: the largest error taken as it came, fading
        "o_shifts": torch.zeros(n, d, dtype=int64),  # level shifts (runs of outliers) so far
        "o_recent": torch.zeros(n, d, RECENT, dtype=int64),  # the signed steps of the last values beyond their bounds
        "o_recent_value": torch.zeros(n, d, RECENT, dtype=torch.float64),  # and those values, as they came
        "o_shift_at": torch.zeros(n, d, dtype=int64),  # the step of the last change found (0: none)
    }


class Bound(NamedTuple):
    """A model's outlier rule: ``z`` = z(interval_level) of its served intervals, the bound in
    sigmas (``outlier_sigmas``) and the run on one side that is a level shift
    (``outlier_run``)."""

    z: float
    sigmas: float
    shift_run: int


def cleaned(
    rows: dict[str, torch.Tensor],
    step: torch.Tensor,
    y: np.ndarray,
    observed: np.ndarray,
    served: tuple,
    last: np.ndarray,
    bound: Bound,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The values ``y`` [B, d] of the rows' steps ``step`` [B] as the model takes them [B, d]
    and which were taken at the edge (or flagged) [B, d] (``clean``), ``served`` the served mean and
    upper bound [B, d] each (numpy), ``last`` the value observed before each as it came [B, d];
    the rows' ``o_*`` fields are updated in place. Also returns where the value is a level shift
    [B, d] (``clean``'s ``shifted``)."""
    out, flagged, shifted = np.empty_like(y), np.empty(y.shape, dtype=np.bool_), np.empty(y.shape, dtype=np.bool_)
    lengths = rows["x_season_length"].numpy()
    arrays = [np.ascontiguousarray(a) for a in (step.numpy(), y, observed, *served, last, lengths)]  # (few copies)
    state = writable(rows, FIELDS)
    clean(*arrays, float(bound.z), float(bound.sigmas), int(bound.shift_run), *state, out, flagged, shifted)
    return out, flagged, shifted
