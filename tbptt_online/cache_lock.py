"""Locks around the kernels' cache (``compiled.py``), so that processes compiling at once never corrupt it.

numba writes a kernel's cache index without a lock: ``IndexDataCacheFile.save`` reads the index, picks the
first data file name no entry uses, and writes the index, then the data. Two processes adding different
signatures of one kernel at once can both read the index before either writes it, both take the same data
file, and the index then maps one signature to the other's machine code (numba/numba#10128): a later process
loads it and runs the wrong kernel. Every process that compiles (a test worker, a server a test starts, a
doctest, two services starting on one machine) imports ``compiled``, which calls ``lock_cache_writes``: from
then on each save in the process is one step under an exclusive lock on ``save.lock`` beside the index.
It patches numba's class, so the process's other numba caches (a user's own ``cache=True`` functions) are
saved so too, with a ``save.lock`` beside their indexes.

``one_compiler`` is the other lock, for time rather than correctness: ``warm.warm_kernels`` holds it on
``compile.lock`` in the cache folder, so of two processes starting at once on a clean cache one compiles
(about a minute) and the other waits, then loads what it wrote (about a second), instead of both compiling.
"""

from __future__ import annotations

import fcntl
import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from numba.core import caching

SAVE_LOCK = "save.lock"
COMPILE_LOCK = "compile.lock"


@contextmanager
def exclusive(path: str) -> Iterator[None]:
    """An exclusive lock on the file ``path`` (made if missing) for the block, among processes and among
    the threads of one process alike (``flock`` on a file opened for each holder); let go when the file
    closes, or when the process ends. Opened to read: a lock file another user made (a cache shared by the
    users of one machine) locks as well."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _locked(save: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(save)  # (sets __wrapped__: how lock_cache_writes knows it has run)
    def locked_save(self: caching.IndexDataCacheFile, key: object, data: object) -> None:
        with exclusive(os.path.join(self._cache_path, SAVE_LOCK)):  # numba made the folder (its locator)
            save(self, key, data)

    return locked_save


def lock_cache_writes() -> None:
    """Make every numba cache save in this process hold ``save.lock`` in the index's folder (see the module
    docstring); once, whatever the number of calls."""
    if not hasattr(caching.IndexDataCacheFile.save, "__wrapped__"):
        caching.IndexDataCacheFile.save = _locked(caching.IndexDataCacheFile.save)


@contextmanager
def one_compiler(folder: str) -> Iterator[None]:
    """Hold ``compile.lock`` in the cache folder ``folder`` (made if missing) for the block: one process
    at a time compiles or loads the kernels. Not reentrant: a process holding it waits forever for it
    again."""
    os.makedirs(folder, exist_ok=True)
    with exclusive(os.path.join(folder, COMPILE_LOCK)):
        yield
