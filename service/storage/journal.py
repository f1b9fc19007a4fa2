"""The journal hook: where the service records a change before it makes it.

A model worker calls ``journal.append(model, observations)`` with the merged batch
of one micro-batch, in apply order, *before* it changes the model; if that raises
:class:`~tbptt_service.errors.StorageFullError` the batch's requests get 507 and nothing
is applied. Applying the appended batches again, in order, through
``ModelWorker.apply`` reproduces the same ticks. Each model has its own worker
thread, so ``append`` may be called from several threads at once.

The other changes of the service's state (a model created or deleted, a series
forgotten, a checkpoint imported) go through ``record(model, kind, payload)``,
also before they are made. Both return the record's sequence number in the log
(``None`` for a journal that keeps no log): recovery uses it to skip what a
checkpoint already holds.

A journal may also offer ``begin_append(model, observations, keys=None) -> PendingAppend``: the
record is written (it survives a process crash) when it returns, and
``wait_durable()`` blocks until it is as durable as ``append`` makes it (the
event log's fsync), raising what ``append`` would raise. The worker computes the batch
in between and acknowledges it only after ``wait_durable()``, so the fsync and the
model's work overlap. ``keys`` (given only when some request of the batch carried an
idempotency key) go into the record with the batch: ``[[key, digest, sources], ...]``
(:mod:`tbptt_service.host.applied_keys`), so a recovery knows which requests it applied.

A batch of many ticks may be applied a few ticks at a time, with other batches in between
(:mod:`tbptt_service.host.chunked_run`): ``begin_chunked(model, observations, keys=None)`` writes the
whole batch once (with its keys), as an ``observe_chunked`` record that applies nothing by itself, and each chunk
applied later is a small ``observe_chunk`` record, ``begin_chunk(model, request, ticks,
chunk)``: "the next ``ticks`` ticks of the batch journaled as record ``request``, applied here";
short batches applied between two chunks are ``observe`` records between them. The log then
holds the order in which ticks were actually applied, and a recovery that finds a batch not
finished finishes it (the worker applies and journals the rest first). A chunk record of an
older log may hold ``items``: short requests applied in the chunk's call, after its ticks.

The default keeps nothing (state lives in memory only); :class:`tbptt_service.storage.log_journal.LogJournal`
writes both to the event log and makes the service durable. A journal with
``append`` alone (a test's recorder) still works: :func:`with_changes` gives it a
``record`` that keeps nothing and a ``begin_append`` that is its ``append``.

>>> from tbptt_service.storage.observation import Observation
>>> journal = with_changes(NullJournal())
>>> journal.append("default", [Observation("a", 1.0, 1700000000.0)]), journal.record("default", "forget_series", {})
(None, None)
>>> pending = journal.begin_append("default", [Observation("a", 2.0, 1700000001.0)])
>>> pending.seq, pending.wait_durable()
(None, None)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

from tbptt_service.storage.observation import Observation

# The kinds of change records, as the event log stores them.
CREATE_MODEL = "create_model"
OBSERVE = "observe"
OBSERVE_CHUNKED = "observe_chunked"  # a whole batch, applied by the observe_chunk records after it
# {"request": seq of the observe_chunked record, "ticks": n}: n more ticks applied ("items": [...], in
# older logs only: applied in the same call, after those ticks); the observe_chunked record holds the
# batch's "items" and, like an observe record, its "keys", remembered once its last chunk is applied
OBSERVE_CHUNK = "observe_chunk"
FORGET_SERIES = "forget_series"
DELETE_MODEL = "delete_model"
IMPORT_CHECKPOINT = "import_checkpoint"
RESET_LEARNING_RATE = "reset_learning_rate"  # the guards' back-offs undone (issue 12)
# The torch thread count the records after it were computed with: a recovery is bit-identical
# only at that count (the matrix kernels split their work by it). Its model is PROCESS_RECORD,
# which no model can be named (names start with a letter or digit).
TORCH_THREADS = "torch_threads"
PROCESS_RECORD = "*"
DEFAULT_TORCH_THREADS = 1  # the count of a log without a TORCH_THREADS record (the setting's default)


def _already_durable() -> None:
    return None


class PendingAppend(NamedTuple):
    """A batch's record, written; ``wait_durable()`` returns once it is durable (or raises)."""

    seq: int | None
    wait_durable: Callable[[], None] = _already_durable


