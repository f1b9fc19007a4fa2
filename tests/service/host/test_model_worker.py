"""ModelWorker: per-job admission inside a merged batch, the journal hook, 507, recovery, drain."""

from __future__ import annotations

import asyncio
import errno
import threading
from collections.abc import Callable, Sequence

import anyio
import pytest
import torch

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_service.errors import ApiError, Conflict, InsufficientStorage, NotFound, StorageFullError, Unprocessable
from tbptt_service.host.metrics import ServiceMetrics
from tbptt_service.host.model_worker import ModelWorker
from tbptt_service.storage.journal import PendingAppend
from tbptt_service.storage.observation import Observation

from ..conftest import SMALL_MODEL

pytestmark = pytest.mark.anyio
CONFIG = ForecasterConfig.from_dict(SMALL_MODEL)


class RecordingJournal:
    """Records each appended batch, and what the model had consumed when it was appended."""

    def __init__(self, forecaster: Forecaster) -> None:
        self.forecaster = forecaster
        self.batches: list[list[Observation]] = []
        self.consumed_at_append: list[int] = []
        self.first_entered = threading.Event()
        self.release_first = threading.Event()
        self.release_first.set()  # not gated unless a test clears it
        self.full = False

    def append(self, model: str, observations: Sequence[Observation]) -> None:
        if not self.batches:
            self.first_entered.set()
            self.release_first.wait()
        if self.full:
            raise StorageFullError("No space left on device")
        self.consumed_at_append.append(self.forecaster.observations)
        self.batches.append(list(observations))


async def until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.001)


def make_worker(forecaster: Forecaster | None = None, **kwargs) -> tuple[ModelWorker, RecordingJournal]:
    forecaster = forecaster or Forecaster(CONFIG)
    journal = RecordingJournal(forecaster)
    worker = ModelWorker("m", forecaster, metrics=ServiceMetrics(), journal=journal, **kwargs)
    return worker, journal


async def run_jobs_in_one_batch(worker: ModelWorker, journal: RecordingJournal, jobs: list[list[Observation]]):
    """Hold the worker in a first batch's journal append, queue ``jobs``, then let it go: they meet in one batch."""
    journal.release_first.clear()
    worker.start()
    try:
        warm_up = asyncio.ensure_future(worker.observe([Observation("warm-up", 0.0)]))
        await anyio.to_thread.run_sync(journal.first_entered.wait)
        tasks = [asyncio.ensure_future(worker.observe(job)) for job in jobs]
        await until(lambda: worker.queued_jobs == len(jobs))
    finally:
        journal.release_first.set()
    await warm_up
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_bad_job_fails_alone_and_the_others_are_applied_as_one_batch() -> None:
    worker, journal = make_worker(max_wait_s=0.0)
    good_1 = [Observation("a", 1.0, 10.0), Observation("b", 2.0)]
    bad_dimension = [Observation("a", 5.0), Observation("c", [1.0, 2.0])]
    good_2 = [Observation("a", 3.0, 11.0), Observation("c", 4.0)]
    too_old = [Observation("d", 1.0), Observation("a", 9.0, 10.5)]  # older than good_2's 11.0
    outcomes = await run_jobs_in_one_batch(worker, journal, [good_1, bad_dimension, good_2, too_old])
    worker.stop()
    worker.join()

    wrong = "observation 1: value has 2 feature(s), expected n_features=1"
    assert isinstance(outcomes[1], Unprocessable) and outcomes[1].body() == {
        "detail": wrong,
        "index": 1,
        "errors": [{"loc": ["body", "observations", "1", "value"], "msg": wrong, "type": "value_error"}],
        "error_count": 1,
    }
    older = "observation 1: timestamp 10.5 of series 'a' is older than its last timestamp 11.0"
    assert isinstance(outcomes[3], Conflict) and outcomes[3].body() == {
        "detail": older,
        "index": 1,
        "errors": [{"loc": ["body", "observations", "1", "timestamp"], "msg": older, "type": "timestamp_older"}],
        "error_count": 1,
        "refused": [1],
    }
    assert journal.batches[1] == good_1 + good_2  # one merged batch: the good jobs, in arrival order

    reference = Forecaster(CONFIG)
    reference.observe_many([("warm-up", 0.0)])
    expected = reference.observe_many([(o.series, o.value) for o in good_1 + good_2])
    assert outcomes[0].results + outcomes[2].results == expected
    assert outcomes[2].update_count == reference.update_stats().updates
    assert worker.snapshot.series_count == 4  # warm-up, a, b, c: nothing of the refused jobs


