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
(:mod:`service.host.fair_batches`). A batch that includes a long request and holds more than
``chunk_ticks`` ticks is not applied in one call: it is journaled whole, once, and applied
``chunk_ticks`` ticks at a time (:mod:`service.host.chunked_run`), each chunk journaled as a
small record before it is applied; between two chunks, the short requests that arrived
meanwhile and hold none of the batch's series (nor of a request waiting behind it) are
applied as a batch of their own and answered, so a single observation waits for one chunk,
not for every tick of a long batch. Every other job that arrives meanwhile (a long one, one
of the same series, a call) waits, in order, until the long batch is done; its requests are
answered once all of it is applied and durable. A batch
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
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from service.errors import (
    ApiError,
    InsufficientStorage,
    LogDown,
    LogUnavailable,
    NotFound,
    Quarantined,
    StorageFullError,
    Unprocessable,
)
from service.host.admission import BatchAdmission, SeriesMark, Source
from service.host.applied_keys import AppliedKeys, KeyedAnswer, digest_of
from service.host.chunked_run import ChunkedRun
from service.host.fair_batches import between_chunks, short_first, ticks
from service.host.guard_log import log_guard_events
from service.host.memory_budget import SeriesLimit
from service.host.metrics import ServiceMetrics
from service.host.model_snapshot import ModelSnapshot, ObserveOutcome
from service.host.model_state import ModelState
from service.host.recent_results import RecentResults
from service.storage.journal import (
    DELETE_MODEL,
    FORGET_SERIES,
    RESET_LEARNING_RATE,
    Journal,
    NullJournal,
    PendingAppend,
    with_changes,
)
from service.storage.log_journal import observations_of
from service.storage.observation import Observation
from tbptt_online import Forecaster, StepResult
from tbptt_online.results import StepResults

logger = logging.getLogger("service.host.model_worker")
T = TypeVar("T")


@dataclass
class _Job:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


@dataclass
class _ObserveJob(_Job):
    observations: list[Observation]
    key: str | None = None  # the request's Idempotency-Key (service.host.applied_keys)
    digest: str = ""  # its content, as the key is tied to it (set on the worker thread)


@dataclass
class _CallJob(_Job):
    run: Callable[[], Any]  # runs on the worker thread between two batches
    ends_thread: bool = False  # the model's last job (deletion): the thread ends once it succeeds


_STOP = object()


