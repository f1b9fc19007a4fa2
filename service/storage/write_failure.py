"""Why a write to the log failed, where SQLite does not say: out of space (507) or another I/O error (503).

SQLite reports a ``write()`` that failed with ``ENOSPC`` (or wrote short) as ``SQLITE_FULL``, but one that failed
with any other errno as ``SQLITE_IOERR_WRITE``, "disk I/O error": a disk quota (``EDQUOT``), a process file size
limit (``EFBIG``, ``ulimit -f``) and a failing disk (``EIO``) alike. Python's ``sqlite3`` has no
``sqlite3_system_errno``, so the errno is found again here:

- a file of the log within ``need`` bytes of the process's ``RLIMIT_FSIZE``: ``EFBIG``;
- else a write of ``need`` bytes (a probe file beside the log, fsynced, removed) fails: its errno;
- else the cause is not found (``None``).

Out of space (``ENOSPC``, ``EDQUOT``, ``EFBIG``: :data:`OUT_OF_SPACE`) clears when space is freed or the limit
raised; the log then takes writes again. Until session 59 each of them answered 500 for good (an operator's test:
``ulimit -f`` on the server, session 58).

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     cause([pathlib.Path(d) / "events.sqlite3"], need=4096) is None  # the directory takes writes
True
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
from collections.abc import Sequence
from pathlib import Path

OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # 507: clears once space is freed or the limit raised
PROBE_NAME = ".tbptt-write-probe"


def cause(files: Sequence[Path], need: int) -> OSError | None:
    """The errno a write of about ``need`` bytes to ``files`` (the log's, all in one directory) fails with,
    found again as the module docstring says; None when no cause is found (the directory takes writes)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY:
        for file in files:
            try:
                size = file.stat().st_size
            except OSError:
                continue
            if size + need > soft:
                why = f"{file} reached the process's file size limit of {soft} bytes (RLIMIT_FSIZE, ulimit -f)"
                return OSError(errno.EFBIG, why)
    probe = files[0].parent / PROBE_NAME
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as error:
        return OSError(error.errno, f"{probe} cannot be created: {error.strerror}")
    try:
        written = 0
        block = b"\0" * min(need, 1 << 20)
        while written < need:  # (a short write is what SQLite reports as SQLITE_FULL)
            written += os.write(fd, block[: need - written]) or _short(probe)
        os.fsync(fd)
    except OSError as error:
        return OSError(error.errno, f"writing {need} bytes to {probe} failed: {error.strerror}")
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(probe)
    return None


def _short(probe: Path) -> int:
    raise OSError(errno.ENOSPC, f"{probe}: a write wrote nothing")


def described(error: OSError) -> str:
    """A cause as a message names it: its errno's name and text first (``EDQUOT (Disk quota exceeded)``)."""
    name = errno.errorcode.get(error.errno or 0, str(error.errno))
    return f"{name} ({os.strerror(error.errno or 0)}): {error.strerror}"
