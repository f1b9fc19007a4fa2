"""How a write the journal's log refused is answered: the one mapping of the journaled write path
(``ModelWorker._journaled``) and of ``/readyz``'s ``log_write_failure`` (the last refusal, kept by the log)."""

from __future__ import annotations

from tbptt_service.errors import InsufficientStorage, LogDown, LogUnavailable, StorageFullError
from tbptt_service.storage.log_store import FencedWriter


def refusal(error: BaseException) -> type[InsufficientStorage] | type[LogDown] | None:
    """``InsufficientStorage`` (507) when the log is out of space (``StorageFullError``: it takes writes again
    once space is freed or the limit raised); ``LogDown`` (503) when it cannot be reached (``LogUnavailable``),
    another writer owns its stream (``FencedWriter``) or a write failed otherwise (an ``OSError``: a failed
    fsync's EIO); None for any other failure (a bug, a 500)."""
    if isinstance(error, StorageFullError):
        return InsufficientStorage
    if isinstance(error, (LogUnavailable, FencedWriter, OSError)):
        return LogDown
    return None