async def test_the_journal_records_a_batch_before_it_is_applied() -> None:
    worker, journal = make_worker()
    worker.start()
    await worker.observe([Observation("a", 1.0), Observation("a", 2.0)])
    await worker.observe([Observation("b", 1.0)])
    worker.stop()
    worker.join()
    # a's two values are two ticks: applied one tick at a time (chunk_ticks=1), each journaled first
    assert journal.consumed_at_append == [0, 1, 2]
    assert journal.batches == [[Observation("a", 1.0)], [Observation("a", 2.0)], [Observation("b", 1.0)]]


async def test_a_full_journal_refuses_the_batch_with_507_and_applies_nothing() -> None:
    worker, journal = make_worker()
    worker.start()
    await worker.observe([Observation("a", 1.0, 1.0)])
    before = worker.snapshot
    journal.full = True
    with pytest.raises(InsufficientStorage, match="No space left on device"):
        await worker.observe([Observation("a", 2.0, 2.0), Observation("b", 1.0)])
    assert worker.snapshot is before  # nothing applied, nothing published
    assert worker.forecaster.observations == 1 and worker.forecaster.series == ["a"]
    journal.full = False
    outcome = await worker.observe([Observation("a", 2.0, 2.0)])  # the same timestamp is still free
    assert outcome.results[0].step == 2
    worker.stop()
    worker.join()


async def test_an_io_error_of_the_journal_refuses_the_batch_with_503_naming_it_and_applies_nothing() -> None:
    # An I/O error (a failed fsync's EIO) is no bug: it answered 500 "the journal failed", the class README gives
    # to bugs (session 59, beside the operator's F9); now 503 naming it, as an unreachable log
    class FailingDisk:
        def append(self, model: str, observations: Sequence[Observation]) -> None:
            raise OSError(errno.EIO, "fsync of events.sqlite3-wal failed: Input/output error")

    worker = ModelWorker("m", Forecaster(CONFIG), metrics=ServiceMetrics(), journal=FailingDisk())
    worker.start()
    with pytest.raises(ApiError) as refused:
        await worker.observe([Observation("a", 1.0)])
    worker.stop()
    worker.join()
    assert refused.value.status_code == 503
    assert refused.value.detail == (
        "the journal cannot record this batch ([Errno 5] fsync of events.sqlite3-wal failed: Input/output error); "
        "nothing was applied"
    )
    assert worker.forecaster.observations == 0 and worker.snapshot.series_count == 0


async def test_a_failing_journal_refuses_the_batch_with_500_and_applies_nothing() -> None:
    class BrokenJournal:
        def append(self, model: str, observations: Sequence[Observation]) -> None:
            raise RuntimeError("database is locked")

    worker = ModelWorker("m", Forecaster(CONFIG), metrics=ServiceMetrics(), journal=BrokenJournal())
    worker.start()
    with pytest.raises(ApiError) as refused:
        await worker.observe([Observation("a", 1.0)])
    worker.stop()
    worker.join()
    assert refused.value.status_code == 500
    assert refused.value.detail == "the journal failed (RuntimeError('database is locked')); nothing was applied"
    assert worker.forecaster.observations == 0 and worker.snapshot.series_count == 0


