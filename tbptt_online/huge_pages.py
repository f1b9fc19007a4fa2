"""The store's large fields on transparent huge pages (Linux): fewer TLB misses in a tick's kernels.

A tick's kernels read and write each series' rows of some sixty fields, and the largest rows
(the seasonal tables' 21,504 bytes, the origins' ring's 15,552, the phase sums' and the values
ring's 8,088: README, 'Memory') are further apart than a 4 KiB page, so at 10,000 series every
row of them is a page of its own, and each a miss of the processor's translation cache (its
page walk) a field a series a tick. On 2 MiB pages a page holds a hundred and more rows.

Linux backs memory with huge pages where ``/sys/kernel/mm/transparent_hugepage/enabled`` says
``always``, or ``madvise`` (the common default, this project's machines') for the ranges a
process asked for with ``madvise(MADV_HUGEPAGE)``: ``advise`` asks for the whole huge pages
inside a tensor's memory, before its pages are first written (a page already written stays a
small one until the kernel's background thread merges it). Nothing computed changes: the same
bytes at the same addresses (a paired run, the same 40 ticks of 10,000 series with and
without: every result and every field of the state equal bit for bit). Elsewhere (not Linux,
huge pages ``never``, no ``madvise`` in the C library) it does nothing.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from pathlib import Path

import torch

MADV_HUGEPAGE = 14  # Linux's <asm-generic/mman-common.h>
PAGE_SIZE_FILE = Path("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")  # bytes, where THP is built in
MIN_PAGES = 2  # a field spanning fewer whole huge pages than this is left as it is

_size: list[int] = []  # this machine's huge page size, read once a process
_call: list[Callable[[int, int, int], int] | None] = []  # the C library's madvise, found once a process


def huge_page_size() -> int:
    """The size of a transparent huge page on this machine in bytes (0: none, or not Linux)."""
    if not _size:
        try:
            _size.append(int(PAGE_SIZE_FILE.read_text().strip()))
        except (OSError, ValueError):
            _size.append(0)
    return _size[0]


def _madvise() -> Callable[[int, int, int], int] | None:
    """The C library's ``madvise`` (None: not Linux, or none)."""
    if not _call:
        function = None
        if sys.platform.startswith("linux"):
            try:
                function = getattr(ctypes.CDLL(None, use_errno=True), "madvise", None)
            except OSError:
                function = None
            if function is not None:
                function.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
                function.restype = ctypes.c_int
        _call.append(function)
    return _call[0]


def advise(tensor: torch.Tensor) -> bool:
    """Ask for huge pages under the whole huge pages inside ``tensor``'s memory (a CPU tensor's,
    contiguous, at least ``MIN_PAGES`` of them); True where the kernel took the advice. Call it
    before the memory is first written (``SeriesStore._grown``). The advice holds for the
    addresses, whatever uses them after the tensor is freed (the process's allocator may hand
    them out again: memory it takes back from the process is unmapped, the advice with it)."""
    size, madvise = huge_page_size(), _madvise()
    if size <= 0 or madvise is None or tensor.device.type != "cpu" or not tensor.is_contiguous():
        return False
    start = tensor.data_ptr()
    first = -(-start // size) * size  # the first huge page boundary inside
    end = (start + tensor.numel() * tensor.element_size()) // size * size
    if end - first < MIN_PAGES * size:
        return False
    return madvise(first, end - first, MADV_HUGEPAGE) == 0
