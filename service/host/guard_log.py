"""Log lines for the instability guards that fired (issue 12: counted, *logged*, shown), at
most one per kind and model per ``INTERVAL_S``.

The library counts the guards' answers (``UpdateStats``: explosions, divergences, blow-ups,
roll-backs); the worker hands each new snapshot's counters to its ``GuardLog``, which logs
the kinds that rose since its last line of that kind, at WARNING (an explosion, whose update goes on
clipped, at INFO: ``ROUTINE``), naming the model, how
many fired since that line, the total and the learning rate now in force, so an operator
reading the logs sees a model that was rolled back without polling the metrics. A kind
that keeps firing (the "explosion" guard on noisy data fires on most updates, and its
harder clip often changes nothing) gets one line per interval that sums what fired in it,
not one per batch: on a 4-shard cluster that was hundreds of lines a second. Nothing is
lost between lines: the next line's count covers them, and the metrics count every one.

>>> from tbptt_online.results import UpdateStats
>>> before = UpdateStats(updates=10, skipped=0, last_loss=None, last_grad_norm=None, lr=0.01)
>>> after = UpdateStats(updates=12, skipped=0, last_loss=None, last_grad_norm=None, lr=0.003,
...                     divergences=1, rollbacks=1)
>>> guard_events(before, after)
[('divergences', 1, 1), ('rollbacks', 1, 1)]
>>> guard_events(after, after)
[]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from tbptt_online.guards import COUNTERS
from tbptt_online.results import UpdateStats

logger = logging.getLogger("tbptt_service.host.guards")
INTERVAL_S = 60.0  # at most one line per kind and model in this many seconds
# The guards whose answer changes nothing of the model's course, logged at INFO: an explosion's update goes on,
# its gradient clipped harder, the learning rate as it was (a new user, session 50: on healthy data it fired a
# few times and recovery logged a WARNING for it). The others (a divergence, a blow-up, a roll-back) at WARNING.
ROUTINE = {"explosions": logging.INFO}


def guard_events(before: UpdateStats, after: UpdateStats) -> list[tuple[str, int, int]]:
    """(kind, how many fired since ``before``, total) for each guard counter that rose."""
    events = []
    for kind in COUNTERS:
        now, then = getattr(after, kind), getattr(before, kind)
        if now > then:
            events.append((kind, now - then, now))
    return events


class GuardLog:
    """The guard lines of one model: per kind, the total at its last line and when it was."""

    def __init__(
        self,
        model: str,
        stats: UpdateStats,
        interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model, self.clock = model, clock
        self.interval_s = INTERVAL_S if interval_s is None else interval_s
        self.logged = {kind: getattr(stats, kind) for kind in COUNTERS}  # the totals the last lines gave
        self.at: dict[str, float] = {}  # when each kind's last line was written

    def update(self, stats: UpdateStats) -> None:
        """Log the kinds of ``stats`` that rose since their last line, where that line is at
        least ``interval_s`` old (or there was none)."""
        now = self.clock()
        for kind in COUNTERS:
            total = getattr(stats, kind)
            if total < self.logged[kind]:  # another forecaster (a checkpoint imported): its own counts
                self.logged[kind] = total
            if total == self.logged[kind] or now - self.at.get(kind, -float("inf")) < self.interval_s:
                continue
            logger.log(
                ROUTINE.get(kind, logging.WARNING),
                "model %r: instability guard %s fired %d time(s) (total %d) by update %d; learning rate now %s",
                self.model,
                kind,
                total - self.logged[kind],
                total,
                stats.updates,
                stats.lr,
            )
            self.logged[kind], self.at[kind] = total, now
