"""StateDirectoryLock: one process owns a state directory (``state_dir/lock``, ``flock``).

A second process on the same directory would interleave its log records with the
first's, so it must not start: ``acquire`` raises :class:`StateDirectoryInUse`
naming the directory and the holder's pid (written into the lock file). The kernel
releases the lock when its process dies, even by ``kill -9``. ``tbptt-online serve``
takes it before anything else (before the port is bound) and exits non-zero with
the reason; an app built without a held lock takes it when its lifespan starts.

The directory itself is locked too (``flock`` on its own descriptor): the file can be
deleted under a running server (a stale-lock clean-up), and a second server then made a
new one, locked it, and both wrote the same log, whose recovery interleaved the two
histories (an operator's hostile test, session 58); a directory holding the state cannot
be deleted so. Where a file system refuses a directory's lock (``OSError`` other than
"held"), the file's lock alone is taken, as before.

>>> import tempfile
>>> from pathlib import Path
>>> with tempfile.TemporaryDirectory() as d:
...     first = StateDirectoryLock(Path(d)).acquire()
...     try:
...         StateDirectoryLock(Path(d)).acquire()
...     except StateDirectoryInUse as error:
...         print(str(error).replace(d, "D").replace(str(os.getpid()), "PID"))
...     first.release()
the state directory D is in use by another process (pid PID); one process owns a state directory
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "lock"


class StateDirectoryInUse(RuntimeError):
    """Another process holds the state directory's lock."""


class StateDirectoryLock:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None
        self._dir_fd: int | None = None  # the directory's own descriptor, locked (None: not, or refused)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> StateDirectoryLock:
        """Take the lock (creating the directory), or raise ``StateDirectoryInUse`` saying who holds it."""
        if self._fd is not None:
            return self
        self.state_dir.mkdir(parents=True, exist_ok=True)
        dir_fd = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(dir_fd)
            raise self._in_use() from None
        except OSError:  # a file system without a directory's lock: the file's alone
            os.close(dir_fd)
            dir_fd = None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # (held by a version that locked the file alone)
            os.close(fd)
            if dir_fd is not None:
                os.close(dir_fd)
            raise self._in_use() from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for the next one's message
        self._fd, self._dir_fd = fd, dir_fd
        return self

    def _in_use(self) -> StateDirectoryInUse:
        try:
            with open(self.path, "rb") as file:
                holder = file.read(32).decode(errors="replace").strip() or "unknown"
        except OSError:  # (the file deleted under its holder)
            holder = "unknown"
        return StateDirectoryInUse(
            f"the state directory {self.state_dir} is in use by another process (pid {holder}); "
            "one process owns a state directory"
        )

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None
