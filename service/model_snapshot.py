"""What readers see of a model (``ModelSnapshot``) and what an observation request gets back (``ObserveOutcome``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from service.admission import SeriesMark
from tbptt_online import ForecasterView, StepResult, UpdateStats


@dataclass(frozen=True)
class ModelSnapshot:
    """What readers see of a model: one moment, never half an update."""

    view: ForecasterView
    updates: UpdateStats
    observations: int  # values consumed by the model, all series together
    series_count: int
    marks: Mapping[str, SeriesMark]  # last timestamped observation per series

    @cached_property
    def sorted_series(self) -> list[str]:
        return sorted(self.view.slots)


@dataclass(frozen=True)
class ObserveOutcome:
    results: list[StepResult]  # one per observation of the request, in its order
    update_count: int  # the model's update counter after the batch
