"""Memory: what a Forecaster of a given config holds, estimated without allocating any of it.

The network and the series store are built on PyTorch's *meta* device (shapes and
dtypes, no storage), so the estimate follows whatever layout the library gives them:
a new store field or a wider network counts as soon as it exists. A service checks it
before it creates a model or lets a model grow (``history_size=100000, n_features=128``
holds 1.8 GB before its first value: the store starts with room for 16 series).

What is counted (steady state):

- the weights, ``2 + m + 1`` times: the parameters, their gradients, the optimizer's
  ``m`` moment tensors (2 for Adam/AdamW, 0 for SGD) and the frozen copy a view reads;
- one row of every store tensor per series, for at least the rows the store starts with;
  twice for the fields a view shares (``SeriesStore.snapshot``): the next tick copies them
  before it writes them, so the published view keeps the previous ones alive while the
  live store holds the new ones.

Not counted: transients (a replay's activations, a store doubling its rows as series
arrive), which can briefly add up to about the store's size again.

>>> from tbptt_online import ForecasterConfig
>>> small = footprint(ForecasterConfig(hidden_size=64))
>>> small.fixed_bytes == 5 * small.weight_bytes, small.initial_rows
(True, 16)
>>> estimate_bytes(ForecasterConfig(hidden_size=64), 1000) == small.fixed_bytes + 1000 * small.per_series_bytes
True
>>> estimate_bytes(ForecasterConfig(history_size=100_000, n_features=128), 0) > 2**30
True
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from tbptt_online.config import ForecasterConfig
from tbptt_online.network import RecurrentNetwork
from tbptt_online.series_store import PRIVATE, SeriesStore

OPTIMIZER_MOMENTS = {"sgd": 0, "adam": 2, "adamw": 2}  # tensors of the weights' shape each optimizer keeps


@dataclass(frozen=True)
class Footprint:
    weight_bytes: int  # the network's parameters, once
    per_series_bytes: int  # one row of every series-store tensor (twice for those a view shares)
    initial_rows: int  # rows the store holds before its first series
    optimizer_moments: int

    @property
    def fixed_bytes(self) -> int:
        """The weights as a live model holds them: parameters, gradients, moments, frozen view copy."""
        return self.weight_bytes * (2 + self.optimizer_moments + 1)

    def bytes_for(self, n_series: int) -> int:
        """The estimate for a model holding ``n_series`` series."""
        return self.fixed_bytes + self.per_series_bytes * max(n_series, self.initial_rows)

    def max_series(self, budget: int) -> int:
        """The most series whose estimate fits ``budget`` (-1: not even the empty model fits).

        >>> Footprint(weight_bytes=100, per_series_bytes=10, initial_rows=16, optimizer_moments=2).max_series(1000)
        50
        """
        if self.bytes_for(0) > budget:
            return -1
        return max(self.initial_rows, (budget - self.fixed_bytes) // self.per_series_bytes)


def footprint(config: ForecasterConfig) -> Footprint:
    """The config's :class:`Footprint` (built on the meta device; cached per config)."""
    try:
        return _cached_footprint(config)
    except TypeError:  # an unhashable config: measured afresh
        return _measure(config)


def estimate_bytes(config: ForecasterConfig, n_series: int) -> int:
    """Bytes a Forecaster of ``config`` holding ``n_series`` series keeps (see the module's notes)."""
    return footprint(config).bytes_for(n_series)


@functools.lru_cache(maxsize=256)
def _cached_footprint(config: ForecasterConfig) -> Footprint:
    return _measure(config)


def _bytes(tensors: object) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)  # type: ignore[attr-defined]


def _measure(config: ForecasterConfig) -> Footprint:
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    # meta: shapes only, nothing allocated; fork_rng: the global generator stays as it was
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        network = RecurrentNetwork(config).to(dtype)
        store = SeriesStore(config, dtype)
        # what a published view keeps while the store moves on, at worst: every field a forecast
        # reads (the whole ones copied before their next write, the IN_PLACE ones' rows saved)
        shared = [v for k, v in store.tensors.items() if k not in PRIVATE]
    rows = store.capacity
    return Footprint(
        weight_bytes=_bytes(network.parameters()),
        per_series_bytes=-(-(_bytes(store.tensors.values()) + _bytes(shared)) // rows),  # rounded up
        initial_rows=rows,
        optimizer_moments=OPTIMIZER_MOMENTS.get(config.optimizer, 2),
    )
