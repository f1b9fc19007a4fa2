"""Issue 11 defect 8: a request of many values per series (many ticks) does not hold the single
observations that arrive with it: they are applied and answered first, in their own one-tick
batch, and the long request right after, each series' values in their order. Checked on the
order of the batches the model computes, not on timings."""

from __future__ import annotations

import asyncio
import threading
from typing import ClassVar

import pytest

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_service.host.fair_batches import short_first
from tbptt_service.host.metrics import ServiceMetrics
from tbptt_service.host.model_worker import ModelWorker
from tbptt_service.storage.observation import Observation

pytestmark = pytest.mark.anyio


class BatchRecorder(Forecaster):
    """Notes the series of each batch it applies, in order."""

    batches: ClassVar[list[list[str]]] = []

    def observe_many(self, items, *args, **kwargs):
        BatchRecorder.batches.append([item[0] for item in items])
        return super().observe_many(items, *args, **kwargs)


async def _run_held(worker: ModelWorker, requests: list[list[Observation]]) -> list[int]:
    """Queue ``requests`` while the worker is held, release it; the order the requests were answered in."""
    started, gate = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        gate.wait()

    held = worker.call(hold)
    await asyncio.to_thread(started.wait)  # the worker runs it: what follows queues up behind it
    answered: list[int] = []

    async def send(i: int, observations: list[Observation]) -> None:
        await worker.observe(observations)
        answered.append(i)

    tasks = []
    for i, observations in enumerate(requests):
        tasks.append(asyncio.ensure_future(send(i, observations)))
        while worker.queued_jobs < i + 1:  # queued one by one: the arrival order is fixed
            await asyncio.sleep(0.001)
    gate.set()
    await held
    await asyncio.gather(*tasks)
    return answered


async def test_single_observations_go_before_a_long_batch_that_came_first() -> None:
    BatchRecorder.batches = []
    worker = ModelWorker("m", BatchRecorder(ForecasterConfig(hidden_size=4)), metrics=ServiceMetrics(), max_wait_s=0)
    worker.start()
    try:
        long = [Observation("x", float(v)) for v in range(10)]  # 10 ticks
        singles = [[Observation(f"s{i}", 1.0)] for i in range(3)]
        behind = [Observation("x", 99.0)]  # a single of series x: it stays behind the long request
        answered = await _run_held(worker, [long, *singles, behind])
        steps = [r.step for r in (await worker.observe([Observation("x", 100.0)])).results]
    finally:
        worker.stop()
        worker.join()
    # max_wait_s=0 collects what is queued: one batch would have merged all five requests (10 ticks)
    assert BatchRecorder.batches[0] == ["s0", "s1", "s2"]  # the singles' own batch: one tick
    # then the long request and x's single after it: 11 ticks, applied one tick at a time (chunk_ticks=1)
    assert BatchRecorder.batches[1:12] == [["x"]] * 11
    assert answered[:3] == [1, 2, 3] and sorted(answered[3:]) == [0, 4]
    assert steps == [12]  # x's 10 values, its single, then this one: its order kept


def test_short_first_keeps_each_series_order() -> None:
    requests = [["a"] * 3, ["b"], ["a"], ["c", "a"], ["d", "d"], ["e"], ["d"]]
    now, later = short_first(requests)
    assert (now, later) == ([1, 5], [0, 2, 3, 4, 6])
    for series in "abcde":  # the requests holding a series, in the order they are applied
        applied = [i for i in now + later if series in requests[i]]
        assert applied == sorted(applied), series