async def test_applying_the_journal_again_through_apply_rebuilds_the_same_state() -> None:
    worker, journal = make_worker()
    worker.start()
    for k in range(12):
        await worker.observe([Observation(f"s{k % 3}", float(k % 5), float(k)), Observation("x", float(k))])
    last = await worker.observe([Observation("s2", 3.0, 100.0)])
    worker.stop()
    worker.join()
    assert worker.forecaster.update_stats().updates > 0

    rebuilt_worker = ModelWorker("m", Forecaster(CONFIG), metrics=ServiceMetrics())
    for batch in journal.batches:
        rebuilt_worker.apply(batch)
    rebuilt_worker.publish()
    original, rebuilt = worker.forecaster.state_dict(), rebuilt_worker.forecaster.state_dict()
    assert rebuilt["observations"] == original["observations"]
    for part in ("network", "store"):
        tensors = original[part] if part == "network" else original[part]["tensors"]
        again = rebuilt[part] if part == "network" else rebuilt[part]["tensors"]
        for name, tensor in tensors.items():
            torch.testing.assert_close(again[name], tensor, rtol=0, atol=0, equal_nan=True, msg=name)
    # The timestamp marks came back too: a retry of the last observation gets its first result.
    rebuilt_worker.start()
    retry = await rebuilt_worker.observe([Observation("s2", 3.0, 100.0)])
    assert retry.results == last.results
    rebuilt_worker.stop()
    rebuilt_worker.join()


async def test_stop_drains_queued_jobs_then_refuses_new_ones() -> None:
    worker, journal = make_worker(max_wait_s=0.0)
    jobs = [[Observation("a", float(i))] for i in range(10)]
    journal.release_first.clear()
    worker.start()
    try:
        first = asyncio.ensure_future(worker.observe([Observation("a", -1.0)]))
        await anyio.to_thread.run_sync(journal.first_entered.wait)
        tasks = [asyncio.ensure_future(worker.observe(job)) for job in jobs]
        await until(lambda: worker.queued_jobs == len(jobs))
        worker.stop()  # while jobs are queued
    finally:
        journal.release_first.set()
    await first
    outcomes = await asyncio.gather(*tasks)
    await anyio.to_thread.run_sync(worker.join)
    assert [o.results[0].step for o in outcomes] == list(range(2, 12))
    with pytest.raises(NotFound, match="model 'm' is unknown"):
        await worker.observe([Observation("a", 1.0)])


class SlowSyncJournal:
    """Writes at once; each batch's ``wait_durable`` blocks until the test releases it (or fails then)."""

    def __init__(self) -> None:
        self.written = threading.Event()
        self.release = threading.Event()
        self.fail_with: Exception | None = None
        self.changes: list[str] = []

    def append(self, model: str, observations: Sequence[Observation]) -> int:
        raise AssertionError("the worker writes batches with begin_append")

    def begin_append(self, model: str, observations: Sequence[Observation]) -> PendingAppend:
        self.written.set()

        def wait_durable() -> None:
            assert self.release.wait(30)
            if self.fail_with is not None:
                raise self.fail_with

        return PendingAppend(7, wait_durable)

    def record(self, model: str, kind: str, payload: dict) -> int:
        self.changes.append(kind)
        return 8


async def test_a_batch_is_computed_while_its_record_syncs_but_seen_and_answered_only_once_durable() -> None:
    journal = SlowSyncJournal()
    worker = ModelWorker("m", Forecaster(CONFIG), metrics=ServiceMetrics(), journal=journal)
    worker.start()
    answer = asyncio.ensure_future(worker.observe([Observation("a", 1.0, 1.0)]))
    await until(lambda: worker.forecaster.observations == 1)  # applied while the fsync is pending ...
    await asyncio.sleep(0.05)
    assert not answer.done()  # ... but not answered,
    assert worker.snapshot.observations == 0 and worker.recent.read("a", 10) == []  # nor seen
    journal.release.set()
    outcome = await answer
    worker.stop()
    worker.join()
    assert outcome.results[0].step == 1
    assert (worker.snapshot.observations, worker.seq, len(worker.recent.read("a", 10))) == (1, 7, 1)


