"""The worker's side of a timestamp gap (tbptt_service.host.cadence): the missing steps and the value
are applied as the library applies them fed the nulls, chunked like a long batch, or whole between
two chunks of one."""

from __future__ import annotations

import asyncio

import pytest

from tbptt_online import Forecaster
from tbptt_service.host.metrics import ServiceMetrics
from tbptt_service.host.model_worker import ModelWorker
from tbptt_service.storage.observation import Observation

from ..bitwise import assert_bitwise_equal
from .test_chunked_batches import LEARNING, GatedForecaster, long_request, queued

pytestmark = pytest.mark.anyio
T0 = 1_000.0


def regular(series: str, count: int) -> list[Observation]:
    """``count`` values of ``series`` 10 s apart: the cadence is known after 9."""
    return [Observation(series, 1.0 + 0.3 * (i % 4), T0 + 10 * i) for i in range(count)]


async def test_a_gap_alone_is_applied_a_tick_at_a_time_like_a_long_batch() -> None:
    forecaster = GatedForecaster(LEARNING)
    worker = ModelWorker("m", forecaster, metrics=ServiceMetrics(), max_wait_s=0, max_gap_steps=100)
    worker.start()
    try:
        await worker.observe(regular("s", 10))
        forecaster.calls.clear()
        outcome = await worker.observe([Observation("s", 2.0, T0 + 90 + 40)])  # 3 steps missing
    finally:
        worker.stop()
        worker.join()
    assert forecaster.calls == [["s"]] * 4  # chunked (TBPTT_LONG_BATCH_CHUNK_TICKS = 1)
    reference = Forecaster(LEARNING)
    reference.observe_many([(o.series, o.value) for o in regular("s", 10)])
    expected = [reference.observe_many([("s", v)]) for v in (None, None, None, 2.0)][-1]
    assert list(outcome.results) == list(expected)
    assert_bitwise_equal(worker.capture().forecaster, reference.state_dict())


async def test_a_gap_between_two_chunks_of_a_long_batch_is_applied_whole_and_answered_first() -> None:
    forecaster = GatedForecaster(LEARNING, holds=(1,), watch="x0")  # the long request's first chunk
    worker = ModelWorker("m", forecaster, metrics=ServiceMetrics(), max_wait_s=0, max_gap_steps=100)
    worker.start()
    try:
        await worker.observe(regular("s", 10))
        forecaster.calls.clear()
        long_job = asyncio.ensure_future(worker.observe(long_request(["x0", "x1"], 4)))  # 4 ticks
        await forecaster.held()
        gap_job = asyncio.ensure_future(worker.observe([Observation("s", 2.0, T0 + 90 + 30)]))  # 2 missing
        await queued(worker, 1)
        forecaster.release.set()
        gap = await gap_job
        answered_before_the_long_one = not long_job.done()
        long = await long_job
    finally:
        worker.stop()
        worker.join()
    x = ["x0", "x1"]
    assert forecaster.calls == [x, ["s", "s", "s"], x, x, x]  # the gap's 3 ticks in one call, between chunks
    assert answered_before_the_long_one
    reference = Forecaster(LEARNING)
    reference.observe_many([(o.series, o.value) for o in regular("s", 10)])
    chunks = [[(o.series, o.value) for o in long_request(x, 4)[2 * t : 2 * t + 2]] for t in range(4)]
    expected_long = reference.observe_many(chunks[0])[:]
    expected_gap = reference.observe_many([("s", None), ("s", None), ("s", 2.0)])[2:]
    for chunk in chunks[1:]:
        expected_long += reference.observe_many(chunk)[:]
    assert list(gap.results) == list(expected_gap) and list(long.results) == expected_long
    assert_bitwise_equal(worker.capture().forecaster, reference.state_dict())
