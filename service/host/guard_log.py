"""One log line per kind of instability guard that fired (issue 12: counted, *logged*, shown).

The library counts the guards' answers (``UpdateStats``: explosions, divergences, blow-ups,
roll-backs); the worker compares the counters of each new snapshot with the last one's and
logs what rose, at WARNING, naming the model, how many fired, the total and the learning
rate now in force, so an operator reading the logs sees a model that was rolled back
without polling the metrics.

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

from tbptt_online.guards import COUNTERS
from tbptt_online.results import UpdateStats

logger = logging.getLogger("service.host.guards")


def guard_events(before: UpdateStats, after: UpdateStats) -> list[tuple[str, int, int]]:
    """(kind, how many fired since ``before``, total) for each guard counter that rose."""
    events = []
    for kind in COUNTERS:
        now, then = getattr(after, kind), getattr(before, kind)
        if now > then:
            events.append((kind, now - then, now))
    return events


def log_guard_events(model: str, before: UpdateStats, after: UpdateStats) -> None:
    """Log the guard counters of ``model`` that rose from ``before`` to ``after``."""
    for kind, fired, total in guard_events(before, after):
        logger.warning(
            "model %r: instability guard %s fired %d time(s) (total %d) by update %d; learning rate now %s",
            model,
            kind,
            fired,
            total,
            after.updates,
            after.lr,
        )
