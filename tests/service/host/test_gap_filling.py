"""The worker's side of a timestamp gap (tbptt_service.host.cadence): the missing steps and the value
are applied as the library applies them fed the nulls, chunked like a long batch; a request with a
gap is a long one (it goes neither before nor between the chunks of another long batch)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tbptt_online import Forecaster
from tbptt_service.host.metrics import ServiceMetrics
from tbptt_service.host.model_worker import ModelWorker
from tbptt_service.storage.observation import Observation

from ..bitwise import assert_bitwise_equal
from .test_chunked_batches import LEARNING, GatedForecaster, long_request, queued
from .test_fair_batches import _run_held

pytestmark = pytest.mark.anyio
T0 = 1_000.0


def regular(series: str, count: int) -> list[Observation]:
    """``count`` values of ``series`` 10 s apart: the cadence is known after 9."""
    return [Observation(series, 1.0 + 0.3 * (i % 4), T0 + 10 * i) for i in range(count)]


@contextlib.asynccontextmanager
async def cadence_known(forecaster: Forecaster) -> AsyncIterator[ModelWorker]:
    """A started worker of ``forecaster`` that fills gaps (up to 100 steps), whose series "s" has
    had ``regular("s", 10)`` (its cadence known), with the forecaster's calls cleared; stopped after."""
    worker = ModelWorker("m", forecaster, metrics=ServiceMetrics(), max_wait_s=0, max_gap_steps=100)
    worker.start()
    try:
        await worker.observe(regular("s", 10))
        forecaster.calls.clear()
        yield worker
    finally:
        worker.stop()
        worker.join()


async def test_a_gap_alone_is_applied_a_tick_at_a_time_like_a_long_batch() -> None:
    forecaster = GatedForecaster(LEARNING)
    async with cadence_known(forecaster) as worker:
        outcome = await worker.observe([Observation("s", 2.0, T0 + 90 + 40)])  # 3 steps missing
    assert forecaster.calls == [["s"]] * 4  # chunked (TBPTT_LONG_BATCH_CHUNK_TICKS = 1)
    reference = Forecaster(LEARNING)
    reference.observe_many([(o.series, o.value) for o in regular("s", 10)])
    expected = [reference.observe_many([("s", v)]) for v in (None, None, None, 2.0)][-1]
    assert list(outcome.results) == list(expected)
    assert_bitwise_equal(worker.capture().forecaster, reference.state_dict())


async def test_a_gap_that_arrives_between_two_chunks_waits_for_the_long_batch_and_a_single_goes_between() -> None:
    # fix (a hostile client): a request of one value whose timestamp opens a gap was taken for a short
    # one and applied whole between two chunks of a long batch, all its missing steps in one call (a gap
    # of 1,000 steps held every other request for its 1,001 ticks); now its ticks count, so it waits
    # for the long batch like any long request and is then applied a chunk at a time, while a single
    # observation of another series still goes between two chunks
    forecaster = GatedForecaster(LEARNING, holds=(1,), watch="x0")  # the long request's first chunk
    async with cadence_known(forecaster) as worker:
        long_job = asyncio.ensure_future(worker.observe(long_request(["x0", "x1"], 4)))  # 4 ticks
        await forecaster.held()
        gap_job = asyncio.ensure_future(worker.observe([Observation("s", 2.0, T0 + 90 + 30)]))  # 2 missing
        await queued(worker, 1)
        single_job = asyncio.ensure_future(worker.observe([Observation("u", 5.0)]))
        await queued(worker, 2)
        finished: list[str] = []  # the order the requests were answered in (``.done()`` after the single's
        # answer raced: on a busy machine the worker had finished the long one too before this coroutine
        # ran again, and the check failed although the single had been answered first)
        single_job.add_done_callback(lambda _: finished.append("single"))
        long_job.add_done_callback(lambda _: finished.append("long"))
        forecaster.release.set()
        single = await single_job
        long = await long_job
        gap = await gap_job
        await asyncio.sleep(0)  # the done callbacks run (an awaited future already done does not yield, and
        # its callbacks were still pending under load: "'long' is not in list", CI emulation, session 49)
        single_before_the_long_one = finished.index("single") < finished.index("long")
    x = ["x0", "x1"]
    assert forecaster.calls == [x, ["u"], x, x, x, ["s"], ["s"], ["s"]]  # the gap after the long batch, chunked
    assert single_before_the_long_one
    reference = Forecaster(LEARNING)
    reference.observe_many([(o.series, o.value) for o in regular("s", 10)])
    chunks = [[(o.series, o.value) for o in long_request(x, 4)[2 * t : 2 * t + 2]] for t in range(4)]
    expected_long = reference.observe_many(chunks[0])[:]
    expected_single = reference.observe_many([("u", 5.0)])[:]
    for chunk in chunks[1:]:
        expected_long += reference.observe_many(chunk)[:]
    expected_gap = [reference.observe_many([("s", v)]) for v in (None, None, 2.0)][-1][:]
    assert list(single.results) == expected_single and list(long.results) == expected_long
    assert list(gap.results) == expected_gap
    assert_bitwise_equal(worker.capture().forecaster, reference.state_dict())


