"""LogStore: what the host needs of a write-ahead log, whichever database holds it.

Two implementations:

- :class:`~tbptt_service.storage.event_log.EventLog`: SQLite in the state directory (the embedded
  default: one process, no server to run);
- :class:`~tbptt_service.storage.postgres_log.PostgresLog`: a stream of records in PostgreSQL (the
  cluster: every node reaches it, and a writer is fenced by an epoch).

The contract both keep, and :func:`tbptt_service.storage.recovery.recover` relies on: ``seq`` starts
at 1, grows by exactly 1 per append (a failed append leaves no gap), is never reused (also
after ``prune``); a record whose ``write`` returned is never lost to a process crash, and is as
durable as the store promises once ``durable(seq)`` is done; ``records(after_seq)`` yields the
records in seq order with their payloads decoded.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any, Protocol

from tbptt_service.storage.event_log import LogRecord

__all__ = ["FencedWriter", "LogRecord", "LogStore"]


class LogStore(Protocol):
    path: object  # where the log lives, for messages (a file path, or a PostgreSQL stream)

    def append(self, model: str, kind: str, payload: Any) -> int: ...

    def write(self, model: str, kind: str, payload: Any) -> int: ...

    def durable(self, seq: int) -> Future[None]: ...

    def prune(self, through_seq: int) -> int: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...

    def records(self, after_seq: int = 0) -> Iterator[LogRecord]: ...

    def last_seq(self) -> int: ...


class FencedWriter(RuntimeError):
    """This writer's epoch was superseded: a newer incarnation owns the log stream, so nothing
    more may be appended (or pruned) through this handle. The message names both epochs."""
