"""When glibc's malloc gives freed memory back to the kernel: its mmap and trim thresholds (opt-in).

An update of many series allocates and frees some hundred megabytes in a few hundred
milliseconds: the windows it gathers, and the activations autograd keeps through the replay
of each chunk of ``engine.CHUNK_ROWS`` rows. glibc's malloc by default adapts its thresholds
to the largest blocks freed so far: blocks above the *mmap threshold* get pages of their own,
unmapped when freed; free memory above the *trim threshold* at the top of a heap is given
back. At 10,000 series (the defaults, standard normal values) the heap top the update freed
was given back at its end, and the next update faulted it in again: 14,507 minor page faults
per update on one thread and 14,087 on two (medians of two runs), none on the other ticks,
and every fault a page the kernel zeroes.

With ``TBPTT_KEEP_FREED_MEMORY=1`` in the environment, ``keep_freed_memory`` fixes the
thresholds at ``MMAP_THRESHOLD`` (32 MiB, where glibc's own adaptation stops on 64-bit machines)
and ``TRIM_THRESHOLD`` (128 MiB): the update's blocks come from the heap, and what it freed at
the heap's top stays for the next update. Measured (``python -m benchmarks.allocator``,
``benchmarks/results/allocator.md``, one model on the main thread, 2026-12-04 17:45 UTC): 64-106
faults per update instead of 14,087-14,507, the update 6-8 % faster, the tick 1-2 %, up to
100 MiB more resident.
Nothing computed changes: torch aligns every block it gets to 64 bytes either way (the state
after 97 ticks of 10,000 series is the same, SHA-256 of every tensor).

It is off by default because of what it costs where models update on threads of their own, as
in the service (one thread per model): the thresholds hold for the whole process, and the trim
threshold for each of malloc's *arenas* apart (about one per thread that allocates, up to 8
per core), and a thread's arena is at most 64 MiB a heap, so it never trims (our reading of
glibc 2.36, which matches what was measured): each such thread keeps what it held at once.
A hostile test (10,000 series split into models, each updating on its own thread, one torch
thread) measured the steady resident memory with and without:
4 models +95-115 MiB, 8 models +670 MiB (+39 %), 16 models +861 MiB (+46 %), more than the
library's memory estimate that the service's budget counts; 8 models on the main thread +64 MiB.

The call does nothing, even with the switch, where the user set a threshold of malloc's
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``,
``MALLOC_MMAP_MAX_``, or one of those as a ``glibc.malloc`` tunable in ``GLIBC_TUNABLES``: read
when the first ``Forecaster`` is built, as the process's environment has them then; glibc read
them when the process started), and where the C library is not glibc (not Linux, or
``gnu_get_libc_version`` missing: musl). It overrides thresholds a program set with its own
``mallopt`` call (the library cannot see one). A process forked after it keeps them.
``Forecaster`` calls it when it is built (once a process; later calls do nothing).
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (glibc's malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # bytes: blocks below it come from a heap (glibc's adaptive maximum on 64-bit)
TRIM_THRESHOLD = 128 * 2**20  # bytes: free memory at a heap's top kept up to this much
SWITCH = "TBPTT_KEEP_FREED_MEMORY"  # "1": the library sets malloc's thresholds (anything else: it leaves them)
VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
TUNABLES = tuple(f"glibc.malloc.{name}" for name in ("mmap_threshold", "trim_threshold", "top_pad", "mmap_max"))
READ = (*VARIABLES, "GLIBC_TUNABLES", SWITCH)  # every variable the library's choice reads

_state = {"tried": False, "set": False}  # whether this process tried, and whether its thresholds were set here


def user_chose() -> str | None:
    """The environment variable by which the user set one of malloc's thresholds, if any."""
    for name in VARIABLES:
        if name in os.environ:
            return name
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    for tunable in TUNABLES:
        if tunable + "=" in tunables:
            return "GLIBC_TUNABLES"
    return None


def asked() -> bool:
    """Whether the environment asks the library for its thresholds (``SWITCH`` at "1")."""
    return os.environ.get(SWITCH) == "1"


def _glibc() -> ctypes.CDLL | None:
    """This process's C library where it is glibc, else None."""
    if not sys.platform.startswith("linux"):
        return None  # (ctypes.CDLL(None) raises on Windows)
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None


def keep_freed_memory() -> bool:
    """Where the environment asks for it (``asked``): set glibc malloc's mmap threshold to
    ``MMAP_THRESHOLD`` and its trim threshold to ``TRIM_THRESHOLD`` unless the user set one
    (``user_chose``), the C library is not glibc, or this process tried already; True when this
    call set them (mallopt accepted both)."""
    if _state["tried"] or not asked() or user_chose() is not None:
        return False
    _state["tried"] = True
    libc = _glibc()
    if libc is None:
        return False
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    # (both within glibc's bounds on 64-bit machines; were the trim threshold refused, the mmap
    # threshold would stay set, glibc's adaptation off, and the call would report False)
    mapped = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    _state["set"] = mapped and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return _state["set"]


def thresholds_set() -> bool:
    """Whether this process's malloc thresholds were set by ``keep_freed_memory``."""
    return _state["set"]