class ModelWorker:
    """Owns one Forecaster; ``start()`` its thread, ``stop()`` + ``join()`` to drain and end it.

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
        self.max_batch_observations = max_batch_observations
        self.max_wait_s = max_wait_s
        self.chunk_ticks = chunk_ticks  # ticks of a long batch applied between two looks at the queue
        self._marks: dict[str, SeriesMark] = {}
        self.keys = AppliedKeys()  # the recent requests' idempotency keys and answers
        self.recent = RecentResults()  # what the dashboard draws: values beside the forecasts made for them
        self._marks_changed = True  # copied into the next snapshot only when changed
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._waiting: deque[Any] = deque()  # jobs taken from the queue and set aside: they go first, in order
        self._chunked: ChunkedRun | None = None  # a long batch being applied a chunk at a time
        self._chunked_jobs: list[tuple[_ObserveJob, list[Source]]] = []  # its requests (none after a recovery)
        self._riders: list[tuple[_ObserveJob, list[Source]]] = []  # short requests applied with its next chunk
        self._rider_items: list[Observation] = []  # their admitted observations, merged
        self._unsynced: ApiError | None = None  # set when a batch was applied but its fsync failed
        self.quarantined: str | None = None  # why, when a journaled batch failed to apply (no checkpoint then)
        self._closed = False
        self._submit_lock = threading.Lock()  # no job may enter the queue after _STOP
        self._thread = threading.Thread(target=self._run, name=f"model-worker-{name}", daemon=True)
        self._snapshot = self._take_snapshot()

    # -- the reader's side (any thread) ------------------------------------------------
    @property
    def snapshot(self) -> ModelSnapshot:
        return self._snapshot  # one attribute read: atomic, no lock shared with the worker

    @property
    def queued_jobs(self) -> int:
        return self._queue.qsize() + len(self._waiting)

    # -- the requester's side (the event loop) ------------------------------------------
    async def observe(self, observations: list[Observation], key: str | None = None) -> ObserveOutcome:
        """Apply one request's observations atomically; raises ``ApiError`` naming the problem. A
        request whose ``key`` the model knows gets the first answer to that key, and nothing is applied."""
        loop = asyncio.get_running_loop()
        job = _ObserveJob(loop, loop.create_future(), observations, key)
        self._submit(job)
        return await job.future

    async def forget(self, series: str) -> None:
        await self.call(lambda: self._forget(series))

    async def reset_learning_rate(self) -> None:
        """Undo the instability guards' learning-rate back-offs (journaled first, like a forget)."""
        await self.call(self._reset_learning_rate)

    def _reset_learning_rate(self) -> None:
        seq = self.record_change(RESET_LEARNING_RATE, {})
        self.forecaster.reset_learning_rate()
        self.seq = seq
        self.publish()

    def call(self, run: Callable[[], T], *, ends_thread: bool = False) -> asyncio.Future[T]:
        """Queue ``run`` to run on the worker thread after the jobs already queued (call it on the
        event loop). ``ends_thread``: refuse new jobs from now on and end the thread once ``run``
        succeeds; when it raises, the worker goes on as before."""
        loop = asyncio.get_running_loop()
        job = _CallJob(loop, loop.create_future(), run, ends_thread)
        self._submit(job, closing=ends_thread)
        return job.future

    async def retire(self) -> None:
        """Delete the model: apply the jobs already queued, journal the deletion (507 when the journal
        is full: the model goes on), end the thread."""
        await self.call(lambda: self.record_change(DELETE_MODEL, {}), ends_thread=True)

    def _submit(self, job: _Job, closing: bool = False) -> None:
        with self._submit_lock:
            if self._closed:
                raise NotFound(f"model {self.name!r} is unknown (it was deleted or the service is stopping)")
            self._closed = closing
            self._queue.put(job)

    # -- life cycle ------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Refuse new jobs; the thread drains those already queued, then ends."""
        with self._submit_lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)

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
                result = results[i]
                self._marks[obs.series] = SeriesMark(obs.timestamp, result.value, result)
                self._marks_changed = True
        if record_recent:
            self.recent.record(observations, results)
        for tick in results.ticks:
            tick.lists()  # built once, on this thread (a no-op when ``recent`` did it)
        return results

    @property
    def unfinished(self) -> ChunkedRun | None:
        """The long batch being applied a chunk at a time, if any (recovery may leave one: the
        worker's thread finishes it before anything else of its series)."""
        return self._chunked

    def begin_chunked(self, observations: Sequence[Observation], seq: int | None) -> None:
        """Take a long batch journaled whole as record ``seq``, to apply with ``apply_chunk``
        (call it like ``apply``). Nothing is applied yet."""
        if self._chunked is not None:
            raise ValueError(f"a chunked batch (log seq {self._chunked.seq}) is not finished")
        self._chunked = ChunkedRun(observations, seq)

    def apply_chunk(
        self, request: int | None, ticks: int, extra: Sequence[Observation] = (), *, record_recent: bool = True
    ) -> StepResults:
        """Apply the next ``ticks`` ticks of the chunked batch journaled as record ``request``, and
        in the same ``observe_many`` after them ``extra`` (short requests of other series), (call it
        like ``apply``); the results of that call. The batch is done once no tick remains."""
        run = self._chunked
        if run is None or run.seq != request:
            held = "none" if run is None else f"log seq {run.seq}"
            raise ValueError(f"a chunk of batch log seq {request} came, but the chunked batch being applied is {held}")
        if not 1 <= ticks <= run.remaining:
            raise ValueError(f"a chunk of {ticks} ticks came, but batch log seq {request} has {run.remaining} left")
        chunk = run.chunk(ticks)
        results = self.apply([*chunk, *extra], record_recent=record_recent)
        run.done(results, ticks)
        if run.remaining == 0:
            self._chunked = None
        return results

    def apply_record(self, payload: dict[str, Any]) -> None:
        """Apply an ``observe`` record's batch (recovery; call it like ``apply``) and remember the
        answers of the keys journaled with it, as the live batch did: a key's element that repeated
        an earlier batch's result is journaled as its series, whose mark holds that result before
        the batch is applied."""
        observations = observations_of(payload)
        keys = payload.get("keys", ())
        earlier = {s: self._marks[s].result for _, _, sources in keys for s in sources if type(s) is str}
        results = self.apply(observations)
        for key, digest, sources in keys:
            places = [s if type(s) is int else earlier[s] for s in sources]
            self.keys.remember(key, digest, results, places, self.forecaster.engine.updates)  # type: ignore[arg-type]

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
    ) -> None:
        """Make ``forecaster`` and ``marks`` (and ``keys``, unless None: an imported checkpoint keeps
        the model's own) the model's state, which includes log record ``seq`` (call it like
        ``apply``). The recent values shown beside forecasts start afresh."""
        if keys is not None:
            self.keys = AppliedKeys()
            for key, answer in keys:
                self.keys.remember(key, answer.digest, answer.batch, answer.sources, answer.update_count)
        self.forecaster = forecaster
        self._marks = dict(marks)
        self._marks_changed = True
        self.recent = RecentResults()
        self.seq = seq

    def capture(self) -> ModelState:
        """The model's complete state (call it on the worker thread, through ``call``, or when the
        thread is not running). Cheap: the series' tensors are shared, never written in place.
        Refused while a long batch is half applied (the worker runs captures only between them)."""
        if self._chunked is not None:
            raise RuntimeError(f"model {self.name!r} is half way through batch log seq {self._chunked.seq}")
        return ModelState(
            self.name, self.seq, self.forecaster.state_dict(), dict(self._marks), tuple(self.keys.items())
        )

    def publish(self) -> None:
        """Make the forecaster's current state what readers see."""
        self._snapshot = self._take_snapshot()

    def _take_snapshot(self) -> ModelSnapshot:
        f = self.forecaster
        marks = dict(self._marks) if self._marks_changed else self._snapshot.marks
        self._marks_changed = False
        previous = getattr(self, "_snapshot", None)
        truncation = previous.truncation if previous is not None else None
        if truncation is None or truncation.probes != f.probe.probes:  # the advisor's report moves with the probes
            truncation = f.truncation()
        stats = f.update_stats()
        if previous is not None:
            log_guard_events(self.name, previous.updates, stats)
        return ModelSnapshot(f.view(), stats, f.observations, len(f.store), marks, truncation)

    # -- the worker thread ------------------------------------------------------------
    def _run(self) -> None:
        # OpenMP keeps its thread count per thread: take the process's (the app sets it at start),
        # or this thread's torch work runs with OpenMP's default (all cores: many times slower
        # on a busy machine).
        torch.set_num_threads(torch.get_num_threads())
        while True:
            if self._chunked is not None:  # a long batch: one chunk, then what may go between two
                self._guarded([job for job, _ in self._chunked_jobs + self._riders], self._next_chunk)
                if self._chunked is not None:
                    self._between_chunks()
                continue
            job = self._take()
            if job is _STOP:
                return
            if isinstance(job, _CallJob):
                if self._call(job) and job.ends_thread:
                    return
                continue
            batch = self._collect(job)
            now, later = short_first([[o.series for o in j.observations] for j in batch])
            for part in ([batch[i] for i in now], [batch[i] for i in later]):
                if part:  # the short ones first (service.host.fair_batches), then the rest
                    self._guarded(part, lambda part=part: self._process(part))

    def _take(self, timeout: float | None = None) -> Any:
        """The next job: those set aside first, then the queue's (``queue.Empty`` after ``timeout``)."""
        if self._waiting:
            return self._waiting.popleft()
        return self._queue.get(timeout=timeout)

    def _guarded(self, jobs: list[_ObserveJob], work: Callable[[], None]) -> None:
        """``work()``; a bug must not hang the requesters or kill the thread: they are answered 500."""
        try:
            work()
        except Exception as error:
            logger.exception("applying a batch of model %r failed", self.name)
            if self._chunked is not None and self._chunked_jobs and self._chunked_jobs[0][0] in jobs:
                self._chunked, self._chunked_jobs = None, []  # (applying failed: the model is quarantined)
            self._riders, self._rider_items = [], []
            self.publish()
            for failed in jobs:
                self._settle(failed, None, ApiError(f"internal error while applying the batch: {error!r}"))

    def _collect(self, first: _ObserveJob) -> list[_ObserveJob]:
        """More jobs for this batch, until the wait or the size runs out; a non-observe job ends it
        (it and a job that does not fit are set aside: they come next)."""
        batch, size = [first], len(first.observations)
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_batch_observations:
            try:
                job = self._take(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if not isinstance(job, _ObserveJob) or size + len(job.observations) > self.max_batch_observations:
                self._waiting.appendleft(job)
                break
            batch.append(job)
            size += len(job.observations)
        return batch

    def _between_chunks(self) -> None:
        """Between two chunks of a long batch: the requests that arrived meanwhile and may go now
        (:func:`service.host.fair_batches.between_chunks`) are admitted to ride with its next chunk
        (one ``observe_many``: a tick costs much the same for 1 series as for 100); the others
        wait, in arrival order, until the long batch is done."""
        assert self._chunked is not None
        busy = set(self._chunked.series)
        for waiting in self._waiting:
            if isinstance(waiting, _ObserveJob):
                busy.update(o.series for o in waiting.observations)
        closed = any(not isinstance(waiting, _ObserveJob) for waiting in self._waiting)
        arrivals: list[Any] = []
        while True:
            try:
                arrivals.append(self._queue.get_nowait())
            except queue.Empty:
                break
        # a call, or a request with an idempotency key (applied in batches of its own, whole): None, it waits
        series = [
            [o.series for o in job.observations] if isinstance(job, _ObserveJob) and job.key is None else None
            for job in arrivals
        ]
        picked = set(between_chunks(busy, closed, series, self.max_batch_observations))
        self._waiting.extend(job for i, job in enumerate(arrivals) if i not in picked)
        now = [job for i, job in enumerate(arrivals) if i in picked]
        if now:
            self._guarded(now, lambda: self._admit_riders(now))

    def _answer_known_keys(self, jobs: list[_ObserveJob]) -> list[_ObserveJob]:
        """Answer the jobs whose key the model knows (their first answer; 422 for another request
        under a known key); the rest, to apply. A key twice in one batch: the second waits for the next."""
        fresh: list[_ObserveJob] = []
        seen: set[str] = set()
        for job in jobs:
            if job.key is None:
                fresh.append(job)
                continue
            job.digest = job.digest or digest_of(job.observations)
            known = self.keys.get(job.key)
            if known is not None and known.digest != job.digest:
                self._fail(job, Unprocessable(f"Idempotency-Key {job.key!r} was used for another request"))
            elif known is not None:
                self._settle(job, ObserveOutcome(known.batch, list(known.sources), known.update_count), None)
            elif job.key in seen:
                self._waiting.append(job)
            else:
                seen.add(job.key)
                fresh.append(job)
        return fresh

    def _admit_riders(self, jobs: list[_ObserveJob]) -> None:
        admitted, merged = self._admit(jobs)
        if merged:
            self._riders, self._rider_items = admitted, merged
        else:  # only repeats of known results
            self._settle_all(
                [(job, ObserveOutcome((), s, self.forecaster.engine.updates), None) for job, s in admitted]
            )

    def _admit(self, jobs: list[_ObserveJob]) -> tuple[list[tuple[_ObserveJob, list[Source]]], list[Observation]]:
        """The jobs admitted (the others answered with their error) and their merged observations;
        none while the model accepts no changes (every job answered with the reason)."""
        if self._unsynced is not None:
            for job in jobs:
                self._fail(job, self._unsynced)
            return [], []
        jobs = self._answer_known_keys(jobs)
        admission = BatchAdmission(self.forecaster, self._marks, self.max_series, self.series_limit)
        admitted: list[tuple[_ObserveJob, list[Source]]] = []
        for job, outcome in zip(jobs, admission.admit_all([job.observations for job in jobs]), strict=True):
            if isinstance(outcome, ApiError):
                self._fail(job, outcome)
            else:
                admitted.append((job, outcome))
        return admitted, admission.merged

    def _process(self, jobs: list[_ObserveJob]) -> None:
        admitted, merged = self._admit(jobs)
        unkeyed = all(job.key is None for job, _ in admitted)  # keyed requests' answers are journaled whole
        if merged and unkeyed and self._long(jobs) and ticks([o.series for o in merged]) > self.chunk_ticks:
            self._begin_chunked(merged, admitted)
            return
        results: Sequence[StepResult] = ()
        keyed = [(job, sources) for job, sources in admitted if job.key is not None]
        # A key's sources as journaled: a place in the batch, or the series whose earlier result it repeats.
        keys = [[job.key, job.digest, [s if type(s) is int else s.series for s in sources]] for job, sources in keyed]
        if merged:
            try:
                begin = self.journal.begin_append
                write = (lambda: begin(self.name, merged, keys)) if keys else (lambda: begin(self.name, merged))
                pending = self._journaled(write, "batch", "applied")
            except ApiError as error:
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
            self.recent.record(merged, results)  # readers see the batch only once it is durable
            self.publish()
            self._record_batch(len(admitted), len(merged), seconds, attempts_before)
        update_count = self.forecaster.engine.updates
        for job, sources in keyed:  # durable: a retry of the request is answered, never applied again
            self.keys.remember(job.key, job.digest, results, sources, update_count)  # type: ignore[arg-type]
        self._settle_all([(job, ObserveOutcome(results, sources, update_count), None) for job, sources in admitted])

    @staticmethod
    def _long(jobs: list[_ObserveJob]) -> bool:
        """Whether a request holds several values of a series (only such batches are chunked)."""
        return any(ticks([o.series for o in job.observations]) > 1 for job in jobs)

    def _begin_chunked(self, merged: list[Observation], admitted: list[tuple[_ObserveJob, list[Source]]]) -> None:
        """Journal a long batch whole; ``_next_chunk`` applies it, a chunk at a time."""
        try:
            pending = self._journaled(lambda: self.journal.begin_chunked(self.name, merged), "batch", "applied")
        except ApiError as error:
            for job, _ in admitted:
                self._fail(job, error)
            return
        self.begin_chunked(merged, pending.seq)  # durable with its first chunk's record (the log is in order)
        self._chunked_jobs = admitted
        if pending.seq is not None:
            self.seq = pending.seq

    def _next_chunk(self) -> None:
        """Journal and apply the long batch's next chunk with the short requests riding on it,
        publish once durable, answer those; answer the batch's requests with its last chunk."""
        run, riders, extra = self._chunked, self._riders, self._rider_items
        assert run is not None
        self._riders, self._rider_items = [], []
        jobs = [job for job, _ in self._chunked_jobs + riders]
        if self._unsynced is not None:
            self._chunked, self._chunked_jobs = None, []  # the log holds it: a restart finishes it
            for job in jobs:
                self._fail(job, self._unsynced)
            return
        count = min(self.chunk_ticks, run.remaining)
        chunk = run.chunk(count)
        try:
            pending = self._journaled(
                lambda: self.journal.begin_chunk(self.name, run.seq, count, chunk, extra), "chunk", "applied"
            )
        except ApiError as error:  # the batch is in the log, half applied: nothing may come between
            self._unsynced = type(error)(
                f"{error.detail}; batch log seq {run.seq} is journaled but only partly applied: this model accepts "
                "no more changes until the service restarts (recovery applies the whole batch)"
            )
            self._chunked, self._chunked_jobs = None, []
            for job in jobs:
                self._fail(job, self._unsynced)
            return
        attempts_before = self.forecaster.engine.attempts
        started = time.perf_counter()
        try:
            results = self.apply_chunk(run.seq, count, extra, record_recent=False)  # its fsync runs meanwhile
        except Exception as error:
            self._quarantine(pending.seq, error)
            raise
        seconds = time.perf_counter() - started
        if pending.seq is not None:
            self.seq = pending.seq
        if not self._wait_durable(pending, jobs):
            self._chunked, self._chunked_jobs = None, []
            return
        self.recent.record([*chunk, *extra], results)
        self.publish()
        finished = run.remaining == 0
        done = self._chunked_jobs if finished else []
        self._record_batch(len(done) + len(riders), len(chunk) + len(extra), seconds, attempts_before)
        update_count = self.forecaster.engine.updates
        settled = [  # a rider's results follow the chunk's in the call
            (job, ObserveOutcome(results, [s + len(chunk) if isinstance(s, int) else s for s in sources], update_count))
            for job, sources in riders
        ]
        if finished:
            outcomes, self._chunked_jobs = run.results(), []
            settled += [(job, ObserveOutcome(outcomes, sources, update_count)) for job, sources in done]
        self._settle_all([(job, outcome, None) for job, outcome in settled])

    def _quarantine(self, seq: int | None, error: Exception) -> None:
        """A journaled batch or chunk failed to apply: the model's state is unknown."""
        self.quarantined = f"a journaled batch (log seq {seq}) failed to apply: {error!r}"
        self._unsynced = Quarantined(self.name, self.quarantined)

    def _wait_durable(self, pending: PendingAppend, jobs: list[_ObserveJob]) -> bool:
        """Wait for a record's fsync; when it fails, the jobs are answered with the error, the
        model accepts no more changes, and False."""
        try:
            self._journaled(pending.wait_durable, "batch", "acknowledged")
        except ApiError as error:  # applied, but not known to be durable: nothing more is accepted
            self._unsynced = type(error)(
                f"the event log could not confirm a batch as durable ({error.detail}); this model accepts "
                "no more changes until the service restarts (recovery applies what the log holds)"
            )
            for job in jobs:
                self._fail(job, self._unsynced)
            return False
        return True

    def _record_batch(self, requests: int, observations: int, seconds: float, attempts_before: int) -> None:
        updated = self.forecaster.engine.attempts > attempts_before
        self.metrics.record_batch(
            self.name, requests=requests, observations=observations, seconds=seconds, updated=updated
        )

    def _call(self, job: _CallJob) -> bool:
        """Run a job's function and settle its future; True when it succeeded."""
        try:
            result = job.run()
        except Exception as error:
            if not isinstance(error, ApiError):  # a bug: reported to the requester and logged, not hidden
                logger.exception("a job of model %r failed", self.name)
                error = ApiError(f"internal error: {error!r}")
            if job.ends_thread:
                with self._submit_lock:
                    self._closed = False  # the model goes on
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
        (503) when its log cannot be reached, ``ApiError`` (500) when it fails otherwise; either way
        nothing was done."""
        try:
            return write()
        except StorageFullError as error:
            raise InsufficientStorage(f"the journal cannot record this {what} ({error}); nothing was {done}") from None
        except LogUnavailable as error:
            logger.error("the journal of model %r cannot reach its log: %s", self.name, error)
            raise LogDown(f"the journal cannot record this {what} ({error}); nothing was {done}") from None
        except Exception as error:  # reported to every requester and logged, not hidden
            logger.exception("the journal failed for model %r", self.name)
            raise ApiError(f"the journal failed ({error!r}); nothing was {done}") from None

    def _fail(self, job: _Job, error: ApiError) -> None:
        self.metrics.record_rejection(self.name, error.status_code)
        self._settle(job, None, error)

    @classmethod
    def _settle(cls, job: _Job, result: Any, error: BaseException | None) -> None:
        cls._settle_all([(job, result, error)])

    @staticmethod
    def _settle_all(settlements: list[tuple[_Job, Any, BaseException | None]]) -> None:
        """Settle the jobs' futures on their loops: one wake-up of each loop for them all (each
        wake-up is a write to the loop's self-pipe, and a GIL hand-over to a busy loop)."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Any, BaseException | None]]] = {}
        for settlement in settlements:
            by_loop.setdefault(settlement[0].loop, []).append(settlement)

        def settle(group: list[tuple[_Job, Any, BaseException | None]]) -> None:
            for job, result, error in group:
                if job.future.done():  # the requester went away (cancelled); the batch still counts
                    continue
                if error is None:
                    job.future.set_result(result)
                else:
                    job.future.set_exception(error)

        for loop, group in by_loop.items():
            if not loop.is_closed():
                loop.call_soon_threadsafe(settle, group)
