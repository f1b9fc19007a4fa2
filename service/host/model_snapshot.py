"""What readers see of a model (``ModelSnapshot``) and what an observation request gets back (``ObserveOutcome``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from tbptt_online import ForecasterView, StepResult, TruncationReport, UpdateStats
from tbptt_service.host.admission import SeriesMark, Source


@dataclass(frozen=True)
class ModelSnapshot:
    """What readers see of a model: one moment, never half an update."""

    view: ForecasterView
    updates: UpdateStats
    observations: int  # values consumed by the model, all series together
    series_count: int
    marks: Mapping[str, SeriesMark]  # last timestamped observation per series
    truncation: TruncationReport | None = None  # the truncation advisor's report (made when the probes move)

    @cached_property
    def sorted_series(self) -> list[str]:
        return sorted(self.view.slots)


@dataclass(frozen=True)
class ObserveOutcome:
    """What one observation request gets back: its elements' results, as references into the
    results of the micro-batch that applied it (``StepResult`` s are built only when asked for)."""

    batch: Sequence[StepResult]  # the results of the whole merged micro-batch (lazy StepResults)
    sources: list[Source]  # per element of the request: its index in batch, or the earlier result it repeats
    update_count: int  # the model's update counter after the batch

    @cached_property
    def results(self) -> list[StepResult]:
        """One per observation of the request, in its order."""
        return [self.batch[s] if isinstance(s, int) else s for s in self.sources]