async def test_a_failed_sync_answers_the_batch_with_the_error_and_the_model_then_refuses_changes() -> None:
    journal = SlowSyncJournal()
    journal.fail_with = StorageFullError("fsync failed: No space left on device")
    journal.release.set()
    worker = ModelWorker("m", Forecaster(CONFIG), metrics=ServiceMetrics(), journal=journal)
    worker.start()
    with pytest.raises(InsufficientStorage) as failed:
        await worker.observe([Observation("a", 1.0, 1.0)])
    assert "could not confirm a batch as durable" in failed.value.detail and "restarts" in failed.value.detail
    journal.fail_with = None
    with pytest.raises(InsufficientStorage) as refused:  # the retry is not taken for a known repeat
        await worker.observe([Observation("a", 1.0, 1.0)])
    with pytest.raises(InsufficientStorage):
        await worker.forget("a")
    worker.stop()
    worker.join()
    assert refused.value.detail == failed.value.detail
    assert worker.snapshot.observations == 0 and journal.changes == []  # nothing unconfirmed was published


async def test_an_advisor_that_fails_leaves_the_worker_answering_and_its_report_empty(caplog, monkeypatch) -> None:
    # A snapshot is published before a batch's requesters are answered: the advisor's report
    # raising there (session 15's hostile review: a config with k1 above every candidate window)
    # ended the worker's thread, left every later request waiting and stopped a restart's recovery.
    worker, _ = make_worker()
    calls = []

    def failing() -> None:
        calls.append(1)
        raise IndexError("list index out of range")

    monkeypatch.setattr(worker.forecaster, "truncation", failing)
    worker.forecaster.probe.probes = 1  # a probe "ran": the snapshot asks for a new report
    worker.start()
    with anyio.fail_after(30):
        first = await worker.observe([Observation("a", 1.0)])
        second = await worker.observe([Observation("a", 2.0)])
    worker.stop()
    worker.join()
    assert [r.step for r in first.results + second.results] == [1, 2]
    assert calls == [1] and worker.snapshot.truncation is None  # tried once: again at the next probe only
    assert "the truncation advisor's report failed" in caplog.text


async def test_a_loaded_forecaster_gets_its_own_report_even_at_the_same_probe_count() -> None:
    # The report was remade only when the probe count moved: after an import of a model with as
    # many probes, the advisor showed the old model's series and reach.
    config = ForecasterConfig(hidden_size=4, k1=2, k2=4, probe_every=2, hybrid=False)
    old, new = Forecaster(config), Forecaster(config)
    for t in range(40):
        old.observe_many([("old", float(t % 5))])
        new.observe_many([("new", float(t % 3))])
    assert old.probe.probes == new.probe.probes > 0
    worker, _ = make_worker(old)
    assert set(worker.snapshot.truncation.dependencies) == {"old"}
    worker.load(new, {}, seq=0)
    worker.publish()
    assert set(worker.snapshot.truncation.dependencies) == {"new"}


async def test_a_recorder_journal_sees_no_empty_batch_for_a_keyed_request_of_repeats_alone() -> None:
    # the keys of a request that applies nothing are journaled in a record of no observations; a journal
    # that only records batches (``append``) keeps no keys, and is not handed an empty one
    worker, journal = make_worker()
    worker.start()
    try:
        first = await worker.observe([Observation("a", 1.0, 60.0)])
        repeat = await worker.observe([Observation("a", 1.0, 60.0)], key="k")
        again = await worker.observe([Observation("a", 1.0, 60.0)], key="k")
        assert repeat.results == again.results == first.results
        assert journal.batches == [[Observation("a", 1.0, 60.0)]]
    finally:
        worker.stop()
        worker.join()
