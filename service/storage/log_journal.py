"""LogJournal: the service's journal written to a :class:`~tbptt_service.storage.log_store.LogStore`.

An ``observe`` record holds one merged micro-batch exactly as the worker applies it,
``{"items": [[series, value, timestamp], ...]}``, so applying the records in order
runs the same batched ticks. A long batch applied a few ticks at a time is an
``observe_chunked`` record (the same payload) and one ``observe_chunk`` record per chunk,
``{"request": seq, "ticks": n}``, where it was applied, with ``"items"`` when short requests
of other series were applied in the same call after the chunk's ticks. The other kinds
(``create_model``, ``forget_series``, ``delete_model``, ``import_checkpoint``) hold the payload
the service gives them.
Every append is durable (per the log's ``sync``) before it returns, and returns the
record's seq; ``begin_append`` returns once the record is written, with a
``wait_durable`` for its fsync.

>>> import tempfile, pathlib
>>> from tbptt_service.storage.event_log import EventLog
>>> with tempfile.TemporaryDirectory() as d, EventLog(pathlib.Path(d) / "events.sqlite3") as log:
...     journal = LogJournal(log)
...     journal.record("m", "create_model", {"config": {}})
...     journal.append("m", [Observation("a", 1.5, 60.0), Observation("b", [1.0, None])])
...     batch = observations_of(list(log.records())[-1].payload)
1
2
>>> batch[1]
Observation(series='b', value=[1.0, None], timestamp=None)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tbptt_service.storage.journal import OBSERVE, OBSERVE_CHUNK, OBSERVE_CHUNKED, PendingAppend
from tbptt_service.storage.log_store import LogStore
from tbptt_service.storage.observation import Observation


def observations_of(payload: dict[str, Any]) -> list[Observation]:
    """The batch of an ``observe`` record's payload, in its order."""
    return [Observation(series, value, timestamp) for series, value, timestamp in payload["items"]]


def _payload(observations: Sequence[Observation], keys: list[Any] | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"items": [[o.series, o.value, o.timestamp] for o in observations]}
    if keys:  # the idempotency keys of the requests merged into the batch (tbptt_service.host.applied_keys)
        payload["keys"] = keys
    return payload


class LogJournal:
    """Appends batches and changes to ``log``; ``on_observed(n)`` hears of each batch of n observations
    once it is recorded (the checkpointer counts them)."""

    def __init__(self, log: LogStore, on_observed: Callable[[int], None] | None = None) -> None:
        self.log = log
        self.on_observed = on_observed

    def append(self, model: str, observations: Sequence[Observation]) -> int:
        seq = self.log.append(model, OBSERVE, _payload(observations))
        if self.on_observed is not None:
            self.on_observed(len(observations))
        return seq

    def begin_append(
        self, model: str, observations: Sequence[Observation], keys: list[Any] | None = None
    ) -> PendingAppend:
        """Write the batch's record (with ``keys``); ``wait_durable()`` waits for the log's fsync (batch mode)."""
        return self._begin(model, OBSERVE, observations, keys)

    def begin_chunked(self, model: str, observations: Sequence[Observation]) -> PendingAppend:
        """Write a batch that ``observe_chunk`` records apply later, a few ticks at a time."""
        return self._begin(model, OBSERVE_CHUNKED, observations)

    def begin_chunk(self, model: str, request: int | None, ticks: int, chunk: Sequence[Observation]) -> PendingAppend:
        """Write that ``ticks`` more ticks of the chunked batch ``request`` are applied now (the
        record names them: their observations, ``chunk``, are in the batch's record)."""
        seq = self.log.write(model, OBSERVE_CHUNK, {"request": request, "ticks": ticks})
        return PendingAppend(seq, self.log.durable(seq).result)

    def _begin(
        self, model: str, kind: str, observations: Sequence[Observation], keys: list[Any] | None = None
    ) -> PendingAppend:
        seq = self.log.write(model, kind, _payload(observations, keys))
        if self.on_observed is not None:
            self.on_observed(len(observations))
        return PendingAppend(seq, self.log.durable(seq).result)

    def record(self, model: str, kind: str, payload: dict[str, Any]) -> int:
        return self.log.append(model, kind, payload)
