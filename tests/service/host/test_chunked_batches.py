"""Issue 11 defect 8, the worker's side: a long batch (many values per series: many ticks) is
applied a chunk of ticks at a time, and the short requests that arrive meanwhile are applied and
answered with the next chunk. Checked on the order in which the model computes, and against the
library fed the same chunks, bit for bit."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_service.host.chunked_run import ChunkedRun
from tbptt_service.host.metrics import ServiceMetrics
from tbptt_service.host.model_worker import ModelWorker
from tbptt_service.storage.observation import Observation

from ..bitwise import assert_bitwise_equal
from ..conftest import SMALL_MODEL

pytestmark = pytest.mark.anyio
LEARNING = ForecasterConfig.from_dict({**SMALL_MODEL, "lr": 0.01})


def long_request(series: list[str], ticks: int, base: float = 0.0) -> list[Observation]:
    """``ticks`` values of each series, interleaved as a client sends them (t0 of each, t1 of each, ...)."""
    return [Observation(s, base + 0.37 * t + 0.11 * i) for t in range(ticks) for i, s in enumerate(series)]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
def test_a_batch_applied_in_chunks_of_ticks_is_the_batch_applied_at_once_bit_for_bit(chunk: int) -> None:
    # series appear and stop at different ticks, new series among them, and updates run (k1 = 4)
    warm = [("a", 0.5), ("b", 1.5)]
    batch = [Observation(s, float(i % 5) - 1.3) for i, s in enumerate("aabcaxbbacyaaxa")] + long_request(["z"], 4)
    whole, chunked = Forecaster(LEARNING), Forecaster(LEARNING)
    whole.observe_many(warm)
    chunked.observe_many(warm)
    expected = whole.observe_many([(o.series, o.value) for o in batch])

    run = ChunkedRun(batch, seq=1)
    while run.remaining:
        run.done(chunked.observe_many([(o.series, o.value) for o in run.chunk(chunk)]), min(chunk, run.remaining))
    assert whole.update_stats().updates > 0
    assert_bitwise_equal(chunked.state_dict(), whole.state_dict())
    assert list(run.results()) == list(expected)  # every element's result, in the batch's order


class GatedForecaster(Forecaster):
    """Notes the series of each ``observe_many`` it runs; the calls numbered in ``holds`` (1-based,
    counting only the calls holding series ``watch`` when it is given) wait, once entered, until
    ``release`` is set. ``held()`` waits until a call is held (and takes the sign: the next ``held()``
    waits for the next hold; a worker that cleared ``entered`` itself raced a test's second wait)."""

    def __init__(self, config: ForecasterConfig, holds: tuple[int, ...] = (), watch: str | None = None) -> None:
        super().__init__(config)
        self.calls: list[list[str]] = []
        self.holds = holds
        self.watch = watch
        self.watched = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def observe_many(self, items: Any, *args: Any, **kwargs: Any) -> Any:
        items = list(items)
        self.calls.append([item[0] for item in items])
        counted = self.watch is None or self.watch in self.calls[-1]
        self.watched += counted
        if counted and self.watched in self.holds:
            self.entered.set()
            self.release.wait()
            self.release.clear()
        return super().observe_many(items, *args, **kwargs)

    async def held(self) -> None:
        await asyncio.to_thread(self.entered.wait)
        self.entered.clear()


async def queued(worker: ModelWorker, count: int) -> None:
    while worker.queued_jobs < count:
        await asyncio.sleep(0.001)


async def test_a_short_request_is_answered_while_a_long_one_is_still_being_applied() -> None:
    forecaster = GatedForecaster(LEARNING, holds=(1, 3))  # the long request's first and second chunks
    worker = ModelWorker("m", forecaster, metrics=ServiceMetrics(), max_wait_s=0)
    worker.start()
    try:
        long_job = asyncio.ensure_future(worker.observe(long_request(["x0", "x1", "x2"], 6)))  # 6 ticks
        await forecaster.held()  # its first chunk is being applied
        short_job = asyncio.ensure_future(worker.observe([Observation("s", 2.5)]))
        await queued(worker, 1)
        forecaster.release.set()
        short = await short_job
        await forecaster.held()  # the long request's second chunk is held
        assert not long_job.done()  # the short one was answered before the long one's last tick
        applied_when_answered = worker.snapshot.observations
        forecaster.release.set()
        long = await long_job
    finally:
        worker.stop()
        worker.join()
    x = ["x0", "x1", "x2"]
    assert forecaster.calls == [x, ["s"], *[x] * 5]  # the short one alone, between the first and second chunks
    assert applied_when_answered == 4  # one tick of the long request, and the short one: it waited for no other

    # The library fed the same calls in the same order: the same results, bit for bit.
    reference = Forecaster(LEARNING)
    chunks = [[(o.series, o.value) for o in long_request(x, 6)[3 * t : 3 * t + 3]] for t in range(6)]
    expected_long = reference.observe_many(chunks[0])[:]
    expected_short = reference.observe_many([("s", 2.5)])[:]
    for chunk in chunks[1:]:
        expected_long += reference.observe_many(chunk)[:]
    assert short.results == expected_short
    assert long.results == expected_long
    assert [r.step for r in long.results] == [t + 1 for t in range(6) for _ in range(3)]
    assert_bitwise_equal(worker.capture().forecaster, reference.state_dict())


async def test_each_series_keeps_its_order_and_a_forget_holds_back_only_its_own_series() -> None:
    forecaster = GatedForecaster(LEARNING, holds=(1,))
    worker = ModelWorker("m", forecaster, metrics=ServiceMetrics(), max_wait_s=0)
    worker.start()
    try:
        long_job = asyncio.ensure_future(worker.observe(long_request(["a", "b"], 3)))  # 3 ticks
        await forecaster.held()
        arrivals = [
            [Observation("a", 9.0)],  # a single of the long batch's series: behind it
            [Observation("c", 1.0)],  # another series: between two chunks
            [Observation("c", 2.0), Observation("d", 1.0)],  # c again, short: between too, after c's first
            [Observation("e", 1.0), Observation("e", 2.0)],  # long: waits for the long batch to finish
            [Observation("d", 2.0)],  # d again: free of the long batch, between too, after d's first
        ]
        jobs = []
        for i, observations in enumerate(arrivals):
            jobs.append(asyncio.ensure_future(worker.observe(observations)))
            await queued(worker, i + 1)
        forgotten = asyncio.ensure_future(worker.forget("c"))  # a call: it waits for the long batch
        await queued(worker, len(arrivals) + 1)
        c_after_call = asyncio.ensure_future(worker.observe([Observation("c", 3.0)]))  # behind the forget of c
        f_after_call = asyncio.ensure_future(worker.observe([Observation("f", 1.0)]))  # held back by nothing
        await queued(worker, len(arrivals) + 3)
        forecaster.release.set()
        outcomes = [await job for job in jobs]
        await long_job
        await forgotten
        c_after, f_after = await c_after_call, await f_after_call
    finally:
        worker.stop()
        worker.join()
    assert forecaster.calls == [
        ["a", "b"],  # the long batch's first tick
        ["c", "c", "d", "d", "f"],  # what arrived and may go, a batch of its own (c and d: two ticks each)
        ["a", "b"],  # the long batch's second and last ticks
        ["a", "b"],
        ["a"],  # then, in arrival order, what waited: a's single,
        ["e"],  # e's long request, a chunk at a time
        ["e"],
        ["c"],  # after the forget of c: a new series c
    ]
    steps = [[r.step for r in outcome.results] for outcome in outcomes]
    assert steps == [[4], [1], [2, 1], [1, 2], [2]]
    assert [r.step for r in c_after.results] == [1] and [r.step for r in f_after.results] == [1]
    assert worker.snapshot.series_count == 6  # a, b, c (anew), d, e, f
