"""StateRebuild: the service's models rebuilt from a checkpoint and the event-log records after it.

``restore`` and ``apply`` are the two callbacks of :func:`tbptt_service.storage.recovery.recover`.
Each model in a checkpoint carries ``seq``, the last record its state includes: the
checkpoint is cut at one log position, but a model's state may already hold a few
records after it (those its worker applied before its state was captured), and
``apply`` skips a model's records at or below its own ``seq``. Every other record
goes through the same path the live service used (``ModelWorker.apply`` for a
batch), so the ticks are the same. A long batch applied a few ticks at a time is an
``observe_chunked`` record and the ``observe_chunk`` records that applied it, interleaved with
other batches as the live worker applied them: they are applied in that order. One whose last
chunk the log does not hold (a crash between two chunks) is left to the model's worker, which
applies and journals the rest first, as it would have; it was journaled whole, so
it is applied whole, exactly once, like any logged batch. A record that does not fit (a batch for a model
that does not exist, a series that is not there, a batch the model cannot apply)
*quarantines* that model alone: it is left out, with the reason in ``quarantined``, its
later records are skipped (a ``delete_model`` record lifts the quarantine), and the
other models recover. A model whose checkpointed state cannot load is quarantined too.

Recovery runs at the torch thread count the records were computed with (the
checkpoint's ``torch_threads``, then each ``torch_threads`` record; a log without one was
written at ``DEFAULT_TORCH_THREADS``): the matrix kernels split their sums by the thread
count, so another count would give other roundings, not the state that was acknowledged.
``torch.set_num_threads`` holds for the calling thread (the recovery's), which is where
``restore`` and ``apply`` run; ``threads_in_force`` says the count the log ended with.
"""

from __future__ import annotations

import base64
from typing import Any

import torch

from tbptt_online import ForecasterConfig
from tbptt_service.host.model_state import from_plain, read_import
from tbptt_service.host.model_worker import ModelWorker
from tbptt_service.host.registry import ModelRegistry
from tbptt_service.storage.event_log import LogRecord
from tbptt_service.storage.journal import (
    CREATE_MODEL,
    DEFAULT_TORCH_THREADS,
    DELETE_MODEL,
    FORGET_SERIES,
    IMPORT_CHECKPOINT,
    OBSERVE,
    OBSERVE_CHUNK,
    OBSERVE_CHUNKED,
    RESET_LEARNING_RATE,
    TORCH_THREADS,
)
from tbptt_service.storage.log_journal import observations_of

CHECKPOINT_FORMAT = 1


class StateRebuild:
    """Builds the workers (not started) of ``registry``'s models; ``finish()`` hands them over."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self.workers: dict[str, ModelWorker] = {}
        self.quarantined: dict[str, str] = {}  # model name -> why its state could not be rebuilt
        self.threads_in_force = DEFAULT_TORCH_THREADS  # what the records so far were computed with

    def use_threads(self, count: Any) -> None:
        """Apply what follows at ``count`` torch threads (on the calling thread)."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"torch_threads={count!r} is invalid: must be an integer >= 1")
        self.threads_in_force = count
        torch.set_num_threads(count)

    def restore(self, state: dict[str, Any]) -> None:
        """Load a checkpoint's state: ``{"format": 1, "models": [model state, ...]}``."""
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint format={state.get('format')!r} is invalid: expected {CHECKPOINT_FORMAT}")
        self.use_threads(state.get("torch_threads", DEFAULT_TORCH_THREADS))
        for plain in state["models"]:
            try:
                model = from_plain(plain)
                forecaster = model.build(self.registry.forecaster_factory)
                worker = self.registry.build_worker(model.name, forecaster)
                worker.load(forecaster, model.marks, model.seq, model.keys, model.recent)
            except Exception as error:
                name = plain.get("name") if isinstance(plain, dict) else None
                if not isinstance(name, str):
                    raise  # not even its name: the checkpoint is refused whole
                self.quarantined[name] = f"its checkpointed state failed to load: {error}"
                continue
            self.workers[model.name] = worker

    def apply(self, record: LogRecord) -> None:
        """Apply one record; one that fails quarantines its model (the others go on)."""
        name = record.model
        if record.kind == TORCH_THREADS:  # the process's, not a model's: never quarantines anything
            self.use_threads(record.payload["torch_threads"])
            return
        if name in self.quarantined:
            if record.kind == DELETE_MODEL:
                del self.quarantined[name]  # deleted: the name is free again
            return
        try:
            self._apply(record)
        except Exception as error:
            self.workers.pop(name, None)
            self.quarantined[name] = f"log record seq {record.seq} ({record.kind}) failed to apply: {error}"

    def _apply(self, record: LogRecord) -> None:
        name, payload = record.model, record.payload
        worker = self.workers.get(name)
        if record.kind == CREATE_MODEL:
            if worker is not None and record.seq <= worker.seq:
                return  # the checkpoint holds the model already
            if worker is not None:
                raise ValueError(f"model {name!r} is created again but exists since seq {worker.seq}")
            config = ForecasterConfig.from_saved(payload["config"])  # journaled: a bound tightened since moves it
            worker = self.registry.build_worker(name, self.registry.forecaster_factory(config))
            worker.seq = record.seq
            self.workers[name] = worker
            return
        if worker is None:
            raise ValueError(f"model {name!r} does not exist")
        if record.seq <= worker.seq:
            return  # this model's checkpointed state includes the record
        if worker.unfinished is not None and record.kind not in (OBSERVE, OBSERVE_CHUNK):
            raise ValueError(f"a {record.kind} record came while batch log seq {worker.unfinished.seq} is half applied")
        if record.kind == OBSERVE:
            worker.apply_record(payload)  # the batch, and the answers of the keys journaled with it
        elif record.kind == OBSERVE_CHUNKED:
            worker.begin_chunked_record(payload, record.seq)  # the batch, and the keys journaled with it
        elif record.kind == OBSERVE_CHUNK:
            extra = observations_of(payload) if "items" in payload else ()  # short requests in the same call
            worker.apply_chunk(payload["request"], payload["ticks"], extra)
        elif record.kind == FORGET_SERIES:
            worker.apply_forget(payload["series"])
        elif record.kind == RESET_LEARNING_RATE:
            worker.forecaster.reset_learning_rate()
        elif record.kind == IMPORT_CHECKPOINT:
            data = base64.b64decode(payload["checkpoint"], validate=True)
            model, forecaster = read_import(
                data, worker.forecaster.config, self.registry.forecaster_factory, journaled=True
            )
            worker.load(forecaster, model.marks, record.seq)
        elif record.kind == DELETE_MODEL:
            del self.workers[name]
            return
        else:
            raise ValueError(f"record kind {record.kind!r} is unknown")
        worker.seq = record.seq

    def finish(self) -> list[ModelWorker]:
        """The rebuilt workers, each with its state published, in creation order."""
        for worker in self.workers.values():
            worker.publish()
        return list(self.workers.values())
