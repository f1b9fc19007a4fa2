"""MemoryBudget: a model is created, or grows by new series, only while its memory estimate fits.

The estimate is the library's (:func:`tbptt_online.memory.estimate_bytes`: the network
and series store built on the meta device) plus what the service keeps per series beside
the model (its recent results, at their capacity). Two budgets: ``max_model_bytes`` for one
model, ``max_process_bytes`` for all the models together. A model whose config does not
fit even empty is refused at creation (422: no number of series makes it fit); one that
does not fit beside the others is refused too (409: delete one first). A batch that
would add a series past either budget is refused before it is journaled (409 naming the
index), like one past ``max_series_per_model``.

>>> from tbptt_online import ForecasterConfig
>>> budget = MemoryBudget(max_model_bytes=2**30, max_process_bytes=2**32)
>>> budget.check_model(ForecasterConfig(hidden_size=8), others_bytes=0)
>>> try:
...     budget.check_model(ForecasterConfig(history_size=1_000_000, n_features=128), others_bytes=0)
... except Unprocessable as error:
...     print(error.detail[:42])
config: a model of this config needs about
>>> limit = budget.series_limit(ForecasterConfig(hidden_size=8), others_bytes=0, max_series=100)
>>> limit.count, limit.reason
(100, 'TBPTT_MAX_SERIES_PER_MODEL=100')
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from tbptt_online import ForecasterConfig
from tbptt_online.memory import Footprint, footprint
from tbptt_service.errors import Conflict, Unprocessable
from tbptt_service.host.recent_results import recent_bytes_per_series

MB = 1_000_000


class SeriesLimit(NamedTuple):
    """How many series a model may hold, and the limit that says so (for the 409's message)."""

    count: int
    reason: str


class MemoryBudget:
    def __init__(self, max_model_bytes: int, max_process_bytes: int) -> None:
        self.max_model_bytes = max_model_bytes
        self.max_process_bytes = max_process_bytes

    @staticmethod
    def footprint(config: ForecasterConfig) -> Footprint:
        """The library's footprint of ``config``, with what the service keeps per series beside
        the model: its recent results (``RecentResults``, at their capacity). They were not
        counted until session 34: a hostile test's 8 series of ``n_features=1024`` took 239 MB
        where the budget counted 1.3 MB (16 MB a series of 500 rows of 4,099 floats)."""
        return dataclasses.replace(footprint(config), kept_bytes=recent_bytes_per_series(config.n_features))

    @classmethod
    def estimate(cls, config: ForecasterConfig, n_series: int) -> int:
        return cls.footprint(config).bytes_for(n_series)

    def check_model(self, config: ForecasterConfig, others_bytes: int) -> None:
        """Refuse a new model that does not fit: ``Unprocessable`` (422) past ``max_model_bytes``,
        ``Conflict`` (409) past ``max_process_bytes`` with the models already there."""
        needed = self.estimate(config, 0)
        if needed > self.max_model_bytes:
            raise Unprocessable(
                f"config: a model of this config needs about {needed // MB} MB of memory (estimate, before any "
                f"series) and TBPTT_MAX_MODEL_BYTES={self.max_model_bytes}; choose a smaller history_size, n_features, "
                "hidden_size, num_layers, k2, replay_batch (stateless) or probe_length"
            )
        if others_bytes + needed > self.max_process_bytes:
            raise Conflict(
                f"a model of this config needs about {needed // MB} MB of memory (estimate) and the models already "
                f"here hold about {others_bytes // MB} MB; TBPTT_MAX_PROCESS_BYTES={self.max_process_bytes}: delete a "
                "model first"
            )

    def series_limit(self, config: ForecasterConfig, others_bytes: int, max_series: int) -> SeriesLimit:
        """The most series a model of ``config`` may hold beside models holding ``others_bytes``."""
        fp = self.footprint(config)
        limits = [
            SeriesLimit(max_series, f"TBPTT_MAX_SERIES_PER_MODEL={max_series}"),
            SeriesLimit(
                fp.max_series(self.max_model_bytes),
                f"TBPTT_MAX_MODEL_BYTES={self.max_model_bytes} allows {max(fp.max_series(self.max_model_bytes), 0)} "
                f"series of this config (about {fp.series_bytes} bytes each)",
            ),
            SeriesLimit(
                fp.max_series(self.max_process_bytes - others_bytes),
                f"TBPTT_MAX_PROCESS_BYTES={self.max_process_bytes} allows "
                f"{max(fp.max_series(self.max_process_bytes - others_bytes), 0)} series of this config beside the "
                f"other models (about {others_bytes // MB} MB)",
            ),
        ]
        return min(limits, key=lambda limit: limit.count)
