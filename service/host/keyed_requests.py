"""KeyedRequests: a ModelWorker's handling of idempotency keys (a part of ModelWorker).

A request may carry an ``Idempotency-Key``. The worker answers a request whose key it knows
with that key's first answer and applies nothing (422 when the key came with another request),
journals each new key with the batch that applies it (a place in the batch, or the series whose
earlier result an element repeats), and remembers each key's answer once the batch is durable.
A long batch applied a chunk at a time (:mod:`tbptt_service.host.long_batches`) journals its keys
in its ``observe_chunked`` record and remembers them once its last chunk is durable; a request
under one of them that comes meanwhile waits for the batch, and is then answered from the keys.
Recovery remembers the keys of the records it applies the same way (``apply_record``,
``begin_chunked_record``). The keys and answers
themselves are kept by :class:`~tbptt_service.host.applied_keys.AppliedKeys` (``keys``).

A mixin of :class:`~tbptt_service.host.model_worker.ModelWorker`: its methods run on the worker's
thread and use the worker's state (the forecaster, the series' marks, the jobs set aside) and
its settling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tbptt_online import StepResult
from tbptt_service.errors import Unprocessable
from tbptt_service.host.admission import Source
from tbptt_service.host.applied_keys import AppliedKeys, digest_of
from tbptt_service.host.chunked_run import PendingKey
from tbptt_service.host.model_snapshot import ObserveOutcome
from tbptt_service.host.worker_jobs import ObserveJob
from tbptt_service.storage.log_journal import observations_of


class KeyedRequests:
    """The idempotency keys of a ModelWorker's requests (see the module's docstring)."""

    keys: AppliedKeys

    def apply_record(self, payload: dict[str, Any]) -> None:
        """Apply an ``observe`` record's batch (recovery; call it like ``apply``) and remember the
        answers of the keys journaled with it, as the live batch did."""
        pending = self._journaled_keys(payload)  # before the batch: the marks hold the earlier results
        results = self.apply(observations_of(payload))
        self._remember(pending, results, self.forecaster.engine.updates)

    def begin_chunked_record(self, payload: dict[str, Any], seq: int) -> None:
        """Take an ``observe_chunked`` record's batch (recovery; like ``begin_chunked``), its keys to
        be remembered when its last chunk is applied."""
        self.begin_chunked(observations_of(payload), seq, self._journaled_keys(payload))

    def _journaled_keys(self, payload: dict[str, Any]) -> list[PendingKey]:
        """The keys journaled with a batch record, before the batch is applied: a key's element that
        repeated an earlier batch's result is journaled as its series, whose mark holds that result."""
        keys = payload.get("keys", ())
        earlier = {s: self._marks[s].result for _, _, sources in keys for s in sources if type(s) is str}
        return [
            PendingKey(key, digest, [s if type(s) is int else earlier[s] for s in sources])
            for key, digest, sources in keys
        ]

    def _answer_known_keys(self, jobs: list[ObserveJob]) -> list[ObserveJob]:
        """Answer the jobs whose key the model knows (their first answer; 422 for another request
        under a known key); the rest, to apply. A key twice in one batch: the second waits for the next."""
        fresh: list[ObserveJob] = []
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

    @staticmethod
    def _keyed(admitted: list[tuple[ObserveJob, list[Source]]]) -> tuple[list[PendingKey], list]:
        """The keys of the admitted requests that carry one, and as journaled with the batch: a
        key's sources are a place in the batch, or the series whose earlier result it repeats."""
        keyed = [PendingKey(job.key, job.digest, sources) for job, sources in admitted if job.key is not None]  # type: ignore[arg-type]
        keys = [[p.key, p.digest, [s if type(s) is int else s.series for s in p.sources]] for p in keyed]
        return keyed, keys

    def _remember(self, keyed: Sequence[PendingKey], results: Sequence[StepResult], update_count: int) -> None:
        """Once the batch is durable (or replayed): a retry of a keyed request is answered, never applied again."""
        for p in keyed:
            self.keys.remember(p.key, p.digest, results, p.sources, update_count)
