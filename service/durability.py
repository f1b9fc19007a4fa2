"""Durability: the state directory wired into the app (event log, checkpoints, recovery).

``state_dir/events.sqlite3`` is the write-ahead log (:class:`~service.event_log.EventLog`):
every change is appended there before it is made and acknowledged.
``state_dir/checkpoints/`` holds the ``checkpoints_kept`` newest checkpoints
(:class:`~service.checkpoints.CheckpointStore`). ``state_dir/lock`` is held
(``flock``) by the one process that uses the directory: a second one on the same
directory would interleave its records with the first's, so it refuses to start
(``/readyz`` 503 saying why); the kernel releases the lock when a process dies,
even by ``kill -9``. The app's lifespan calls:

- ``open()``: take the lock, open the log and the checkpoint store; ``journal`` is then ready;
- ``restore(registry)`` (the app's ``restore`` hook, run in the background while
  ``/readyz`` answers 503): load the newest valid checkpoint, replay the log after
  it (:func:`service.recovery.recover`), serve the rebuilt models, create the model
  ``default`` if the state directory is new, then start the checkpointer. A
  ``RecoveryError`` leaves the service unready, saying why;
- ``close(registry)`` at shutdown, after the workers drained: stop the
  checkpointer, write a final checkpoint (only if the state was recovered), close
  the log.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os

from service.checkpointer import Checkpointer
from service.checkpoints import CheckpointStore
from service.event_log import EventLog
from service.log_journal import LogJournal
from service.rebuild import StateRebuild
from service.recovery import RecoveryReport, recover
from service.registry import ModelRegistry
from service.settings import Settings

logger = logging.getLogger("service.durability")
LOG_NAME = "events.sqlite3"
CHECKPOINTS_DIR = "checkpoints"
LOCK_NAME = "lock"


class StateDirectoryInUse(RuntimeError):
    """Another process holds the state directory's lock."""


class Durability:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.log: EventLog | None = None
        self.store: CheckpointStore | None = None
        self.journal: LogJournal | None = None
        self.checkpointer: Checkpointer | None = None
        self.report: RecoveryReport | None = None  # set once the state is recovered
        self._recovering: asyncio.Task[RecoveryReport] | None = None
        self._lock_fd: int | None = None

    def open(self) -> None:
        s = self.settings
        s.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(s.state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return  # restore() says why; nothing here is opened
        self._lock_fd = fd
        self.store = CheckpointStore(s.state_dir / CHECKPOINTS_DIR, keep=s.checkpoints_kept)
        self.log = EventLog(
            s.state_dir / LOG_NAME, sync=s.log_sync, sync_interval_ms=s.log_sync_interval_ms, max_bytes=s.log_max_bytes
        )
        self.checkpointer = Checkpointer(self.log, self.store, s.checkpoint_interval_s, s.checkpoint_every_observations)
        self.journal = LogJournal(self.log, on_observed=self.checkpointer.note_observed)

    async def restore(self, registry: ModelRegistry) -> None:
        if self._lock_fd is None:
            path = self.settings.state_dir / LOCK_NAME
            raise StateDirectoryInUse(f"the state directory is in use by another process (it holds {path})")
        assert self.log is not None and self.store is not None and self.checkpointer is not None, "open() first"
        rebuild = StateRebuild(registry)
        # Shielded: a shutdown during recovery waits for the thread (in close) instead of closing the log under it.
        self._recovering = asyncio.ensure_future(
            asyncio.to_thread(recover, self.store, self.log, rebuild.restore, rebuild.apply)
        )
        report = await asyncio.shield(self._recovering)
        for worker in rebuild.finish():
            registry.register(worker)
        if report.checkpoint_seq is None and report.last_seq == 0:  # a new state directory
            await registry.create("default", self.settings.default_config())
        self.report = report
        self.checkpointer.start(registry, checkpoint_now=report.replayed > 0)  # the next start replays less

    async def checkpoint(self, registry: ModelRegistry) -> int | None:
        """Write a checkpoint now (the checkpointer does it on its own every interval)."""
        assert self.checkpointer is not None and self.report is not None, "not recovered"
        return await self.checkpointer.checkpoint(registry)

    async def stop_checkpoints(self) -> None:
        """Stop the periodic checkpoints (a write under way finishes first)."""
        if self.checkpointer is not None:
            await self.checkpointer.stop()

    async def close(self, registry: ModelRegistry) -> None:
        """After ``registry.close()``: the final checkpoint, then close the log."""
        if self._recovering is not None:
            await asyncio.gather(self._recovering, return_exceptions=True)
        try:
            if self.report is not None and self.checkpointer is not None:
                try:
                    await asyncio.to_thread(self.checkpointer.write_final, registry.workers())
                except Exception:  # the log still holds every record: the next start replays them
                    logger.exception("the final checkpoint could not be written")
        finally:
            if self.log is not None:
                await asyncio.to_thread(self.log.close)
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the lock
                self._lock_fd = None
