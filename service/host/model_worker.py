"""ModelWorker: the one thread that owns a model's Forecaster and applies its observations.

Requests never touch the forecaster. An observation request becomes a *job* in the
worker's queue and awaits an asyncio future. The worker takes a job, keeps
collecting more for up to ``max_wait_s`` or ``max_observations`` (dynamic
batching, as in Triton), admits each job on its own (``admission``: a bad one
fails alone and nothing of it is applied), writes the merged batch to the
journal, applies it with ONE ``observe_many`` (the library keeps each series'
order: its k-th value in the batch goes into tick k) while the journal's fsync
runs, waits for that fsync, then publishes a new snapshot and settles the futures
on their event loop: nothing is seen or acknowledged before it is durable. When the
jobs collected include long ones (several values of a series: several ticks), the
short ones go first in their own batch and the rest right after
(:mod:`tbptt_service.host.fair_batches`). A batch that includes a long request and holds more than
``chunk_ticks`` ticks is applied a chunk at a time, and the short requests that arrive
meanwhile are applied between its chunks (:mod:`tbptt_service.host.long_batches`). Requests with an
idempotency key are answered once (:mod:`tbptt_service.host.keyed_requests`). A batch
whose fsync fails is answered with the error, and the model accepts no more changes
(it holds a batch the log may not): a restart recovers what the log holds.

Readers (forecasts, series statistics, model info) use ``snapshot``: an atomic
reference to a :class:`ModelSnapshot` holding a ``ForecasterView``, a consistent
read-only moment of the model. They share no lock with the worker, so a forecast
never waits for an update.

Every other change of the model (forget a series, import a checkpoint, delete the
model) and a checkpoint's capture of its state also run on the worker thread, as
jobs in the same queue: each change is journaled before it is made, and ``seq``
(the last log record the model's state includes) stays exact for recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import torch

from tbptt_online import Forecaster, StepResult
from tbptt_online.advisor import TruncationReport
from tbptt_online.results import StepResults
from tbptt_service.errors import (
    ApiError,
    Busy,
    LogDown,
    NotFound,
    Quarantined,
)
from tbptt_service.host.admission import BatchAdmission, SeriesMark, Source
from tbptt_service.host.applied_keys import AppliedKeys, KeyedAnswer
from tbptt_service.host.cadence import GAP_BATCH_FACTOR, UNKNOWN
from tbptt_service.host.chunked_run import ChunkedRun
from tbptt_service.host.fair_batches import short_first, ticks, within_allowance
from tbptt_service.host.guard_log import GuardLog
from tbptt_service.host.keyed_requests import KeyedRequests
from tbptt_service.host.log_refusal import refusal
from tbptt_service.host.long_batches import LongBatches
from tbptt_service.host.memory_budget import SeriesLimit
from tbptt_service.host.metrics import ServiceMetrics
from tbptt_service.host.model_snapshot import ModelSnapshot, ObserveOutcome
from tbptt_service.host.model_state import ModelState
from tbptt_service.host.recent_results import RecentResults, SavedRings
from tbptt_service.host.worker_jobs import STOP, CallJob, Job, ObserveJob, settle_all
from tbptt_service.storage.journal import (
    DELETE_MODEL,
    FORGET_SERIES,
    RESET_LEARNING_RATE,
    Journal,
    NullJournal,
    PendingAppend,
    with_changes,
)
from tbptt_service.storage.observation import Observation

logger = logging.getLogger("tbptt_service.host.model_worker")
T = TypeVar("T")


class ModelWorker(LongBatches, KeyedRequests):
    """Owns one Forecaster; ``start()`` its thread, ``stop()`` + ``join()`` to drain and end it.
    Its long batches' scheduling and its idempotency keys are its parts ``LongBatches`` and
    ``KeyedRequests``.

    >>> import asyncio
    >>> from tbptt_online import ForecasterConfig
    >>> worker = ModelWorker("m", Forecaster(ForecasterConfig(hidden_size=4)), metrics=ServiceMetrics())
    >>> worker.start()
    >>> outcome = asyncio.run(worker.observe([Observation("a", 1.0), Observation("a", 2.0)]))
    >>> [r.step for r in outcome.results], worker.snapshot.series_count
    ([1, 2], 1)
    >>> worker.stop(); worker.join()
    """

    def __init__(
        self,
        name: str,
        forecaster: Forecaster,
        *,
        metrics: ServiceMetrics,
        journal: Journal | None = None,
        max_series: int = 100_000,
        max_batch_observations: int = 10_000,
        max_wait_s: float = 0.002,
        chunk_ticks: int = 1,
        max_gap_steps: int = 0,
        max_queued_observations: int = 200_000,
    ) -> None:
        self.name = name
        self.forecaster = forecaster
        self.metrics = metrics
        self.journal = with_changes(journal if journal is not None else NullJournal())
        self.seq = 0  # the last event-log record this model's state includes (0: none or no log)
        self.max_series = max_series
        # How many series the model may hold now (the registry's memory budgets), asked only for
        # a batch that adds series; None: max_series alone.
        self.series_limit: Callable[[], SeriesLimit] | None = None
        # Held while a batch that may add series is admitted (the registry's, shared by its models): a limit
        # asked and the series admitted under it are counted by the others' limits before theirs are asked.
        self.admitting: threading.Lock | None = None
        self.pending_series = 0  # the series held once the admitted batch is applied (0: none pending)
        self.max_batch_observations = max_batch_observations
        # Observations its requests hold, queued or being applied, at most: past it a request gets 503 (a hostile
        # test, session 50: 150 requests of 5,000 observations queued behind a long one added 360 MB, unbounded)
        self.max_queued_observations = max_queued_observations
        self._queued_observations = 0  # (the event loop's alone: counted in observe, before and after its job)
        self.max_wait_s = max_wait_s
        self.chunk_ticks = chunk_ticks  # ticks of a long batch applied between two looks at the queue
        self.max_gap_steps = max_gap_steps  # missing steps inserted per request, at most (admission, cadence)
        self._marks: dict[str, SeriesMark] = {}
        self.keys = AppliedKeys()  # the recent requests' idempotency keys and answers
        self.recent = RecentResults()  # what the dashboard draws: values beside the forecasts made for them
        self._marks_changed = True  # copied into the next snapshot only when changed
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._waiting: deque[Any] = deque()  # jobs taken from the queue and set aside: they go first, in order
        self._chunked: ChunkedRun | None = None  # a long batch being applied a chunk at a time
        self._chunked_jobs: list[tuple[ObserveJob, list[Source]]] = []  # its requests (none after a recovery)
        self._chunked_durable: Callable[[], None] = PendingAppend(None).wait_durable  # its record's fsync (LongBatches)
        self._unsynced: ApiError | None = None  # set when a batch was applied but its fsync failed
        self.quarantined: str | None = None  # why, when a journaled batch failed to apply (no checkpoint then)
        # Why, when a record's fsync failed: the state holds what the log may not, so no checkpoint is written
        # (it would make that state the durable one, without the answers' keys; recovery from the log decides)
        self.unconfirmed: str | None = None
        self._closed = False
        self.retiring = False  # its deletion is queued: it waits for the jobs before it, nothing joins them
        self._submit_lock = threading.Lock()  # no job may enter the queue after STOP
        self._thread = threading.Thread(target=self._run, name=f"model-worker-{name}", daemon=True)
        # the forecaster and probe count the snapshot's truncation report (or its failure) is of
        self._reported: tuple[Forecaster | None, int] = (None, -1)
        self._snapshot = self._take_snapshot()

    # -- the reader's side (any thread) ------------------------------------------------
    @property
    def snapshot(self) -> ModelSnapshot:
        return self._snapshot  # one attribute read: atomic, no lock shared with the worker

    def queued_observations(self) -> int:
        """The observations its requests hold, queued or being applied (``TBPTT_MAX_QUEUED_OBSERVATIONS``)."""
        return self._queued_observations

    @property
    def queued_jobs(self) -> int:
        return self._queue.qsize() + len(self._waiting)

    # -- the requester's side (the event loop) ------------------------------------------
    async def observe(self, observations: list[Observation], key: str | None = None) -> ObserveOutcome:
        """Apply one request's observations atomically; raises ``ApiError`` naming the problem. A
        request whose ``key`` the model knows gets the first answer to that key, and nothing is applied."""
        count = len(observations)
        if self._queued_observations and self._queued_observations + count > self.max_queued_observations:
            busy = Busy(
                f"model {self.name!r} holds {self._queued_observations} observations waiting to be applied; "
                f"{count} more would pass TBPTT_MAX_QUEUED_OBSERVATIONS={self.max_queued_observations}: nothing of "
                "this request was applied, retry in a second"
            )
            self.metrics.record_rejection(self.name, busy.status_code)  # (missing: a review's, session 51)
            raise busy
        loop = asyncio.get_running_loop()
        job = ObserveJob(loop, loop.create_future(), observations, key)
        self._submit(job)
        self._queued_observations += count
        job.future.add_done_callback(lambda done: self._settled(done, count))
        # shielded: a request that stops waiting (its client gone) leaves its job queued, and counted, until the
        # worker has applied it (a review's, session 50: cancelled, it was uncounted while still queued)
        return await asyncio.shield(job.future)

    def _settled(self, future: asyncio.Future, count: int) -> None:
        """An observe job was answered (on the event loop): its observations are no longer waiting."""
        self._queued_observations -= count
        if not future.cancelled():
            future.exception()  # (read: an answer no request waits for any more is not reported as unread)

    async def forget(self, series: str) -> None:
        await self.call(lambda: self._forget(series), holds=frozenset({series}))  # (later values of it after it)

    async def reset_learning_rate(self) -> None:
        """Undo the instability guards' learning-rate back-offs (journaled first, like a forget)."""
        await self.call(self._reset_learning_rate, holds=frozenset())

    def capture_job(self) -> asyncio.Future[ModelState]:
        """Queue a ``capture`` (a checkpoint's or an export's; call it on the event loop): it runs after the
        jobs queued before it, and holds back no later request (they are concurrent with it: a capture that
        includes them is as right as one that does not, and its ``seq`` says which)."""
        return self.call(self.capture, holds=frozenset())

    def _reset_learning_rate(self) -> None:
        seq = self.record_change(RESET_LEARNING_RATE, {})
        self.forecaster.reset_learning_rate()
        self.seq = seq
        self.publish()

    def call(
        self, run: Callable[[], T], *, ends_thread: bool = False, holds: frozenset[str] | None = None
    ) -> asyncio.Future[T]:
        """Queue ``run`` to run on the worker thread after the jobs already queued (call it on the
        event loop). ``ends_thread``: refuse new jobs from now on and end the thread once ``run``
        succeeds; when it raises, the worker goes on as before. ``holds``: the series whose later
        values must be applied after it (``CallJob.holds``; None: every later request, the default)."""
        loop = asyncio.get_running_loop()
        job = CallJob(loop, loop.create_future(), run, ends_thread, holds)
        self._submit(job, closing=ends_thread)
        return job.future

    async def retire(self) -> None:
        """Delete the model: apply the jobs already queued, journal the deletion (507 when the journal
        is full: the model goes on), end the thread."""
        with self._submit_lock:
            self.retiring = not self._closed
        await self.call(self._record_deletion, ends_thread=True)

    def _record_deletion(self) -> int:
        """Journal the model's deletion (on the worker thread). A model quarantined here (a journaled batch
        failed to apply) is deleted too: the log takes writes, and the deletion lifts the quarantine, as for a
        model quarantined at recovery (recovery skips its records up to the deletion). Until session 60 the
        quarantine refused it (503 "delete it to start it afresh", for good: a hostile test). A model whose
        record's fsync failed (``unconfirmed``) refuses it as any change."""
        if self.quarantined is not None and self.unconfirmed is None:
            seq = self._journaled(lambda: self.journal.record(self.name, DELETE_MODEL, {}), "change", "changed")
            return seq if seq is not None else self.seq
        return self.record_change(DELETE_MODEL, {})

    def _submit(self, job: Job, closing: bool = False) -> None:
        with self._submit_lock:
            if self._closed:
                raise NotFound(self.gone())
            self._closed = closing
            self._queue.put(job)

    def refused(self) -> str | None:
        """Why the model takes no more requests (``gone``), None while it takes them."""
        return self.gone() if self._closed else None

    def gone(self) -> str:
        """Why the model takes no more requests: its deletion is queued (the requests before it are
        still applied; until session 35 a request then read "unknown (it was deleted or the service is
        stopping)" while the model was still listed, a hostile client), or the service is stopping."""
        if self.retiring:
            return f"model {self.name!r} is being deleted (its DELETE waits for the requests queued before it)"
        return f"model {self.name!r} is unknown (it was deleted or the service is stopping)"

    # -- life cycle ------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Refuse new jobs; the thread drains those already queued, then ends."""
        with self._submit_lock:
            if not self._closed:
                self._closed = True
                self._queue.put(STOP)

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- the state-changing paths (live jobs and journal recovery alike) ----------------------
    def apply(self, observations: Sequence[Observation], *, record_recent: bool = True) -> StepResults:
        """Apply one admitted batch: one ``observe_many``, the series' timestamp marks and (unless
        ``record_recent`` is False: the caller records them later) the recent values.

        Call it from the worker thread, or before ``start()`` (recovery applies the
        journal's batches through it, in order); then ``publish()``. The results come
        back lazy, their ticks' lists already built here (``recent`` reads them), so
        that no torch work is left for whoever reads them on the event loop.
        """
        results = self.forecaster.observe_many([(o.series, o.value) for o in observations])
        for i, obs in enumerate(observations):
            if obs.timestamp is not None:  # only these need a StepResult of their own (idempotent repeats)
                result, last = results[i], self._marks.get(obs.series)
                cadence = UNKNOWN if last is None else last.cadence.after(obs.timestamp - last.timestamp)
                self._marks[obs.series] = SeriesMark(obs.timestamp, result.value, result, cadence=cadence)
                self._marks_changed = True
        if record_recent:
            self.recent.record(observations, results)
        for tick in results.ticks:
            tick.lists()  # built once, on this thread (a no-op when ``recent`` did it)
        return results

    def apply_forget(self, series: str) -> None:
        """Forget a series (call it like ``apply``)."""
        self.forecaster.forget(series)
        self.recent.forget(series)
        if self._marks.pop(series, None) is not None:
            self._marks_changed = True

    def load(
        self,
        forecaster: Forecaster,
        marks: Mapping[str, SeriesMark],
        seq: int,
        keys: Sequence[tuple[str, KeyedAnswer]] | None = None,
        recent: SavedRings | None = None,
    ) -> None:
        """Make ``forecaster`` and ``marks`` (and ``keys``, unless None: an imported checkpoint keeps
        the model's own) the model's state, which includes log record ``seq`` (call it like
        ``apply``). The recent values shown beside forecasts are ``recent`` (a checkpoint's), or
        start afresh (an import, or a checkpoint that holds none)."""
        if keys is not None:
            self.keys = AppliedKeys()
            for key, answer in keys:
                self.keys.remember(key, answer.digest, answer.batch, answer.sources, answer.update_count)
        self.forecaster = forecaster
        self._marks = dict(marks)
        self._marks_changed = True
        self.recent = RecentResults.restored(recent)
        self.seq = seq

    def capture(self) -> ModelState:
        """The model's complete state (call it on the worker thread, through ``call``, or when the
        thread is not running): the series' tensors shared, or the rows of its series copied where
        the store has spare rows (``SeriesStore.state_dict``).
        Refused while a long batch is half applied (the worker runs captures only between them)."""
        if self._chunked is not None:
            raise RuntimeError(f"model {self.name!r} is half way through batch log seq {self._chunked.seq}")
        return ModelState(
            self.name,
            self.seq,
            self.forecaster.state_dict(),
            dict(self._marks),
            tuple(self.keys.items()),
            self.recent.saved(),  # the dashboard's values and forecasts, as they stand with this state
        )

    def publish(self) -> None:
        """Make the forecaster's current state what readers see."""
        self._snapshot = self._take_snapshot()
        if self._snapshot.series_count >= self.pending_series and self.unconfirmed is None:
            self.pending_series = 0  # the admitted series are counted by the snapshot now

    @property
    def series_held(self) -> int:
        """The series this model holds for the memory budgets: those published, or more where a batch admitted
        new ones that are not published yet (a hostile test, session 50: four models admitting 1,000 new
        series each at once each counted the others' published 0 and overran the process budget by 36 %)."""
        return max(self.snapshot.series_count, self.pending_series)

    def _take_snapshot(self) -> ModelSnapshot:
        f = self.forecaster
        marks = dict(self._marks) if self._marks_changed else self._snapshot.marks
        self._marks_changed = False
        previous = getattr(self, "_snapshot", None)
        truncation = previous.truncation if previous is not None else None
        # the advisor's report moves with the probes, and with the forecaster (a load or an import)
        if self._reported[0] is not f or self._reported[1] != f.probe.probes:  # a failed one waits for them too
            truncation = self._truncation(f)
        stats = f.update_stats()
        if previous is None:
            self._guard_log = GuardLog(self.name, stats)
        else:
            self._guard_log.update(stats)
        return ModelSnapshot(f.view(), stats, f.observations, len(f.store), marks, truncation)

    def _truncation(self, f: Forecaster) -> TruncationReport | None:
        """The advisor's report on ``f``; None, logged, if it fails: a report is advice, and a
        snapshot that cannot be taken would end the worker (its requesters never answered) and
        stop a restart's recovery for every model."""
        self._reported = (f, f.probe.probes)
        try:
            return f.truncation()
        except Exception:
            logger.exception("model %r: the truncation advisor's report failed; none is shown", self.name)
            return None

    # -- the worker thread ------------------------------------------------------------
    def _run(self) -> None:
        # OpenMP keeps its thread count per thread: take the process's (the app sets it at start),
        # or this thread's torch work runs with OpenMP's default (all cores: many times slower
        # on a busy machine).
        torch.set_num_threads(torch.get_num_threads())
        while True:
            if self._chunked is not None:  # a long batch: one chunk, then what may go between two
                self._guarded([job for job, _ in self._chunked_jobs], self._next_chunk)
                if self._chunked is not None:
                    self._between_chunks()
                continue
            job = self._take()
            if job is STOP:
                return
            if isinstance(job, CallJob):
                if self._call(job) and job.ends_thread:
                    return
                continue
            batch = self._collect(job)
            parts = self._parts(batch)  # the short ones first, then the rest (fair_batches)
            for k, indices in enumerate(parts):
                part = [batch[i] for i in indices]
                self._guarded(part, lambda part=part: self._process(part))
                if self._chunked is not None:  # a long part, applied a chunk at a time: the rest come after it
                    self._waiting.extendleft(reversed([batch[i] for rest in parts[k + 1 :] for i in rest]))
                    break

    def _parts(self, batch: list[ObserveJob]) -> list[list[int]]:
        """The indices of ``batch`` in the batches to apply, in order: the short requests first, then
        the rest (``fair_batches.short_first``), each cut where the missing steps its requests' gaps
        insert would pass a batch's allowance (``fair_batches.within_allowance``)."""
        if len(batch) == 1:
            return [[0]]  # (one: nothing to split)
        steps = self._steps_of(batch)  # per request: its values' series and those of the steps it inserts
        inserted = [len(series) - len(job.observations) for series, job in zip(steps, batch, strict=True)]
        allowance = GAP_BATCH_FACTOR * self.max_gap_steps
        return [part for group in short_first(steps) for part in within_allowance(group, inserted, allowance)]

    def _take(self, timeout: float | None = None) -> Any:
        """The next job: those set aside first, then the queue's (``queue.Empty`` after ``timeout``)."""
        if self._waiting:
            return self._waiting.popleft()
        return self._queue.get(timeout=timeout)

    def _guarded(self, jobs: list[ObserveJob], work: Callable[[], None]) -> None:
        """``work()``; a bug must not hang the requesters or kill the thread: they are answered 500. Once no
        long batch is under way, no admitted series is pending any more (applied and published, or refused:
        left set after a refused batch and deletions, it counted series that no longer existed, a review's)."""
        try:
            work()
        except Exception as error:
            logger.exception("applying a batch of model %r failed", self.name)
            if self._chunked is not None and (
                self.quarantined is not None or (self._chunked_jobs and self._chunked_jobs[0][0] in jobs)
            ):  # applying failed: the model is quarantined, and its long batch is given up (retried, it
                # failed again and again, a review's, session 50); its requests are answered with the error
                # too, also when the batch that failed was a short one between two of its chunks (they hung)
                jobs = [*jobs, *(job for job, _ in self._chunked_jobs if job not in jobs)]
                self._chunked, self._chunked_jobs = None, []
            self.publish()
            for failed in jobs:
                self._settle(failed, None, ApiError(f"internal error while applying the batch: {error!r}"))
        if self._chunked is None and self.unconfirmed is None:  # (unconfirmed: its series stay counted)
            self.pending_series = 0

    def _collect(self, first: ObserveJob) -> list[ObserveJob]:
        """More jobs for this batch, until the wait or the size runs out; a non-observe job ends it
        (it and a job that does not fit are set aside: they come next)."""
        batch, size = [first], len(first.observations)
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_batch_observations:
            try:
                job = self._take(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if not isinstance(job, ObserveJob) or size + len(job.observations) > self.max_batch_observations:
                self._waiting.appendleft(job)
                break
            batch.append(job)
            size += len(job.observations)
        return batch

    def _steps_of(self, jobs: list[ObserveJob]) -> list[list[str]]:
        """Per job, the series of the ticks' values it would add to a batch of ``jobs``: its own (an
        idempotent repeat of another job's value too: a retry of a request waiting behind a long
        batch must wait behind it as well), and, before a value that comes after a timestamp gap,
        the missing steps admission inserts (a dry run of admission: nothing is applied, nobody
        answered; each gap filled as if it were the batch's only one). A request of one value per
        series whose gap inserts steps is long: it does not go before, or between the chunks of, a
        long batch (a single POST opening a gap of 1,000 steps held the requests batched with it,
        or applied between two chunks, for all 1,001 ticks)."""
        plain = [[o.series for o in job.observations] for job in jobs]
        if not self.max_gap_steps or all(o.timestamp is None for job in jobs for o in job.observations):
            return plain  # nothing can insert a step
        admission = BatchAdmission(
            self.forecaster,
            self._marks,
            self.max_series,
            max_gap_steps=self.max_gap_steps,
            gap_allowance=len(jobs) * self.max_gap_steps,
        )
        try:
            admission.admit_all([job.observations for job in jobs])
        except Exception:  # (outside _guarded: a bug here must not end the worker's thread)
            logger.exception("counting the ticks of a batch of model %r failed; counting its values", self.name)
            return plain  # the real admission, guarded, answers for any such bug
        steps = []
        for job, own, span in zip(jobs, plain, admission.spans, strict=True):
            mine = {id(o) for o in job.observations}  # admission stages a job's own observations as they are
            inserted = [] if span is None else [o for o in admission.merged[span[0] : span[1]] if id(o) not in mine]
            steps.append(own + [o.series for o in inserted])  # its own values counted, repeats too
        return steps

    def _admit(self, jobs: list[ObserveJob]) -> tuple[list[tuple[ObserveJob, list[Source]]], list[Observation], bool]:
        """The jobs admitted (the others answered with their error), their merged observations, and
        whether missing steps were inserted among them (a gap: tbptt_service.host.cadence); none while
        the model accepts no changes (every job answered with the reason)."""
        if self._unsynced is not None:
            for job in jobs:
                self._fail(job, self._unsynced)
            return [], [], False
        jobs = self._answer_known_keys(jobs)
        admission = BatchAdmission(
            self.forecaster,
            self._marks,
            self.max_series,
            self.series_limit,
            max_gap_steps=self.max_gap_steps,
            gap_allowance=GAP_BATCH_FACTOR * self.max_gap_steps,
        )
        admitted: list[tuple[ObserveJob, list[Source]]] = []
        slots = self.forecaster.store.slots
        adds = self.admitting is not None and any(o.series not in slots for job in jobs for o in job.observations)
        with self.admitting if adds else contextlib.nullcontext():  # (type: the registry's lock, when any)
            outcomes = admission.admit_all([job.observations for job in jobs])
            if adds and admission.new_series:  # counted by the other models' limits from now on, not once published
                self.pending_series = len(self.forecaster.store) + len(admission.new_series)
        for job, outcome in zip(jobs, outcomes, strict=True):
            if isinstance(outcome, ApiError):
                self._fail(job, outcome)
            else:
                admitted.append((job, outcome))
        return admitted, admission.merged, admission.inserted > 0

    def _process(self, jobs: list[ObserveJob]) -> None:
        admitted, merged, padded = self._admit(jobs)
        chunkable = self._chunked is None and (padded or self._long(jobs))  # (between two chunks: applied whole)
        if merged and chunkable and ticks([o.series for o in merged]) > self.chunk_ticks:
            self._begin_chunked(merged, admitted)
            return
        results: Sequence[StepResult] = ()
        keyed, keys = self._keyed(admitted)
        # a keyed request whose every element repeats a value the model has applies nothing, but its key
        # is journaled all the same (a record of no observations): remembered in memory alone, it was
        # lost in a crash, and its retry got 409 or, its series deleted meanwhile, was applied as new
        if merged or keys:
            try:
                pending = self._journaled(
                    lambda: self.journal.begin_append(self.name, merged, keys), "batch", "applied"
                )
            except ApiError as error:
                self.pending_series = 0  # nothing of it applied
                for job, _ in admitted:
                    self._fail(job, error)
                return
            attempts_before = self.forecaster.engine.attempts
            started = time.perf_counter()
            try:
                results = self.apply(merged, record_recent=False)  # the record is written; its fsync runs meanwhile
            except Exception as error:  # the log holds a batch the model could not apply: its state is unknown
                self._quarantine(pending.seq, error)
                raise  # answered 500 by _guarded; every later change gets 503, and a restart quarantines it
            seconds = time.perf_counter() - started
            if pending.seq is not None:
                self.seq = pending.seq
            if not self._wait_durable(pending, [job for job, _ in admitted]):
                return
            if merged:
                self.recent.record(merged, results)  # readers see the batch only once it is durable
                self.publish()
                self._record_batch(len(admitted), len(merged), seconds, attempts_before)
        update_count = self.forecaster.engine.updates
        self._remember(keyed, results, update_count)  # durable: a retry is answered, never applied again
        self._settle_all([(job, ObserveOutcome(results, sources, update_count), None) for job, sources in admitted])

    def _quarantine(self, seq: int | None, error: Exception) -> None:
        """A journaled batch or chunk failed to apply: the model's state is unknown."""
        self.quarantined = f"a journaled batch (log seq {seq}) failed to apply: {error!r}"
        self._unsynced = Quarantined(self.name, self.quarantined)

    def _wait_durable(self, pending: PendingAppend, jobs: list[ObserveJob]) -> bool:
        """Wait for a record's fsync; when it fails, the jobs are answered with the error, the
        model accepts no more changes, and False."""
        try:
            self._journaled(pending.wait_durable, "batch", "acknowledged")
        except ApiError as error:  # applied, but not known to be durable: nothing more is accepted
            self._unconfirmed_since(error)
            self._unsynced = type(error)(
                f"the event log could not confirm a batch as durable ({error.detail}); this model accepts "
                "no more changes until the service restarts (recovery applies what the log holds)"
            )
            for job in jobs:
                self._fail(job, self._unsynced)
            return False
        return True

    def _unconfirmed_since(self, error: ApiError) -> None:
        """A record's fsync failed: the model holds what the log may not. No checkpoint is written (the log
        decides at the restart), and the memory budgets count the series it holds, published or not."""
        self.unconfirmed = error.detail
        self.pending_series = max(self.pending_series, len(self.forecaster.store))

    def _record_batch(self, requests: int, observations: int, seconds: float, attempts_before: int) -> None:
        updated = self.forecaster.engine.attempts > attempts_before
        self.metrics.record_batch(
            self.name, requests=requests, observations=observations, seconds=seconds, updated=updated
        )

    def _call(self, job: CallJob) -> bool:
        """Run a job's function and settle its future; True when it succeeded."""
        try:
            result = job.run()
        except Exception as error:
            if not isinstance(error, ApiError):  # a bug: reported to the requester and logged, not hidden
                logger.exception("a job of model %r failed", self.name)
                error = ApiError(f"internal error: {error!r}")
            if job.ends_thread:
                with self._submit_lock:
                    self._closed = self.retiring = False  # the model goes on
            self._settle(job, None, error)
            return False
        self._settle(job, result, None)
        return True

    def _forget(self, series: str) -> None:
        if series not in self.forecaster.store.slots:
            raise NotFound(f"series {series!r} is unknown in model {self.name!r}")
        seq = self.record_change(FORGET_SERIES, {"series": series})
        self.apply_forget(series)
        self.seq = seq
        self.publish()

    def record_change(self, kind: str, payload: dict[str, Any]) -> int:
        """Journal a change before making it (on the worker thread): the seq the model's state
        includes once it is made; ``InsufficientStorage`` (507) when the journal is full."""
        if self._unsynced is not None:
            raise self._unsynced
        seq = self._journaled(lambda: self.journal.record(self.name, kind, payload), "change", "changed")
        return seq if seq is not None else self.seq

    def _journaled(self, write: Callable[[], T], what: str, done: str) -> T:
        """``write()`` to the journal: ``InsufficientStorage`` (507) when it is full, ``LogDown``
        (503) when its log cannot be reached or written (an I/O error), ``ApiError`` (500) when it fails
        otherwise; either way nothing was done."""
        try:
            return write()
        except Exception as error:
            answer = refusal(error)
            if answer is None:  # reported to every requester and logged, not hidden
                logger.exception("the journal failed for model %r", self.name)
                raise ApiError(f"the journal failed ({error!r}); nothing was {done}") from None
            if answer is LogDown:  # unreachable, another writer owns the stream now, or an I/O error (a failed
                # fsync's EIO): no bug, a 503 naming it (a superseded one was a 500 while /readyz said ready, an
                # operator's test, session 58; an OSError a 500 until session 59)
                logger.error("the journal of model %r cannot record to its log: %s", self.name, error)
            raise answer(f"the journal cannot record this {what} ({error}); nothing was {done}") from None

    def _fail(self, job: Job, error: ApiError) -> None:
        self.metrics.record_rejection(self.name, error.status_code)
        self._settle(job, None, error)

    @staticmethod
    def _settle(job: Job, result: Any, error: BaseException | None) -> None:
        settle_all([(job, result, error)])

    _settle_all = staticmethod(settle_all)
