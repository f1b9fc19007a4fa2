"""A long batch whose chunks cannot all be journaled, or whose rest cannot be applied: it is never left half
applied, a failure quarantines the model once (no retry without end), and a batch the log could not confirm
keeps every checkpoint away until the restart (a review of session 50's change, with its probes)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_service.errors import ApiError, StorageFullError
from tbptt_service.host.checkpointer import unconfirmed_models
from tbptt_service.host.metrics import ServiceMetrics
from tbptt_service.host.model_worker import ModelWorker
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
