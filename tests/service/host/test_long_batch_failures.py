"""A long batch whose chunks cannot all be journaled, or whose rest cannot be applied: it is never left half
applied, a failure quarantines the model once (no retry without end), and a batch the log could not confirm
keeps every checkpoint away until the restart (a review of session 50's change, with its probes)."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_service.errors import ApiError, Busy, StorageFullError
from tbptt_service.host.checkpointer import Checkpointer, unconfirmed_models
from tbptt_service.host.metrics import ServiceMetrics
from tbptt_service.host.model_worker import ModelWorker
from tbptt_service.storage.checkpoints import CheckpointStore
from tbptt_service.storage.journal import PendingAppend
from tbptt_service.storage.observation import Observation

from ..conftest import SMALL_MODEL

pytestmark = pytest.mark.anyio


class Journal:
    """Every record written at once; the ``fsync_fails``-th chunk's fsync fails, the ``full_at``-th chunk's
    write is refused as a full log would (0: never)."""

    def __init__(self, fsync_fails: int = 0, full_at: int = 0) -> None:
        self.seq, self.chunks, self.fsync_fails, self.full_at = 0, 0, fsync_fails, full_at

    def record(self, model, kind, payload):
        self.seq += 1
        return self.seq

    def begin_append(self, model, observations, keys=None):
        self.seq += 1
        return PendingAppend(self.seq)

    begin_chunked = begin_append

    def begin_chunk(self, model, request, ticks, chunk):
        self.chunks += 1
        if self.chunks == self.full_at:
            raise StorageFullError("the log is full")
        self.seq += 1
        failing = self.chunks == self.fsync_fails

        def wait() -> None:
            if failing:
                raise StorageFullError("fsync failed")

        return PendingAppend(self.seq, wait)


class OneModelLog:
    """A log whose last record is seq 6 and whose prunes delete nothing (a checkpointer's view)."""

    full = False

    def last_seq(self) -> int:
        return 6

    def prune(self, through: int) -> int:
        return 0


class OneModelRegistry:
    """A registry of one worker, nothing quarantined at load (a checkpointer's view)."""

    def __init__(self, worker: ModelWorker) -> None:
        self.lock, self.quarantined, self.worker = asyncio.Lock(), {}, worker

    def workers(self) -> list[ModelWorker]:
        return [self.worker]


def worker_with(journal: Journal) -> ModelWorker:
    return ModelWorker(
        "m",
        Forecaster(ForecasterConfig.from_dict(SMALL_MODEL)),
        metrics=ServiceMetrics(),
        journal=journal,
        chunk_ticks=10,
    )


async def test_a_rest_that_fails_to_apply_quarantines_the_model_once_and_the_worker_stops(caplog) -> None:
    # the review's probe: the rest applied after a full log raised, the batch stayed set, and the worker applied it
    # again about 18,000 times a second, its thread never stopping
    caplog.set_level(logging.CRITICAL)
    worker = worker_with(Journal(full_at=3))
    calls: list[int] = []
    real = worker.apply

    def apply(observations, **kw):
        calls.append(len(observations))
        if len(calls) >= 3:  # two chunks applied, then the rest fails
            raise RuntimeError("boom")
        return real(observations, **kw)

    worker.apply = apply
    worker.start()
    with pytest.raises(ApiError):
        await asyncio.wait_for(worker.observe([Observation("a", float(i % 5)) for i in range(50)]), 10)
    await asyncio.sleep(0.3)
    worker.stop()
    worker.join(5.0)
    assert not worker._thread.is_alive() and calls == [10, 10, 30] and worker.quarantined is not None
    assert worker.unfinished is None


async def test_a_batch_recovery_left_unfinished_that_fails_to_apply_is_tried_once(caplog) -> None:
    caplog.set_level(logging.CRITICAL)
    worker = worker_with(Journal())
    worker.begin_chunked([Observation("a", float(i % 5)) for i in range(50)], 1)  # as recovery leaves it
    calls: list[int] = []

    def apply(observations, **kw):
        calls.append(len(observations))
        raise RuntimeError("boom")

    worker.apply = apply
    worker.start()
    await asyncio.sleep(0.5)
    worker.stop()
    worker.join(5.0)
    assert not worker._thread.is_alive() and len(calls) == 1 and worker.unfinished is None


async def test_a_chunk_whose_fsync_fails_keeps_checkpoints_away_and_publishes_nothing_more(caplog) -> None:
    # the review's probe: the batch applied whole, its keys not remembered and a chunk missing from /recent, and a
    # checkpoint would have made that state the durable one
    caplog.set_level(logging.CRITICAL)
    worker = worker_with(Journal(fsync_fails=3))
    worker.start()
    with pytest.raises(ApiError, match="could not confirm"):
        await asyncio.wait_for(worker.observe([Observation("a", float(i % 5)) for i in range(50)], key="k1"), 10)
    worker.stop()
    worker.join(5.0)
    assert worker.unconfirmed is not None and unconfirmed_models([worker]) == ["m"]
    assert (
        worker.forecaster.observations == 50 and worker.snapshot.observations == 20
    )  # applied whole, published 2 chunks
    assert worker.unfinished is None


class FullAtOnce(Journal):
    """The batch written, its fsync failing; its first chunk refused as a full log."""

    def begin_chunked(self, model, observations, keys=None):
        self.seq += 1

        def wait() -> None:
            raise StorageFullError("fsync failed")

        return PendingAppend(self.seq, wait)

    def begin_chunk(self, model, request, ticks, chunk):
        raise StorageFullError("the log is full")


async def test_a_batch_applied_whole_whose_own_record_is_not_durable_is_neither_published_nor_checkpointed(
    caplog,
) -> None:
    # a second review (session 50): the rest was published before the batch's record was known durable, and the
    # model was not marked unconfirmed when it was not, so a checkpoint could make it the durable state
    caplog.set_level(logging.CRITICAL)
    worker = worker_with(FullAtOnce())
    worker.start()
    with pytest.raises(ApiError):
        await asyncio.wait_for(worker.observe([Observation("a", float(i % 5)) for i in range(20)]), 10)
    worker.stop()
    worker.join(5.0)
    assert worker.forecaster.observations == 20 and worker.snapshot.observations == 0  # applied, not published
    assert unconfirmed_models([worker]) == ["m"] and worker.series_held == 1  # its series still counted


async def test_a_request_that_stops_waiting_stays_counted_until_its_job_is_applied() -> None:
    # a second review (session 50): cancelled while its job waited, it was uncounted, and a request past the
    # limit was taken beside the job still queued
    worker = worker_with(Journal())
    worker.max_queued_observations = 15
    release = threading.Event()
    blocker = asyncio.ensure_future(worker.call(release.wait))  # holds the worker's thread
    worker.start()
    first = asyncio.ensure_future(worker.observe([Observation("a", 1.0)] * 10))
    await asyncio.sleep(0.05)
    first.cancel()
    await asyncio.sleep(0.05)
    assert worker.queued_observations() == 10  # its job still queued
    with pytest.raises(Busy):
        await worker.observe([Observation("b", 1.0)] * 10)
    release.set()
    await blocker
    for _ in range(200):
        if worker.queued_observations() == 0:
            break
        await asyncio.sleep(0.01)
    worker.stop()
    worker.join(5.0)
    assert worker.queued_observations() == 0 and worker.forecaster.observations == 10  # applied, then uncounted


async def test_a_checkpoint_whose_captures_waited_behind_a_batch_that_failed_its_fsync_is_not_written(
    tmp_path, caplog
) -> None:
    # a second review (session 50): the check came before the captures, which wait their turn behind the queued
    # batches; a batch whose fsync failed meanwhile was captured and written
    caplog.set_level(logging.CRITICAL)
    release = threading.Event()

    class SlowFailingSync(Journal):
        def begin_append(self, model, observations, keys=None):
            self.seq += 1

            def wait() -> None:
                assert release.wait(30)
                raise StorageFullError("fsync failed")

            return PendingAppend(self.seq, wait)

    worker = worker_with(SlowFailingSync())
    worker.start()
    request = asyncio.ensure_future(worker.observe([Observation("a", 1.0, 1.0)], key="k1"))
    await asyncio.sleep(0.3)  # applied, its fsync under way: not unconfirmed yet
    checkpointer = Checkpointer(OneModelLog(), CheckpointStore(tmp_path, keep=3), interval_s=0)
    written = asyncio.ensure_future(checkpointer.checkpoint(OneModelRegistry(worker)))
    await asyncio.sleep(0.1)
    release.set()  # the fsync fails; the capture runs after it
    with pytest.raises(ApiError):
        await request
    assert await written is None and checkpointer.store.seqs() == [] and worker.unconfirmed is not None
    worker.stop()
    worker.join(5.0)


async def test_a_short_batch_that_fails_between_two_chunks_answers_the_long_batch_too(caplog) -> None:
    # a review (session 51): the long batch was given up with the model's quarantine, but only the short batch's
    # requests were answered; the long one's hung and its observations stayed counted as queued for good
    caplog.set_level(logging.CRITICAL)
    released = threading.Event()

    class SlowChunks(Journal):
        def begin_chunk(self, model, request, ticks, chunk):
            released.wait(0.05)  # room for a short request between two chunks
            return super().begin_chunk(model, request, ticks, chunk)

    worker = worker_with(SlowChunks())
    real = worker.apply

    def apply(observations, **kw):
        if any(o.series == "b" for o in observations):
            raise RuntimeError("boom applying b")
        return real(observations, **kw)

    worker.apply = apply
    worker.start()
    long = asyncio.ensure_future(worker.observe([Observation("a", float(i % 5)) for i in range(100)]))
    await asyncio.sleep(0.12)
    with pytest.raises(ApiError, match="boom applying b"):
        await asyncio.wait_for(worker.observe([Observation("b", 1.0)]), 10)
    with pytest.raises(ApiError, match="boom applying b"):
        await asyncio.wait_for(long, 10)
    worker.stop()
    worker.join(5.0)
    assert worker.quarantined is not None and worker.queued_observations() == 0


async def test_a_checkpoint_whose_captures_waited_behind_a_batch_that_failed_to_apply_is_not_written(
    tmp_path, caplog
) -> None:
    # a review (session 51): the check after the captures looked for unconfirmed models only; a model quarantined
    # while they waited was checkpointed at a seq past its failed batch, which the restart then skipped
    caplog.set_level(logging.CRITICAL)
    release = threading.Event()

    worker = worker_with(Journal())

    def apply(observations, **kw):
        assert release.wait(30)  # its record written; applying it fails once the checkpoint waits
        raise RuntimeError("boom")

    worker.apply = apply
    worker.start()
    request = asyncio.ensure_future(worker.observe([Observation("a", 1.0)]))
    await asyncio.sleep(0.3)
    assert worker.quarantined is None
    checkpointer = Checkpointer(OneModelLog(), CheckpointStore(tmp_path, keep=3), interval_s=0)
    written = asyncio.ensure_future(checkpointer.checkpoint(OneModelRegistry(worker)))
    await asyncio.sleep(0.1)
    release.set()
    with pytest.raises(ApiError):
        await request
    assert await written is None and checkpointer.store.seqs() == [] and worker.quarantined is not None
    worker.stop()
    worker.join(5.0)
