"""How long torch's idle OpenMP threads wait busy before they sleep: ``GOMP_SPINCOUNT``.

With ``torch.set_num_threads(2)`` or more, a tick of many series runs the compiled kernels on
that many threads (``compiled.over_rows``: this thread and the library's pool), between torch's
own operations, which run on libgomp's threads. After each operation libgomp's threads spin,
waiting for the next one, for ``GOMP_SPINCOUNT`` rounds (300,000 by default: milliseconds)
before they sleep, on the cores the kernels' pool thread wants. ``python -m
benchmarks.openmp_spin`` (2026-12-04 17:52 UTC, 10,000 standard normal series, the defaults,
2 threads, two rounds per wait; ``benchmarks/results/openmp_spin.md``): with libgomp's default
the kernels before the network's step took 1.48 µs per series, those after it 1.79 and the
served ones 0.42, with 2,000 to 20,000 rounds 1.07-1.08, 1.83-1.84 and 0.22, the tick
138,522-139,774 obs/s against 148,055-159,925; with no spin at all (0) torch's update, a few
hundred operations one after the other, took 4.8 µs per series instead of 1.86-2.02
(105,407-109,366 obs/s). After an operation an idle process burnt 8.3 ms of CPU at libgomp's
default, 2.0-3.3 ms at 2,000 to 20,000 rounds.

libgomp reads the variable once, when it is loaded, i.e. when torch is first imported. So the
package sets it (``prefer_short_spin``, called by ``tbptt_online/__init__.py``) only where
torch is not loaded yet and the user chose no wait: neither ``GOMP_SPINCOUNT`` nor
``OMP_WAIT_POLICY`` is set (libgomp lets ``GOMP_SPINCOUNT`` win over the policy: a review found
``OMP_WAIT_POLICY=ACTIVE`` cut from 52 ms of CPU burnt in 50 ms idle to 1.75 ms when the
package set it). A process that imported torch first keeps libgomp's default (set the variable in
its environment instead). Set in the process's environment, it holds for the whole process (the
user's own torch work on several threads too) and for the processes it starts. It only changes how
long an idle thread waits, never a result.
"""

from __future__ import annotations

import os
import sys

VARIABLE = "GOMP_SPINCOUNT"
POLICY = "OMP_WAIT_POLICY"  # the user's choice of wait, which the spin count would override
SPIN_COUNT = 10_000  # rounds of a busy wait before an idle thread sleeps (libgomp's default: 300,000)


def prefer_short_spin() -> bool:
    """Set ``GOMP_SPINCOUNT`` to ``SPIN_COUNT`` unless it or ``OMP_WAIT_POLICY`` is set or torch is
    already loaded (libgomp has read them then); True when it set it."""
    if VARIABLE in os.environ or POLICY in os.environ or "torch" in sys.modules:
        return False
    os.environ[VARIABLE] = str(SPIN_COUNT)
    return True
