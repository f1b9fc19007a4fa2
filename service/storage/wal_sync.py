"""WalSyncer: fsyncs a file on request, on a thread of its own, one fsync for every request waiting.

The event log in ``batch`` mode commits a record without an fsync (SQLite's
``synchronous=NORMAL``: the frame is in the OS page cache, so it survives a process
crash) and asks this thread for the fsync that makes it survive a power loss too.
The caller can do other work meanwhile (the model worker computes the batch it just
logged) and waits for the returned future before it acknowledges anything.

A request is done after an fsync that *began* after the request was made, so it
covers everything written before the request. Requests that arrive while an fsync runs
share the next one (group commit: several models' workers, one fsync).

An fsync that fails fails every request it covered, and every later one: after a
failed fsync the kernel may have dropped the dirty pages, so no later fsync can prove
that the earlier writes reached the disk (a restart, which recovers what the disk
holds, is the way out). An ``ENOSPC``/``EDQUOT`` failure is a ``StorageFullError``.

The file is opened once and its descriptor kept (opened again only when the path names another file), so an
fsync needs no new descriptor: a process out of descriptors (``EMFILE``: a flood of idle connections) still
syncs. An open that fails for want of descriptors or memory (``EMFILE``, ``ENFILE``, ``ENOMEM``) is no failed
fsync (nothing was synced, so nothing the kernel held was dropped): it is tried again every
``RETRY_OPEN_S`` while requests wait. Until session 60 each such open failed its fsync for good, and a client
holding 21,000 idle connections left every model that took a batch meanwhile refusing changes until a restart
(a hostile test).

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     path = pathlib.Path(d) / "wal"
...     _ = path.write_bytes(b"frames")
...     syncer = WalSyncer(path)
...     syncer.request().result(timeout=30), syncer.sync_here(), syncer.close()
(None, None, None)
"""

from __future__ import annotations

import errno
import os
import threading
import time
from concurrent.futures import Future
from pathlib import Path

from tbptt_service.errors import StorageFullError

_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_SHORT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOMEM)  # an open that may succeed later: no failure
RETRY_OPEN_S = 0.05


class WalSyncer:
    """``request()`` an fsync of ``path``; ``close()`` syncs what is pending and ends the thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cond = threading.Condition()
        self._waiting: list[Future[None]] = []
        self._failure: OSError | None = None
        self._closed = False
        self._fd: int | None = None  # the file's descriptor, kept between fsyncs (only one thread syncs at a time)
        self._sync_lock = threading.Lock()  # sync_here and the thread share the descriptor
        self._thread = threading.Thread(target=self._serve, name="event-log-fsync", daemon=True)
        self._thread.start()

    @property
    def failure(self) -> OSError | None:
        """The error of a failed fsync (then every request fails with it), else None."""
        return self._failure

    def request(self) -> Future[None]:
        """A future done once an fsync begun after this call succeeded (its error if it failed)."""
        future: Future[None] = Future()
        with self._cond:
            if self._failure is not None:
                future.set_exception(self._failure)
            elif self._closed:
                future.set_exception(ValueError(f"the fsync thread of {self.path} is closed"))
            else:
                self._waiting.append(future)
                self._cond.notify()
        return future

    def sync_here(self) -> None:
        """An fsync in the calling thread (no hand-over to the thread: for a caller with nothing
        to do meanwhile); raises its error, or the error of an earlier failed fsync."""
        if self._failure is None:
            error = self._fsync()
            if error is not None:
                with self._cond:
                    self._failure = self._failure or error
        if self._failure is not None:
            raise self._failure

    def close(self) -> None:
        """Answer the requests already made, then end the thread (idempotent)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
        with self._sync_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait()
                if not self._waiting:  # closed, nothing pending
                    return
                covered, self._waiting = self._waiting, []
            error = self._fsync()  # outside the lock: new requests queue for the next fsync
            with self._cond:
                if error is not None and self._failure is None:
                    self._failure = error
                error = self._failure
            for future in covered:
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

    def _fsync(self) -> OSError | None:
        with self._sync_lock:
            try:
                fd = self._open()
            except FileNotFoundError:  # nothing was written since the file was checkpointed away
                return None
            except OSError as exc:
                return exc
            try:
                os.fsync(fd)
            except OSError as exc:
                if exc.errno in _FULL_ERRNOS:
                    return StorageFullError(errno.ENOSPC, f"{self.path}: fsync failed: {exc}")
                return exc
            return None

    def _open(self) -> int:
        """Caller holds ``_sync_lock``. The kept descriptor of ``path``, opened again where the path names another
        file now (a ``stat`` needs no descriptor); an open short of descriptors or memory is tried again every
        ``RETRY_OPEN_S`` until it succeeds or ``close`` is called."""
        if self._fd is not None:
            kept = os.fstat(self._fd)
            try:
                here = os.stat(self.path)
            except FileNotFoundError:
                here = None
            if here is not None and (here.st_dev, here.st_ino) == (kept.st_dev, kept.st_ino):
                return self._fd
            os.close(self._fd)  # the path names another file, or none
            self._fd = None
        while True:
            try:
                self._fd = os.open(self.path, os.O_RDONLY)
                return self._fd
            except OSError as exc:
                if exc.errno not in _SHORT_OF_RESOURCES or self._closed:
                    raise
            time.sleep(RETRY_OPEN_S)
