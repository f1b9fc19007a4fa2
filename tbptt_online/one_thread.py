"""Chunks of work on threads that each run torch's operations on one thread.

``gru_rows`` cuts an update of many rows into chunks of a few hundred rows, each a loop of
some 130 operations a window (small BLAS products, compiled passes, Python between them).
Spread over torch's intra-op threads, each product is a parallel region whose threads meet at
its end, while the compiled passes and the Python run on one: on two threads that lost to
torch's own replay (session 61). Here whole chunks go to threads instead, each running its
chunks from start to end with torch on one thread, so that a chunk's operations are the same
whichever thread runs it and however many there are (the same bits on one thread and on two).

torch's number of threads is a setting of each thread (OpenMP's and MKL's), with a default for
threads that have not yet run a parallel operation; ``torch.set_num_threads`` sets the
caller's and that default. The pool's threads set theirs to one when they start, then the
default is given back (the caller's own setting is the same before and after).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait

import torch

_POOL: tuple[int, int, ThreadPoolExecutor] | None = None  # (process id, workers, pool)
_POOL_LOCK = threading.Lock()


def run_chunks(n: int, run: Callable[[Iterator[int]], None]) -> None:
    """Run chunks ``0 .. n - 1``: ``run(chunks)`` takes its chunks from the iterator ``chunks``.
    Where torch runs on one thread, one call in this thread; else one call on each of
    ``min(torch threads, n)`` threads of the pool (torch on one thread each), which take the chunks
    in turn, whichever is free; this thread waits. Returns when every call has ended, then raises
    the first call's error, if any. ``run`` must write nothing two chunks share (each chunk's
    results its own), so which thread ran a chunk changes no result."""
    threads = torch.get_num_threads()
    if threads <= 1 or n == 0:
        run(iter(range(n)))
        return
    workers = min(threads, n)
    taken = itertools.count()  # the next chunk: next() on it is atomic (the GIL)

    def chunks() -> Iterator[int]:
        while (i := next(taken)) < n:
            yield i

    executor = _pool(workers)
    futures = [executor.submit(run, chunks()) for _ in range(workers)]
    wait(futures)
    for future in futures:
        future.result()  # (raises the call's error)


def _set_one_thread(started: threading.Barrier) -> None:
    """A pool thread's start: torch on one thread here; waits for the pool's other threads (so
    that each thread runs this once)."""
    # torch sets a thread's number from the default at the thread's first parallel operation (or its
    # first get_num_threads), whatever was set before: that first, so that the one set here stays
    torch.get_num_threads()
    torch.set_num_threads(1)
    started.wait()


def _pool(workers: int) -> ThreadPoolExecutor:
    """The process's pool, with at least ``workers`` threads each running torch on one thread.
    Replaced only by a larger one (a caller may still hold the one before; its idle threads end
    when it is collected); a forked child makes its own (it has none of its parent's threads)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid() or _POOL[1] < workers:
            caller = torch.get_num_threads()
            executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tbptt-chunks")
            started = threading.Barrier(workers)
            wait([executor.submit(_set_one_thread, started) for _ in range(workers)])
            torch.set_num_threads(caller)  # the default for new threads back (this thread's: unchanged)
            _POOL = (os.getpid(), workers, executor)
        return _POOL[2]
