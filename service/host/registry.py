"""ModelRegistry: the service's models by name, each owned by its ModelWorker.

Creating a model builds its Forecaster off the event loop, then journals the
creation before the model is served; deleting one applies the jobs already queued
(drain), journals the deletion and stops its worker; ``close()`` drains and stops
every worker at shutdown. ``lock`` orders creations and deletions with the start of
a checkpoint, so a checkpoint holds exactly the models its log position says.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_service.errors import Conflict, InsufficientStorage, NotFound, Quarantined, StorageFullError
from tbptt_service.host.memory_budget import MemoryBudget, SeriesLimit
from tbptt_service.host.metrics import ServiceMetrics
from tbptt_service.host.model_worker import ModelSnapshot, ModelWorker
from tbptt_service.settings import Settings
from tbptt_service.storage.journal import CREATE_MODEL, DELETE_MODEL, Journal, with_changes

ForecasterFactory = Callable[[ForecasterConfig], Forecaster]


class ModelRegistry:
    def __init__(
        self,
        settings: Settings,
        *,
        journal: Journal,
        metrics: ServiceMetrics,
        forecaster_factory: ForecasterFactory = Forecaster,
    ) -> None:
        self.settings = settings
        self.journal = with_changes(journal)
        self.metrics = metrics
        self.forecaster_factory = forecaster_factory
        self._workers: dict[str, ModelWorker] = {}
        self._reserved: dict[str, int] = {}  # names being created (the build runs off the loop), their bytes
        self._admitting = threading.Lock()  # one model at a time admits a batch that adds series (ModelWorker)
        self.budget = MemoryBudget(settings.max_model_bytes, settings.max_process_bytes)
        # Models whose state recovery could not rebuild, and why: every request to one gets 503 saying
        # so, and no checkpoint is written while any is here (the log keeps its records for a restart).
        self.quarantined: dict[str, str] = {}
        self.lock = asyncio.Lock()  # held while a model is created or deleted, and while a checkpoint starts
        metrics.watch_models(self.snapshots)

    def names(self) -> list[str]:
        return list(self._workers)

    def workers(self) -> list[ModelWorker]:
        return list(self._workers.values())

    def snapshots(self) -> dict[str, ModelSnapshot]:
        return {name: worker.snapshot for name, worker in list(self._workers.items())}

    def bytes_in_use(self, excluding: str | None = None) -> int:
        """The memory estimate of every model (those being created included), ``excluding`` one."""
        total = sum(size for name, size in list(self._reserved.items()) if name != excluding)
        for worker in list(self._workers.values()):
            if worker.name != excluding:
                total += self.budget.estimate(worker.snapshot.view.config, worker.series_held)
        return total

    def series_limit(self, worker: ModelWorker) -> SeriesLimit:
        """How many series ``worker``'s model may hold now (its worker thread asks, for a batch adding some)."""
        others = self.bytes_in_use(excluding=worker.name)
        return self.budget.series_limit(worker.forecaster.config, others, self.settings.max_series_per_model)

    def get(self, name: str) -> ModelWorker:
        worker = self._workers.get(name)
        if worker is None:
            if name in self.quarantined:
                raise Quarantined(name, self.quarantined[name])
            raise NotFound(f"model {name!r} is unknown")
        if worker.retiring:  # every request says so alike, reads too (404, as from then on)
            raise NotFound(worker.gone())
        return worker

    def quarantine(self, name: str, reason: str) -> None:
        """Hold ``name`` as quarantined (recovery could not rebuild it)."""
        self.quarantined[name] = reason

    async def create(self, name: str, config: ForecasterConfig) -> ModelWorker:
        """A new model with a fresh Forecaster: 409 if the name is taken or max_models is reached,
        422/409 if its memory estimate does not fit the budgets (checked before anything is built
        or journaled), 507 if the journal cannot record the creation."""
        if name in self._workers and self._workers[name].retiring:
            raise Conflict(f"{self._workers[name].gone()}; create it again once that DELETE has answered")
        if name in self._workers or name in self._reserved:
            raise Conflict(f"model {name!r} already exists")
        if name in self.quarantined:
            raise Conflict(f"model {name!r} exists but is quarantined ({self.quarantined[name]}); delete it first")
        if len(self._workers) + len(self._reserved) >= self.settings.max_models:
            limit = self.settings.max_models
            if self.settings.log_url is not None and self.settings.log_stream.startswith("shard-"):
                # a cluster's shard: the limit is each shard's, not the cluster's (a hostile test, session 36)
                where = f"{self.settings.log_stream} of the cluster holds TBPTT_MAX_MODELS={limit} models (the setting"
                raise Conflict(
                    f"{where} is per shard; names that hash to other shards may still fit); delete one first"
                )
            raise Conflict(f"the service holds TBPTT_MAX_MODELS={limit} models; delete one first")
        self.budget.check_model(config, self.bytes_in_use())
        self._reserved[name] = self.budget.estimate(config, 0)
        try:
            worker = await run_in_threadpool(lambda: self.build_worker(name, self.forecaster_factory(config)))
            async with self.lock:
                payload = {"config": config.to_dict()}
                try:
                    seq = await run_in_threadpool(self.journal.record, name, CREATE_MODEL, payload)
                except StorageFullError as error:
                    raise InsufficientStorage(
                        f"the journal cannot record this change ({error}); nothing was changed"
                    ) from None
                worker.seq = seq or 0
                self.register(worker)
        finally:
            self._reserved.pop(name, None)
        return worker

    def build_worker(self, name: str, forecaster: Forecaster) -> ModelWorker:
        """A worker around ``forecaster``, not started (recovery applies the log's records to it
        first: :mod:`tbptt_service.host.rebuild`). Runs torch work: call it off the event loop."""
        s = self.settings
        worker = ModelWorker(
            name,
            forecaster,
            metrics=self.metrics,
            journal=self.journal,
            max_series=s.max_series_per_model,
            max_batch_observations=s.microbatch_max_observations,
            max_wait_s=s.microbatch_max_wait_ms / 1000.0,
            chunk_ticks=s.long_batch_chunk_ticks,
            max_gap_steps=s.max_gap_steps,
            max_queued_observations=s.max_queued_observations,
        )
        worker.series_limit = lambda: self.series_limit(worker)
        worker.admitting = self._admitting
        return worker

    def register(self, worker: ModelWorker) -> None:
        """Start a built worker and serve its model under its name (409 if the name is taken)."""
        if worker.name in self._workers:
            raise Conflict(f"model {worker.name!r} already exists")
        worker.start()
        self._workers[worker.name] = worker

    async def delete(self, name: str) -> None:
        """Apply the model's queued jobs, journal its deletion (507 when the journal is full: the
        model stays), stop it. Its requests get 404 from the moment the deletion is queued."""
        async with self.lock:
            if name in self.quarantined and name not in self._workers:
                await self._delete_quarantined(name)
                return
            worker = self.get(name)
            await worker.retire()
            del self._workers[name]
        await run_in_threadpool(worker.join)
        self.metrics.forget_model(name)

    async def _delete_quarantined(self, name: str) -> None:
        """Journal the deletion of a quarantined model (recovery then skips its records for good)."""
        try:
            await run_in_threadpool(self.journal.record, name, DELETE_MODEL, {})
        except StorageFullError as error:
            raise InsufficientStorage(f"the journal cannot record this change ({error}); nothing was changed") from None
        del self.quarantined[name]

    async def close(self) -> None:
        """Stop every worker once the jobs already queued are applied."""
        workers = list(self._workers.values())
        for worker in workers:
            worker.stop()
        for worker in workers:
            await run_in_threadpool(worker.join)
