"""StartupMarks: when a shard's process reached each step of its start, on the wall clock.

A failover's time is spent in steps of different owners: Ray noticing the death and starting a
new worker process (python and ray imported), the shard's own imports (torch, the app, numba),
the log's new epoch, the recovery (the compiled kernels loaded beside it). A fault test reads
the marks of the restarted shard and lines them up with the moment it killed the old one
(``tests/service/test_cluster.py`` prints them); each mark is also logged at debug level.

>>> marks = StartupMarks()
>>> marks.mark("constructor")
>>> [step for step, _ in marks.marks][-1]
'constructor'
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque

logger = logging.getLogger("tbptt_service.host.startup_marks")
MARKS_KEPT = 100  # a shard whose recovery is retried for hours adds marks at each attempt: the newest are kept


def process_started_at() -> float | None:
    """When this process started (wall clock, to the kernel's 10 ms tick), from ``/proc``; None
    where there is no ``/proc`` (not Linux)."""
    try:
        with open("/proc/self/stat") as stat:  # field 22, after the name in parentheses: start in ticks since boot
            started_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as uptime:
            up_s = float(uptime.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return time.time() - (up_s - started_ticks / os.sysconf("SC_CLK_TCK"))


class StartupMarks:
    """(step, wall-clock time) pairs, the process's start first (when known), the newest ``MARKS_KEPT``."""

    def __init__(self) -> None:
        started = process_started_at()
        self.marks: deque[tuple[str, float]] = deque(
            [] if started is None else [("process started", started)], MARKS_KEPT
        )

    def mark(self, step: str, at: float | None = None) -> None:
        self.marks.append((step, time.time() if at is None else at))
        logger.debug("startup: %s at %.3f", step, self.marks[-1][1])
