"""When glibc's malloc gives freed memory back to the kernel: its mmap and trim thresholds.

An update of many series allocates and frees some hundred megabytes in a few hundred
milliseconds: the windows it gathers, and the activations autograd keeps through the replay
of each chunk of ``engine.CHUNK_ROWS`` rows. glibc's malloc by default adapts its thresholds
to the largest blocks freed so far: blocks above the *mmap threshold* get pages of their own,
unmapped when freed; free memory above the *trim threshold* at the top of a heap is given
back. At 10,000 series on 2 threads (the defaults, standard normal values) the heap top the
update freed was given back at its end, and the next update faulted it in again: 11,600 to
17,000 minor page faults per update tick, none on the other ticks, and every fault a page
the kernel zeroes.

``keep_freed_memory`` fixes the thresholds at ``MMAP_THRESHOLD`` (32 MiB, where glibc's own
adaptation stops on 64-bit machines) and ``TRIM_THRESHOLD`` (128 MiB): the update's blocks come
from the heap, and up to 128 MiB freed at its top stays for the next update. Measured
(``python -m benchmarks.allocator``, ``benchmarks/results/allocator.md``): the faults per
update tick, the update's time, the tick's and the resident memory with and without them.
Nothing computed changes: torch aligns every block it gets to 64 bytes either way (the
state after 97 ticks of 10,000 series is the same, SHA-256 of every tensor).

The thresholds hold for the whole process (glibc has one set), so the call is left out where
the user set any of them (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``,
``MALLOC_TOP_PAD_``, ``MALLOC_MMAP_MAX_``, or one of those as a ``glibc.malloc`` tunable in
``GLIBC_TUNABLES``), and where the C library is not glibc (``mallopt`` missing: musl, macOS).
``Forecaster`` calls it when it is built (once a process is enough; later calls do nothing).
"""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (glibc's malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # bytes: blocks below it come from a heap (glibc's adaptive maximum on 64-bit)
TRIM_THRESHOLD = 128 * 2**20  # bytes: free memory at a heap's top kept up to this much
VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
TUNABLES = tuple(f"glibc.malloc.{name}" for name in ("mmap_threshold", "trim_threshold", "top_pad", "mmap_max"))

_state = {"set": False}  # whether this process's thresholds were set here


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


def keep_freed_memory() -> bool:
    """Set glibc malloc's mmap threshold to ``MMAP_THRESHOLD`` and its trim threshold to
    ``TRIM_THRESHOLD`` unless the user set one (``user_chose``), the C library is not glibc, or
    this process set them already; True when this call set them (mallopt accepted both)."""
    if _state["set"] or user_chose() is not None:
        return False
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return False
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    # (both within glibc's bounds; were one refused, malloc would go on as it was, only slower)
    mapped = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    _state["set"] = mapped and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return _state["set"]


def thresholds_set() -> bool:
    """Whether this process's malloc thresholds were set by ``keep_freed_memory``."""
    return _state["set"]
