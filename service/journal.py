"""The journal hook: where a model worker records a batch before applying it.

A worker calls ``journal.append(model, observations)`` with the merged batch of
one micro-batch, in apply order, *before* it changes the model; if that raises
:class:`~service.errors.StorageFullError` the batch's requests get 507 and nothing
is applied. Replaying the appended batches, in order, through
``ModelWorker.apply`` reproduces the same ticks. Each model has its own worker
thread, so ``append`` may be called from several threads at once.

The default keeps nothing (state lives in memory only); a write-ahead log with
the same method makes the service durable.

>>> from service.observation import Observation
>>> NullJournal().append("default", [Observation("a", 1.0, 1700000000.0)])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from service.observation import Observation


class Journal(Protocol):
    def append(self, model: str, observations: Sequence[Observation]) -> None:
        """Record one batch durably, or raise (``StorageFullError``: the batch is refused with 507)."""
        ...


class NullJournal:
    """A journal that records nothing: the default when no durable log is configured."""

    def append(self, model: str, observations: Sequence[Observation]) -> None:
        return None
