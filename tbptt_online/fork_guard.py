"""A process forked from one that ran torch on several threads gets one torch thread.

libgomp, torch's OpenMP, is not fork-safe: a child forked after the parent's operations ran on
libgomp's threads waits for good in its first operation that would use them (a new user's
``multiprocessing`` pool with Python's default ``fork`` start method hung in
``Forecaster.from_state_dict``, session 49; plain torch, without this library, hangs the same:
a 2,000 x 2,000 product in the parent, then ``torch.zeros(100, 4, 2, 1, 336)`` in the child). One
thread runs no parallel region, and the child goes on; torch's own ``DataLoader`` workers are set
to one thread the same way. The first ``Forecaster`` built registers ``one_thread`` to run in every
child forked after it (``os.register_at_fork``): a child that wants more threads sets them itself
(and risks the same wait), or the parent starts its processes with ``spawn`` or ``forkserver``.
It changes no result (the library's results do not depend on the number of threads).
"""

from __future__ import annotations

import os
import sys


def one_thread() -> None:
    """In a forked child: torch on one thread, where it had several (nothing where the parent never
    loaded torch: ``tbptt_online.client`` alone never does)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() > 1:
        torch.set_num_threads(1)


_registered = [False]


def register() -> None:
    """Run ``one_thread`` in every child forked from now on (where the platform forks); once a process
    (``Forecaster`` calls it when it is built: a process that loaded the package, or its client, and
    built none keeps its children's threads as torch leaves them, a review's)."""
    if not _registered[0] and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=one_thread)
        _registered[0] = True