class Journal(Protocol):
    def append(self, model: str, observations: Sequence[Observation]) -> int | None:
        """Record one batch durably, or raise (``StorageFullError``: the batch is refused with 507)."""
        ...


class ChangeJournal(Journal, Protocol):
    def record(self, model: str, kind: str, payload: dict[str, Any]) -> int | None:
        """Record one other change durably, or raise (``StorageFullError``: refused with 507)."""
        ...

    def begin_append(
        self, model: str, observations: Sequence[Observation], keys: list[Any] | None = None
    ) -> PendingAppend:
        """``append`` in two steps: written when this returns, durable after ``wait_durable()``."""
        ...

    def begin_chunked(
        self, model: str, observations: Sequence[Observation], keys: list[Any] | None = None
    ) -> PendingAppend:
        """Write a batch (with ``keys``) that its ``begin_chunk`` records apply, a chunk of ticks at a time."""
        ...

    def begin_chunk(self, model: str, request: int | None, ticks: int, chunk: Sequence[Observation]) -> PendingAppend:
        """Write that the next ``ticks`` ticks of the chunked batch ``request`` (their observations:
        ``chunk``) are applied now."""
        ...


class NullJournal:
    """A journal that records nothing: state lives in memory only."""

    def append(self, model: str, observations: Sequence[Observation]) -> int | None:
        return None

    def record(self, model: str, kind: str, payload: dict[str, Any]) -> int | None:
        return None

    def begin_append(
        self, model: str, observations: Sequence[Observation], keys: list[Any] | None = None
    ) -> PendingAppend:
        return PendingAppend(None)

    def begin_chunked(
        self, model: str, observations: Sequence[Observation], keys: list[Any] | None = None
    ) -> PendingAppend:
        return PendingAppend(None)

    def begin_chunk(self, model: str, request: int | None, ticks: int, chunk: Sequence[Observation]) -> PendingAppend:
        return PendingAppend(None)


class _Completed:
    """A journal given what it lacks: ``begin_append`` (its ``append``, durable at once), a
    ``record`` that keeps nothing, a ``begin_chunked`` that keeps nothing and ``begin_chunk``
    (the chunk's observations as one ``begin_append``: a recorder sees each chunk as a batch,
    in the order the model applied them)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def append(self, model: str, observations: Sequence[Observation]) -> int | None:
        return self.journal.append(model, observations)

    def begin_append(
        self, model: str, observations: Sequence[Observation], keys: list[Any] | None = None
    ) -> PendingAppend:
        own = getattr(self.journal, "begin_append", None)
        if callable(own):
            return own(model, observations, keys) if keys else own(model, observations)
        if not observations:  # a keyed request of repeats alone: a recorder keeps no keys
            return PendingAppend(None)
        return PendingAppend(self.journal.append(model, observations))  # a recorder keeps no keys

    def begin_chunked(
        self, model: str, observations: Sequence[Observation], keys: list[Any] | None = None
    ) -> PendingAppend:
        own = getattr(self.journal, "begin_chunked", None)
        return own(model, observations, keys) if callable(own) else PendingAppend(None)

    def begin_chunk(self, model: str, request: int | None, ticks: int, chunk: Sequence[Observation]) -> PendingAppend:
        own = getattr(self.journal, "begin_chunk", None)
        if callable(own):
            return own(model, request, ticks, chunk)
        return self.begin_append(model, chunk)

    def record(self, model: str, kind: str, payload: dict[str, Any]) -> int | None:
        record = getattr(self.journal, "record", None)
        return record(model, kind, payload) if callable(record) else None


def with_changes(journal: Journal) -> ChangeJournal:
    """``journal`` itself when it has every method of ``ChangeJournal``, else a wrapper that adds those it lacks."""
    needed = ("record", "begin_append", "begin_chunked", "begin_chunk")
    complete = all(callable(getattr(journal, name, None)) for name in needed)
    return journal if complete else _Completed(journal)  # type: ignore[return-value]
