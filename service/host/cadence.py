"""Cadence: a series' step in time, learned from its timestamps, and the steps a gap skipped.

The model counts steps, not seconds: a season of 24 is 24 values. A sensor that reports every
60 s and is offline for 5 minutes sends its next value 300 s after the last; stepped once,
the series' seasons would be 4 steps out of phase from then on. So the service learns each
timestamped series' cadence and, when a value comes a whole number of steps after the last
but one, inserts the missing steps before it (values ``None``: the model serves its forecast
in their place and learns nothing from them), on the grid between the two timestamps.

The rule, per series, on the difference ``d`` between two consecutive timestamps and the
cadence ``(step, run, multiples)`` learned so far:

- ``d`` within 25 % of ``step`` is one step: ``run`` grows by one and ``step`` moves to the
  running mean of such differences (weight ``1 / min(run, 20)``: jitter averages out);
- once ``KNOWN_AFTER`` (8) such steps came in a row the cadence is *known*; then a ``d`` of
  1.5 steps or more is a gap of ``n = floor(d / step + 1/2)`` steps, ``n - 1`` of them
  missing, and the gap itself teaches nothing (the steps inserted into it are spaced evenly,
  ``d / n`` apart, within ``step / (2 n)`` of the step: they and the value count as one step
  each, so the running mean moves towards the gap's own spacing, by at most 2.5 % of the
  step per gap once 20 steps are known, 5 % at 8);
- while the cadence is learned, a whole number of steps (2 to ``MULTIPLE_MAX``, within an
  eighth of a step: ``MULTIPLE_FIT``) neither confirms nor restarts it, and ``multiples`` counts
  it: a shop closed on Sundays, whose closed days are absent from its feed, had six one-day
  differences and a two-day one every week, and never learned its daily cadence (a new user's,
  session 54); ``MULTIPLES_RUN`` (8) of them in a row (a stream whose step doubled while it was
  learned) learn it afresh from the last; once known, such a difference is a gap;
- any other ``d`` (shorter than 0.75 steps, between 1.25 and 1.5, or a long one before the
  cadence is known) starts learning afresh from it: ``step = d``, ``run = 1``. So a known
  cadence is lost by a reading jittered by more than an eighth of a step either way (hourly
  readings jittered by +-10 minutes: 15 of 32 dropped hours filled in a simulation, a new user's
  8 to 29 of 42-48 unfilled); a first version of session 54 kept it through such differences,
  and a review found it padding irregular streams: its filled gaps taught the step downwards, or
  a step learned wrong was never lost (differences uniform on 30-90 s: 130 steps inserted in
  2,000 values on average, 0.13 with the rule of before, 0.3 with this one).

An irregular stream (events, not samples) rarely gives 8 differences in a row within 25 % of
their mean, and leaves the cadence at once when it does: its values are never padded.

A gap of more missing steps than the service's ``max_gap_steps`` (or than a batch has left
of its allowance) is shortened by whole cycles of the series' seasons: ``n - 1`` modulo the
least common multiple of its seasons when that fits, else nothing is inserted (the phase
cannot be kept cheaply; a series without seasons has no phase to keep). The inserted steps
then sit on the grid just before the value, so the cadence is kept across the gap.

>>> c = UNKNOWN
>>> for d in [60.0] * 8:
...     c = c.after(d)
>>> c.known, c.step, c.missing(300.0), c.missing(90.0), c.missing(60.5)
(True, 60.0, 4, 1, 0)
>>> c.after(300.0) == c, c.after(80.0)  # a gap keeps the cadence; 1.33 steps starts afresh
(True, Cadence(step=80.0, run=1, multiples=0))
>>> fill_times(0.0, 300.0, missing=4, inserted=4), fill_times(0.0, 300.0, missing=4, inserted=2)
([60.0, 120.0, 180.0, 240.0], [180.0, 240.0])
>>> shortened(missing=1000, allowance=100, seasons=[24])  # 1000 = 41 * 24 + 16
16
>>> shortened(missing=1000, allowance=10, seasons=[24]), shortened(missing=50, allowance=100, seasons=[24])
(0, 50)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

KNOWN_AFTER = 8  # one-step differences in a row before gaps are filled
MEAN_WINDOW = 20  # the step is the running mean of the last ~20 one-step differences
ONE_STEP = 0.25  # a difference within 25 % of the step is one step
GAP = 1.5  # a difference of 1.5 steps or more is a gap, once the cadence is known
GAP_BATCH_FACTOR = 10  # a micro-batch of requests inserts at most 10 x max_gap_steps missing steps
MULTIPLES_RUN = KNOWN_AFTER  # whole steps in a row while learning: the cadence is learned afresh from the last
MULTIPLE_MAX = 7  # while learning, a difference of 2 to 7 whole steps (closed days) neither confirms nor restarts...
MULTIPLE_FIT = 0.125  # ...within an eighth of a step of them


class Cadence(NamedTuple):
    """A series' step in seconds (None: no two timestamps yet), how many one-step differences in
    a row confirmed it, and how many differences of 2 to ``MULTIPLE_MAX`` whole steps came in a row
    since, while it is learned (``multiples``: ``off_grid`` until session 61, a name that said the
    opposite of what it counts, differences on the grid) (a named tuple:
    admission and apply make one per timestamped value, and a frozen dataclass costs twice as
    much to make)."""

    step: float | None = None
    run: int = 0
    multiples: int = 0

    @property
    def known(self) -> bool:
        return self.step is not None and self.run >= KNOWN_AFTER

    def missing(self, d: float) -> int:
        """How many steps a difference of ``d`` seconds skipped (0 unless the cadence is known)."""
        if not self.known or d < GAP * self.step:  # type: ignore[operator]
            return 0
        steps = d / self.step  # type: ignore[operator]
        if steps == math.inf:  # past a float's range (a tiny step, a huge gap): no phase to keep, nothing filled
            return 0
        return math.floor(steps + 0.5) - 1

    def after(self, d: float) -> Cadence:
        """The cadence once a timestamp ``d`` seconds after the last one is seen."""
        if not 0.0 < d < math.inf:  # no step to learn: two finite timestamps whose difference overflowed, or
            return UNKNOWN  # two moments that rounding made equal (a checkpoint holds only positive finite steps)
        step = self.step
        if step is None:
            return Cadence(d, 1)
        if abs(d - step) <= ONE_STEP * step:
            run = self.run + 1
            return Cadence(step + (d - step) / min(run, MEAN_WINDOW), run)
        if self.known:
            if d >= GAP * step:
                return self  # a gap: the steps around it are the cadence's
            return Cadence(d, 1)
        ratio = d / step
        whole = math.floor(ratio + 0.5) if ratio < math.inf else 0  # (a tiny step: no whole number of them)
        if (
            2 <= whole <= MULTIPLE_MAX
            and abs(d - whole * step) <= MULTIPLE_FIT * step
            and self.multiples + 1 < MULTIPLES_RUN
        ):
            return Cadence(step, self.run, self.multiples + 1)  # whole steps while learning (a closed day): kept
        return Cadence(d, 1)  # (and 8 whole steps in a row: the stream's step is that)


UNKNOWN = Cadence()


def fill_times(last: float, now: float, missing: int, inserted: int) -> list[float]:
    """The timestamps of ``inserted`` of the ``missing`` steps between ``last`` and ``now``: the
    grid's last ``inserted`` points before ``now`` (all of them when ``inserted == missing``)."""
    step = (now - last) / (missing + 1)
    return [now - k * step for k in range(inserted, 0, -1)]


def shortened(missing: int, allowance: int, seasons: Sequence[int]) -> int:
    """How many of ``missing`` steps to insert when at most ``allowance`` may be: all when they
    fit; else ``missing`` modulo the seasons' least common multiple when that fits, else none."""
    if missing <= allowance:
        return missing
    cycle = math.lcm(*seasons) if seasons else 1  # every season's phase repeats after it
    kept = missing % cycle
    return kept if kept <= allowance else 0