async def test_single_observations_batched_with_a_gap_go_first_in_a_tick_of_their_own() -> None:
    # fix (a hostile client): the single observations collected into one micro-batch with a request of
    # one value that opens a gap rode along for every tick of the gap (7.75 s for a gap of 1,000 steps);
    # the gap's request is a long one now: the singles are applied and answered first
    forecaster = GatedForecaster(LEARNING)
    async with cadence_known(forecaster) as worker:
        requests = [[Observation("s", 2.0, T0 + 90 + 40)], [Observation("a", 1.0)], [Observation("b", 1.0)]]
        answered = await _run_held(worker, requests)
    assert forecaster.calls == [["a", "b"], ["s"], ["s"], ["s"], ["s"]]  # the singles, then the gap's 4 ticks
    assert answered[:2] == [1, 2] and answered[2] == 0


async def test_a_retry_of_a_gap_waiting_behind_a_long_batch_waits_behind_it_too() -> None:
    # fix (a review): the scheduling's dry run counted a plain retry (the same body, no idempotency key)
    # as a repeat of the first request's value, so it held no tick and no series, went between two
    # chunks, and there, the first still waiting, was admitted with the gap's missing steps, whole
    forecaster = GatedForecaster(LEARNING, holds=(1,), watch="x0")
    async with cadence_known(forecaster) as worker:
        long_job = asyncio.ensure_future(worker.observe(long_request(["x0", "x1"], 4)))
        await forecaster.held()
        gap = [Observation("s", 2.0, T0 + 90 + 30)]  # 2 missing steps
        first = asyncio.ensure_future(worker.observe(list(gap)))
        await queued(worker, 1)
        retry = asyncio.ensure_future(worker.observe(list(gap)))  # the same body again
        await queued(worker, 2)
        forecaster.release.set()
        await long_job
        a, b = await first, await retry
    x = ["x0", "x1"]
    assert forecaster.calls == [x, x, x, x, ["s"], ["s"], ["s"]]  # the gap after the long batch, a tick a time
    assert [r.step for r in a.results] == [r.step for r in b.results] == [13]  # applied once, both answered


async def test_a_failure_of_the_scheduling_dry_run_leaves_the_worker_serving(monkeypatch) -> None:
    # the dry run runs outside the worker's guard: an exception there would end its thread and leave
    # every requester waiting; it falls back to counting values, and the real admission goes on
    from tbptt_service.host import model_worker

    calls = {"n": 0}
    admit_all = model_worker.BatchAdmission.admit_all

    def failing_once(self, jobs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a bug in the dry run")
        return admit_all(self, jobs)

    forecaster = GatedForecaster(LEARNING)
    async with cadence_known(forecaster) as worker:
        monkeypatch.setattr(model_worker.BatchAdmission, "admit_all", failing_once)
        requests = [[Observation("s", 2.0, T0 + 90 + 10)], [Observation("a", 1.0, T0)]]
        answered = await asyncio.wait_for(_run_held(worker, requests), timeout=30)
    assert sorted(answered) == [0, 1] and calls["n"] >= 2  # the dry run failed, both requests were applied
    assert worker.snapshot.series_count == 2


async def test_the_gaps_of_requests_batched_together_are_each_filled_whatever_the_others_insert() -> None:
    # a hostile client (session 35): 16 single POSTs each opening a 999-step gap landed in one micro-batch,
    # whose missing steps are capped at 10 x TBPTT_MAX_GAP_STEPS: 10 were filled and 6 got no step (which
    # 6, the order of arrival decided), all answered alike; now such a batch is applied in parts that fit
    forecaster = GatedForecaster(LEARNING)
    worker = ModelWorker("m", forecaster, metrics=ServiceMetrics(), max_wait_s=0, max_gap_steps=10)
    worker.start()
    names = [f"s{i}" for i in range(12)]
    try:
        for name in names:
            await worker.observe(regular(name, 10))  # each one's cadence known
        forecaster.calls.clear()
        await _run_held(worker, [[Observation(name, 2.0, T0 + 90 + 100)] for name in names])  # 9 missing each
        state = worker.capture().forecaster
    finally:
        worker.stop()
        worker.join()
    loaded = Forecaster.from_state_dict(state)
    steps = {name: int(loaded.store.tensors["steps"][loaded.store.slot_of(name)]) for name in names}
    assert steps == dict.fromkeys(names, 10 + 9 + 1)  # 12 x 9 = 108 missing steps, over the batch's 10 x 10

    assert forecaster.calls == [names[:11]] * 10 + [names[11:]] * 10  # 11 requests (99 steps), then the 12th,
    # each a tick at a time (TBPTT_LONG_BATCH_CHUNK_TICKS = 1)
