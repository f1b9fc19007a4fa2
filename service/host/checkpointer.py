"""Checkpointer: a checkpoint of every model every N seconds or N observations, then the log pruned.

A checkpoint is cut at one log position without stopping the service:

1. holding the registry's lock (no model is created or deleted meanwhile), read the
   log's last seq S and queue a *capture* job to every model's worker;
2. each worker captures its state between two batches, on its own thread: every
   record of that model up to S was appended by that same thread before the capture
   job was queued, so it is applied; a batch appended after S may be too, and the
   model's own ``seq`` says so (recovery skips a model's records up to its ``seq``);
3. a thread serialises the states and writes the file (``CheckpointStore.write``:
   temporary file, fsync, rename, fsync of the directory), then prunes the log
   through the oldest checkpoint kept.

Ingestion pauses only for the capture (a ``state_dict()``: the series tensors shared where
every row is a series, copied before the store's next write, and the rows of its series
copied otherwise, a store's spare rows left out); the encoding and the disk writes run off
the workers and off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence

from tbptt_service.host.metrics import ServiceMetrics
from tbptt_service.host.model_state import ModelState, to_plain
from tbptt_service.host.model_worker import ModelWorker
from tbptt_service.host.rebuild import CHECKPOINT_FORMAT
from tbptt_service.host.registry import ModelRegistry
from tbptt_service.storage.checkpoints import CheckpointStore
from tbptt_service.storage.journal import DEFAULT_TORCH_THREADS
from tbptt_service.storage.log_store import FencedWriter, LogStore

logger = logging.getLogger("tbptt_service.host.checkpointer")


def unconfirmed_models(workers: Sequence[ModelWorker]) -> list[str]:
    """The models whose state holds a batch whose record's fsync failed (``ModelWorker.unconfirmed``): a
    checkpoint of them would make that state the durable one, without its requests' keys (they were answered
    with the error); until the restart, the log alone decides what they hold (a review's, session 50)."""
    return sorted(w.name for w in workers if w.unconfirmed is not None)


def _any_quarantined(registry: ModelRegistry) -> bool:
    """Whether a model is quarantined (one that failed to load, or a worker's), said in a warning."""
    quarantined = sorted([*registry.quarantined, *(w.name for w in registry.workers() if w.quarantined)])
    if quarantined:
        logger.warning("no checkpoint while model(s) %s are quarantined", quarantined)
    return bool(quarantined)


def _held_back(registry: ModelRegistry) -> bool:
    """Whether no checkpoint may be written now: a model is quarantined or unconfirmed (said in a warning)."""
    return _any_quarantined(registry) or _any_unconfirmed(registry.workers(), "now")


def _any_unconfirmed(workers: Sequence[ModelWorker], when: str) -> bool:
    """Whether a model is unconfirmed (``unconfirmed_models``), said in a warning: no checkpoint ``when``."""
    unconfirmed = unconfirmed_models(workers)
    if unconfirmed:
        logger.warning("no checkpoint %s: model(s) %s hold a batch the log could not confirm", when, unconfirmed)
    return bool(unconfirmed)


class Checkpointer:
    """``start()`` on the event loop once the state is recovered; ``stop()`` lets a running write finish."""

    def __init__(
        self,
        log: LogStore,
        store: CheckpointStore,
        interval_s: float = 60.0,
        every_observations: int = 100_000,
        torch_threads: int = DEFAULT_TORCH_THREADS,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.log = log
        self.metrics = metrics  # counts the checkpoints that failed, times the last one written
        self.torch_threads = torch_threads  # the count the models compute with: recoveries from it use it
        self.store = store
        self.interval_s = interval_s
        self.every_observations = every_observations
        seqs = store.seqs()
        self.last_seq: int | None = seqs[-1] if seqs else None  # of the newest checkpoint written
        self._observed = 0  # since the last checkpoint started
        self._requested = False
        self._count_lock = threading.Lock()  # note_observed runs on the worker threads
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()  # one checkpoint at a time

    def note_observed(self, count: int) -> None:
        """``count`` observations were logged (any thread); wakes the checkpointer at ``every_observations``."""
        with self._count_lock:
            self._observed += count
            wake = 0 < self.every_observations <= self._observed and not self._requested
            self._requested = self._requested or wake
        if wake and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._due.set)

    def start(self, registry: ModelRegistry, checkpoint_now: bool = False) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(registry))
        if checkpoint_now:
            self._due.set()

    async def stop(self) -> None:
        self._stopping = True
        self._due.set()
        if self._task is not None:
            await self._task

    async def _run(self, registry: ModelRegistry) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._due.wait(), timeout=self.interval_s or None)
            if self._stopping:
                return
            self._due.clear()
            try:
                await self.checkpoint(registry)
            except FencedWriter as superseded:  # a newer incarnation owns the log: its checkpoints, not ours
                logger.warning("no checkpoint: %s", superseded)
                return
            except Exception:  # the log still holds everything: report it and try again next time
                logger.exception("writing a checkpoint failed; the event log keeps every record")
                if self.metrics is not None:
                    self.metrics.record_checkpoint(written=False)

    async def checkpoint(self, registry: ModelRegistry) -> int | None:
        """Write a checkpoint now unless nothing was logged since the last; its seq, or None.
        None too while a model is quarantined: a checkpoint would leave it out and prune the
        records that the next start needs to report it (or rebuild it)."""
        if _held_back(registry):
            return None
        async with self._writing:
            async with registry.lock:
                seq = await asyncio.to_thread(self.log.last_seq)
                with self._count_lock:
                    self._observed, self._requested = 0, False
                captures = [worker.capture_job() for worker in registry.workers()]
            states = await asyncio.gather(*captures)
            # again: one may have failed while the captures waited their turn behind its batches, and its capture
            # hold that batch (a review's, session 50), or have been quarantined meanwhile: its capture is of a
            # state the log does not rebuild, and the restart would skip its failed batch (a review's, session 51)
            if _held_back(registry):
                return None
            if seq == self.last_seq:
                if self.last_seq is not None and getattr(self.log, "full", False):
                    await asyncio.to_thread(self._prune_full, self.last_seq)
                return None
            await asyncio.to_thread(self._write, seq, states)
            return seq

    def _prune_full(self, through: int) -> None:
        """A full log (``EventLog.full``) that nothing new was logged to: pruned through the newest
        checkpoint, not the oldest kept. With 3 checkpoints kept, a log capped by
        ``TBPTT_LOG_MAX_BYTES`` that filled after the first two stayed full for good: every write
        refused, so no newer checkpoint came to move the oldest kept on (a new user, session 36)."""
        pruned = self.log.prune(through)
        logger.warning(
            "the log was full: %d log record(s) pruned through the newest checkpoint, seq %d", pruned, through
        )

    def write_final(self, workers: Sequence[ModelWorker]) -> int | None:
        """The checkpoint at shutdown, of workers whose threads have ended (every job applied); none while a
        model holds a batch the log could not confirm (the next start recovers it from the log)."""
        if _any_unconfirmed(workers, "at shutdown"):
            return None
        seq = self.log.last_seq()
        if seq == self.last_seq:
            return None
        self._write(seq, [worker.capture() for worker in workers])
        return seq

    def _write(self, seq: int, states: Sequence[ModelState]) -> None:
        started = time.perf_counter()
        state = {
            "format": CHECKPOINT_FORMAT,
            "models": [to_plain(s) for s in states],
            "torch_threads": self.torch_threads,
        }
        path = self.store.write(seq, state)
        self.last_seq = seq
        if self.metrics is not None:
            self.metrics.record_checkpoint(written=True)
        # A full log is pruned through this checkpoint (the older ones kept can no longer be recovered
        # from, the records after them gone): room for the writes it refused.
        oldest = seq if getattr(self.log, "full", False) else self.store.oldest_kept_seq()
        pruned = self.log.prune(oldest) if oldest is not None else 0
        logger.info(
            "checkpoint %s written (%d model(s), log seq %d) in %.3f s; %d log record(s) pruned through seq %s",
            path,
            len(states),
            seq,
            time.perf_counter() - started,
            pruned,
            oldest,
        )
