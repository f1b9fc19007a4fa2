"""LongBatches: how a ModelWorker applies a long batch a chunk at a time (a part of ModelWorker).

A batch that includes a long request (several values of a series: several ticks of the model)
and holds more than ``chunk_ticks`` ticks is not applied in one call: it is journaled whole,
once, and applied ``chunk_ticks`` ticks at a time (:mod:`tbptt_service.host.chunked_run`), each chunk
journaled as a small record before it is applied. Between two chunks, the short requests that
arrived meanwhile and hold none of the batch's series (nor of a request waiting behind it)
(:func:`tbptt_service.host.fair_batches.between_chunks`) are applied as a batch of their own, journaled,
published and answered before the next chunk begins: a single observation waits for the chunk in
progress and its own tick, not for every tick of a long batch, nor for the next chunk (they used
to ride in the next chunk's call, which doubled their wait: issue 11, the mixed load). Every other
job that arrives meanwhile (a long one, one of the same series, a call) waits, in order, until
the long batch is done; its requests are answered once all of it is applied and durable.
A call waiting so holds back only what must stay after it (``CallJob.holds``): a capture (a
checkpoint's, an export's) and a learning-rate reset nothing, a forget the later values of its
series, an import or a deletion every later request. Until session 53 any call held back every
later request: one checkpoint capture queued behind a long batch made each single POST of the
model wait for the whole batch, or a chain of them (5 to 20 s, a hostile test).
Recovery applies the same records in the log's order: ``observe`` records between
``observe_chunk`` ones, through ``begin_chunked`` and ``apply_chunk``; a chunk record of an older
log may hold ``items``, short requests applied in the chunk's call after its ticks.

A mixin of :class:`~tbptt_service.host.model_worker.ModelWorker`: its methods run on the worker's
thread and use the worker's state (the forecaster, the journal, the queue and the jobs set aside)
and its journaling, admission and settling; the long batch's own state is ``_chunked`` (the
:class:`~tbptt_service.host.chunked_run.ChunkedRun`) and ``_chunked_jobs`` (its requests), set up by the
worker.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Sequence
from typing import Any

from tbptt_online.results import StepResults
from tbptt_service.errors import ApiError
from tbptt_service.host.admission import Source
from tbptt_service.host.chunked_run import ChunkedRun, PendingKey
from tbptt_service.host.fair_batches import between_chunks, ticks
from tbptt_service.host.model_snapshot import ObserveOutcome
from tbptt_service.host.worker_jobs import CallJob, ObserveJob
from tbptt_service.storage.journal import PendingAppend
from tbptt_service.storage.observation import Observation


def _held_series(job: Any) -> list[str] | None:
    """A call among the arrivals, as ``between_chunks`` takes it: the series whose later values wait behind it
    (the call itself held: it waits for the batch), or None where every later request waits (``CallJob.holds``)."""
    holds = job.holds if isinstance(job, CallJob) else None
    return None if holds is None else sorted(holds)


class LongBatches:
    """The chunked scheduling of long batches, for ModelWorker (see the module's docstring)."""

    _chunked: ChunkedRun | None
    _chunked_jobs: list[tuple[ObserveJob, list[Source]]]
    _chunked_durable: Callable[[], None]  # waits for the batch's own record to be durable (recovery's: it is)

    @property
    def unfinished(self) -> ChunkedRun | None:
        """The long batch being applied a chunk at a time, if any (recovery may leave one: the
        worker's thread finishes it before anything else of its series)."""
        return self._chunked

    def begin_chunked(
        self, observations: Sequence[Observation], seq: int | None, keys: Sequence[PendingKey] = ()
    ) -> None:
        """Take a long batch journaled whole as record ``seq`` (with the idempotency ``keys`` of its
        requests), to apply with ``apply_chunk`` (call it like ``apply``). Nothing is applied yet."""
        if self._chunked is not None:
            raise ValueError(f"a chunked batch (log seq {self._chunked.seq}) is not finished")
        self._chunked = ChunkedRun(observations, seq, keys)
        self._chunked_durable = PendingAppend(None).wait_durable  # read from the log (the live worker sets its own)

    def apply_chunk(
        self,
        request: int | None,
        ticks: int,
        extra: Sequence[Observation] = (),
        *,
        record_recent: bool = True,
        remember_keys: bool = True,
    ) -> StepResults:
        """Apply the next ``ticks`` ticks of the chunked batch journaled as record ``request``, and
        in the same ``observe_many`` after them ``extra`` (short requests of other series, in older
        logs), (call it like ``apply``); the results of that call. The batch is done once no tick
        remains: then its keys are remembered (unless ``remember_keys`` is False: the live worker
        remembers them once the last chunk is durable)."""
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
            if remember_keys:
                self._remember(run.keys, run.results(), self.forecaster.engine.updates)
        return results

    def _between_chunks(self) -> None:
        """Between two chunks of a long batch: the requests that arrived meanwhile and may go now
        (:func:`tbptt_service.host.fair_batches.between_chunks`) are applied and answered as a batch of
        their own, before the next chunk; the others wait, in arrival order, until the long batch is
        done. A call waiting holds back the later values of the series it ``holds`` (all where None)."""
        assert self._chunked is not None
        busy = set(self._chunked.series)
        closed = False
        for waiting in self._waiting:
            if isinstance(waiting, ObserveJob):
                busy.update(o.series for o in waiting.observations)
            elif isinstance(waiting, CallJob) and waiting.holds is not None:
                busy.update(waiting.holds)  # (a forget's series: its later values come after it)
            else:  # an import, a deletion: every later request comes after it
                closed = True
        arrivals: list[Any] = []
        while True:
            try:
                arrivals.append(self._queue.get_nowait())
            except queue.Empty:
                break
        observing = [job for job in arrivals if isinstance(job, ObserveJob)]
        steps = iter(self._steps_of(observing))  # (a gap's missing steps counted: a request with one waits)
        series = [next(steps) if isinstance(job, ObserveJob) else _held_series(job) for job in arrivals]
        pending = {k.key for k in self._chunked.keys}  # a request under one of them is answered once the batch is done
        # held: those under one of them, and the calls that hold back only some series (a call never goes between
        # two chunks: it sees the batch whole, and recovery takes no other record inside a half applied batch)
        held = frozenset(
            i
            for i, job in enumerate(arrivals)
            if (job.key in pending if isinstance(job, ObserveJob) else series[i] is not None)
        )
        picked = set(between_chunks(busy, closed, series, self.max_batch_observations, held))
        self._waiting.extend(job for i, job in enumerate(arrivals) if i not in picked)
        now = [job for i, job in enumerate(arrivals) if i in picked]
        if now:  # one tick, none of the long batch's series: applied whole
            self._guarded(now, lambda: self._process(now))

    @staticmethod
    def _long(jobs: list[ObserveJob]) -> bool:
        """Whether a request holds several values of a series (only such batches are chunked)."""
        return any(ticks([o.series for o in job.observations]) > 1 for job in jobs)

    def _begin_chunked(self, merged: list[Observation], admitted: list[tuple[ObserveJob, list[Source]]]) -> None:
        """Journal a long batch whole, with its requests' keys; ``_next_chunk`` applies it, a chunk at a time."""
        run_keys, keys = self._keyed(admitted)
        try:
            pending = self._journaled(lambda: self.journal.begin_chunked(self.name, merged, keys), "batch", "applied")
        except ApiError as error:  # (nothing of it applied: ``_guarded`` clears the series it admitted)
            for job, _ in admitted:
                self._fail(job, error)
            return
        self.begin_chunked(merged, pending.seq, run_keys)  # durable with its first chunk's record (the log is in order)
        self._chunked_jobs = admitted
        self._chunked_durable = pending.wait_durable  # (waited for alone only where a chunk's record cannot be written)
        if pending.seq is not None:
            self.seq = pending.seq

    def _next_chunk(self) -> None:
        """Journal and apply the long batch's next chunk, publish once durable; answer the batch's
        requests with its last chunk."""
        run = self._chunked
        assert run is not None
        jobs = [job for job, _ in self._chunked_jobs]
        if self._unsynced is not None:  # (a batch between two chunks could not be confirmed durable)
            if self.quarantined is None:  # (quarantined: its state is unknown, nothing more is applied)
                self._finish_whole(publish=False)
            self._chunked, self._chunked_jobs = None, []
            for job in jobs:
                self._fail(job, self._unsynced)
            return
        count = min(self.chunk_ticks, run.remaining)
        chunk = run.chunk(count)
        try:
            pending = self._journaled(
                lambda: self.journal.begin_chunk(self.name, run.seq, count, chunk), "chunk", "lost"
            )
        except ApiError as error:  # the batch is in the log: applied whole now, and nothing may come after it
            self._unsynced = type(error)(
                f"{error.detail}: batch log seq {run.seq} is in the log whole and was applied whole, without the "
                "records of its last chunks; this model accepts no more changes until the service restarts"
            )
            done = self._chunked_jobs
            self._finish_whole(publish=False, requests=len(done))  # published once its record is durable
            self._answer_whole(run, done)
            return
        attempts_before = self.forecaster.engine.attempts
        started = time.perf_counter()
        try:
            results = self.apply_chunk(run.seq, count, record_recent=False, remember_keys=False)  # fsync meanwhile
        except Exception as error:
            self._quarantine(pending.seq, error)
            raise
        seconds = time.perf_counter() - started
        if pending.seq is not None:
            self.seq = pending.seq
        if not self._wait_durable(pending, jobs):  # (its jobs answered with the error)
            self._finish_whole(publish=False)  # (unconfirmed: not published, as a short batch's, nor checkpointed)
            return
        self.recent.record(chunk, results)
        self.publish()
        if run.remaining > 0:
            self._record_batch(0, len(chunk), seconds, attempts_before)
            return
        done, self._chunked_jobs = self._chunked_jobs, []
        self._record_batch(len(done), len(chunk), seconds, attempts_before)
        update_count, outcomes = self.forecaster.engine.updates, run.results()
        self._remember(run.keys, outcomes, update_count)  # durable: a retry is answered, never applied again
        self._settle_all([(job, ObserveOutcome(outcomes, sources, update_count), None) for job, sources in done])

    def _finish_whole(self, publish: bool = True, requests: int = 0) -> None:
        """Apply what is left of the long batch at once, without chunk records: a batch in the log is never
        left half applied, whatever stops its chunks (a full log, a failed fsync). Half applied, the next
        checkpoint captured it so and pruned its record: a hostile test's batch of 1,500 values met a log
        full after 395 chunks, and 1,105 values were lost (session 50). Recovery, which applies the part of a
        batch that its chunk records do not hold, comes to the same state, provided nothing of the model is
        journaled after it: the caller has set ``_unsynced`` (no more changes until the service restarts).
        ``publish``: readers see it (not where a record's fsync failed: ``unconfirmed``, as a short batch's);
        counted in the metrics as one batch of ``requests`` requests (the rest was missing from them, a review's).
        """
        run, self._chunked_jobs = self._chunked, []
        if run is None or run.remaining == 0:
            self._chunked = None
            return
        attempts_before, started, remaining = self.forecaster.engine.attempts, time.perf_counter(), run.remaining
        observations = sum(len(tick) for tick in run.ticks[run.applied :])  # (the rest's ticks' observations)
        try:
            self.apply_chunk(run.seq, remaining, remember_keys=False)
        except Exception as error:  # the log holds a batch the model could not apply: its state is unknown
            self._chunked = None  # (left set, the worker applied it again and again: a review's, session 50)
            self._quarantine(run.seq, error)
            raise
        self._record_batch(requests, observations, time.perf_counter() - started, attempts_before)
        if publish:
            self.publish()

    def _answer_whole(self, run: ChunkedRun, done: list[tuple[ObserveJob, list[Source]]]) -> None:
        """The requests ``done`` of ``run``, applied whole by ``_finish_whole`` after a chunk's record could
        not be written: answered with their results once the batch's own record, which holds them all, is
        durable; with ``_unsynced`` where that cannot be confirmed."""
        try:
            self._journaled(self._chunked_durable, "batch", "confirmed durable")
        except ApiError as error:  # applied, but its record not known to be durable (a review's, session 50)
            self._unconfirmed_since(error)
            for job, _ in done:
                self._fail(job, self._unsynced)
            return
        self.publish()
        update_count, outcomes = self.forecaster.engine.updates, run.results()
        self._remember(run.keys, outcomes, update_count)  # durable: a retry is answered, never applied again
        self._settle_all([(job, ObserveOutcome(outcomes, sources, update_count), None) for job, sources in done])
