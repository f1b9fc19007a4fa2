"""ChunkedRun: a long merged batch, journaled whole once, applied a few ticks at a time.

A batch holding k values of a series is k ticks of the model (``Forecaster.observe_many``
puts a series' k-th value of the batch into tick k). Applied in one call, every request
that arrives meanwhile waits for all k ticks (issue 11, defect 8: a single POST waited
seconds behind batches of 10 values per series). A ``ChunkedRun`` splits the batch into
its ticks, exactly as ``observe_many`` would, and hands them out ``chunk(n)`` ticks at a
time; the worker applies each chunk with its own ``observe_many`` (a chunk record of an older
log also holds short requests of other series applied in the same call, after the chunk's
values), and the log records each call as it ran.

Why chunks are bit-identical to the whole: a series present in tick t is present in every
tick before it, so tick 0 holds every series of the batch, in order of first appearance
(the order in which ``observe_many`` adds new series), and a chunk ``ticks[a:b]``
concatenated in tick order puts each series' values at consecutive occurrences: its k-th
occurrence in the chunk is tick a + k, each tick's rows in the batch's order. Each tick
is one ``_tick`` of the library either way; nothing else happens per call.

``results()`` gives the whole batch's results (a ``StepResults`` over every chunk's
ticks), indexed like the merged batch, once every tick is applied. ``keys`` are the
idempotency keys of the requests merged into it, each with its elements' places in the batch
(or the earlier result an element repeats): they are remembered once the whole batch is applied
(and durable), and until then a request under one of them waits for the batch.

>>> from tbptt_service.storage.observation import Observation
>>> run = ChunkedRun([Observation(s, float(i)) for i, s in enumerate(["a", "b", "a", "a", "c", "b"])], seq=7)
>>> run.ticks, sorted(run.series)
([[0, 1, 4], [2, 5], [3]], ['a', 'b', 'c'])
>>> [(o.series, o.value) for o in run.chunk(2)]  # ticks 0 and 1, in order
[('a', 0.0), ('b', 1.0), ('c', 4.0), ('a', 2.0), ('b', 5.0)]
>>> from tbptt_online import Forecaster, ForecasterConfig
>>> f = Forecaster(ForecasterConfig(hidden_size=4))
>>> run.done(f.observe_many([(o.series, o.value) for o in run.chunk(2)]), 2)
>>> run.remaining, [(o.series, o.value) for o in run.chunk(2)]
(1, [('a', 3.0)])
>>> run.done(f.observe_many([(o.series, o.value) for o in [*run.chunk(1), Observation("d", 1.0)]]), 1)
>>> results = run.results()
>>> [(r.series, r.step) for r in results]
[('a', 1), ('b', 1), ('a', 2), ('a', 3), ('c', 1), ('b', 2)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from tbptt_online import StepResult
from tbptt_online.results import StepResults, TickColumns
from tbptt_service.storage.observation import Observation


class PendingKey(NamedTuple):
    """An idempotency key of a request merged into the run, remembered when the run is done."""

    key: str
    digest: str  # the request's content (tbptt_service.host.applied_keys.digest_of)
    sources: list[int | StepResult]  # per element: its place in the batch, or the earlier result it repeats


def tick_plan(observations: Sequence[Observation]) -> list[list[int]]:
    """The batch's ticks as ``observe_many`` forms them: tick k holds, in the batch's order, the
    indices of each series' k-th value."""
    ticks: list[list[int]] = []
    seen: dict[str, int] = {}
    for i, obs in enumerate(observations):
        k = seen.get(obs.series, 0)
        seen[obs.series] = k + 1
        if k == len(ticks):
            ticks.append([])
        ticks[k].append(i)
    return ticks


class ChunkedRun:
    """The merged batch journaled as log record ``seq`` (None: a journal that keeps no log),
    applied ``chunk`` by ``chunk``; ``done`` records each chunk's results."""

    def __init__(self, observations: Sequence[Observation], seq: int | None, keys: Sequence[PendingKey] = ()) -> None:
        self.observations = list(observations)
        self.seq = seq
        self.keys = list(keys)
        self.ticks = tick_plan(self.observations)
        self.series = frozenset(self.observations[i].series for i in self.ticks[0]) if self.ticks else frozenset()
        self.applied = 0  # ticks applied so far
        self._columns: list[TickColumns] = []  # the applied ticks' results, in order

    @property
    def remaining(self) -> int:
        return len(self.ticks) - self.applied

    def chunk(self, ticks: int) -> list[Observation]:
        """The next ``ticks`` ticks' observations (fewer at the end), in tick order."""
        return [self.observations[i] for tick in self.ticks[self.applied : self.applied + ticks] for i in tick]

    def done(self, results: StepResults, ticks: int) -> None:
        """The chunk of ``ticks`` ticks just handed out was applied by the call with these results
        (its first ``ticks`` ticks; the call may hold other series' values after the chunk's: their
        rows come after the chunk's in each tick, and in ticks of their own after them)."""
        self._columns.extend(results.ticks[:ticks])
        self.applied += ticks

    def results(self) -> StepResults:
        """Every tick's results, indexed like the batch (call it once nothing remains)."""
        assert self.remaining == 0, "the run is not finished"
        positions = [(0, 0)] * len(self.observations)
        for t, tick in enumerate(self.ticks):
            for row, i in enumerate(tick):
                positions[i] = (t, row)
        return StepResults(self._columns, positions)
