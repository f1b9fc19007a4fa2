"""Memory: what a Forecaster of a given config holds, estimated without allocating any of it.

The network and the series store are built on PyTorch's *meta* device (shapes and
dtypes, no storage), so the estimate follows whatever layout the library gives them:
a new store field or a wider network counts as soon as it exists. A service checks it
before it creates a model or lets a model grow (``history_size=100000, n_features=128``
holds 1.8 GB before its first value: the store starts with room for 16 series).

What is counted (steady state):

- the weights, ``2 + m + 1`` times: the parameters, their gradients, the optimizer's
  ``m`` moment tensors (2 for Adam/AdamW, 0 for SGD) and the frozen copy a view reads;
- one row of every store tensor for every row the store holds: it starts with ``initial_rows``
  and doubles when a series finds none free, so n series hold up to the first doubling at or
  past n (19 series of 88 MB held 32 rows, 3.8 GB where 19 rows were counted: a hostile test);
  twice for the fields a view shares (``SeriesStore.snapshot``): the next tick copies them
  before it writes them, so the published view keeps the previous ones alive while the
  live store holds the new ones.

- the truncation probe's tensors (its followed series' last ``probe_length`` steps and states);
- the activations autograd keeps through a replay, measured per replayed (step, row) on the
  meta device: a stateful update replays one window of ``k2`` (``k2_max``) per series due, and
  every series can be due in the same tick, so a window per series; a stateless update its
  ``replay_batch`` windows of ``k2``; the probe its followed series over ``probe_length``.
  Transient, but one update holds them all at once: ``mode="stateless", replay_batch=1000000``
  needs about 75 GB for its first update and was accepted (the process was killed by the
  kernel's OOM killer after the batch was journaled); 6,000 default series fed 33 ticks raised
  the peak RSS by 923 MB, where the estimate without their windows said 525 MB (953 MB with).
  An update of 65 series or more with the absolute loss (the defaults) takes ``gru_rows`` instead,
  which keeps no autograd activations, only its chunks' buffers (8.4 MB for 256 rows of 32 steps,
  on each of torch's threads): there the estimate is an upper bound.

Not counted: the moment a store doubles, when its old rows and its new ones are both held
(about 1.5 times the new size, briefly).

>>> from tbptt_online import ForecasterConfig
>>> small = footprint(ForecasterConfig(hidden_size=64))
>>> small.fixed_bytes == 5 * small.weight_bytes + small.probe_bytes + small.update_bytes, small.initial_rows
(True, 16)
>>> stateless = footprint(ForecasterConfig(hidden_size=64, mode="stateless", replay_batch=1000))
>>> stateless.update_bytes == 1000 * 32 * stateless.step_row_bytes, stateless.window_bytes
(True, 0)
>>> small.window_bytes == 32 * small.step_row_bytes  # stateful: one window of k2 per series
True
>>> small.rows_for(1000), small.rows_for(16), small.rows_for(17)
(1024, 16, 32)
>>> estimate_bytes(ForecasterConfig(hidden_size=64), 1000) == (
...     small.fixed_bytes + 1024 * small.per_series_bytes + 1000 * small.window_bytes)
True
>>> estimate_bytes(ForecasterConfig(history_size=300_000, n_features=128), 0) > 2**30
True
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from tbptt_online.config import ForecasterConfig
from tbptt_online.network import RecurrentNetwork
from tbptt_online.probe import PROBE_SERIES, TruncationProbe
from tbptt_online.series_store import PRIVATE, SeriesStore, doubled_rows

OPTIMIZER_MOMENTS = {"sgd": 0, "adam": 2, "adamw": 2}  # tensors of the weights' shape each optimizer keeps


@dataclass(frozen=True)
class Footprint:
    weight_bytes: int  # the network's parameters, once
    per_series_bytes: int  # one row of every series-store tensor (twice for those a view shares)
    initial_rows: int  # rows the store holds before its first series
    optimizer_moments: int
    probe_bytes: int = 0  # the truncation probe's tensors
    step_row_bytes: int = 0  # what autograd keeps per replayed (step, row)
    replayed_steps: int = 0  # (step, row)s of the largest replay whatever the series: stateless batch or probe
    window_bytes: int = 0  # a stateful update's activations per series due (its window of k2)
    kept_bytes: int = 0  # what a caller keeps per series beside the model (a service's recent results)

    @property
    def each_series_bytes(self) -> int:
        """What each series costs beside its store row (counted per series, not per row the
        store doubles to): its window in an update and what the caller keeps for it."""
        return self.window_bytes + self.kept_bytes

    @property
    def series_bytes(self) -> int:
        """What one more series costs on average: its store row and ``each_series_bytes``."""
        return self.per_series_bytes + self.each_series_bytes

    def rows_for(self, n_series: int) -> int:
        """The rows a store holds for ``n_series`` series: ``initial_rows``, doubled until they are
        enough, however the series arrived (``series_store.doubled_rows``, which the store grows by)."""
        return doubled_rows(self.initial_rows, n_series)

    @property
    def update_bytes(self) -> int:
        """The activations of the largest replay, held at once until its backward pass ends."""
        return self.step_row_bytes * self.replayed_steps

    @property
    def fixed_bytes(self) -> int:
        """The weights as a live model holds them (parameters, gradients, moments, frozen view
        copy), the probe's tensors and the largest replay's activations."""
        return self.weight_bytes * (2 + self.optimizer_moments + 1) + self.probe_bytes + self.update_bytes

    def bytes_for(self, n_series: int) -> int:
        """The estimate for a model holding ``n_series`` series: its store's rows and their windows."""
        return self.fixed_bytes + self.per_series_bytes * self.rows_for(n_series) + self.each_series_bytes * n_series

    def max_series(self, budget: int) -> int:
        """The most series whose estimate fits ``budget`` (-1: not even the empty model fits).

        >>> fp = Footprint(weight_bytes=100, per_series_bytes=10, initial_rows=16, optimizer_moments=2)
        >>> fp.max_series(1000), fp.max_series(1000 + 32 * 10)  # 500 left: 32 rows fit, 64 do not
        (32, 64)
        """
        if self.bytes_for(0) > budget:
            return -1
        best, rows, below = 0, self.initial_rows, 0
        while True:  # each doubling of the rows, while its rows fit: the series its windows leave room for
            room = budget - self.fixed_bytes - self.per_series_bytes * rows
            if room < 0:
                return best
            each = self.each_series_bytes
            n = rows if each == 0 else min(rows, room // each)
            if n > below:  # more than the rows before held
                best = n
            if n < rows:
                return best
            below, rows = rows, 2 * rows


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


def _saved_bytes(network: RecurrentNetwork, config: ForecasterConfig, dtype: torch.dtype, rows: int) -> int:
    """Bytes autograd saves for backward over 2 steps of ``rows`` rows (a replay's forward, on meta)."""
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    x = torch.zeros(2, rows, config.input_size, dtype=dtype)  # [L=2, B, i]
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        layers = network.unstack(network.initial_state(rows))
        for j in range(2):
            layers = network.step(x[j], layers)
            network.predict_top(network.top(layers))  # [B, p]
    return total


def _measure(config: ForecasterConfig) -> Footprint:
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    # meta: shapes only, nothing allocated; fork_rng: the global generator stays as it was
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        network = RecurrentNetwork(config).to(dtype)
        store = SeriesStore(config, dtype)
        probe = TruncationProbe(config, dtype)
        # what a published view keeps while the store moves on, at worst: every field a forecast
        # reads (the whole ones copied before their next write, the IN_PLACE ones' rows saved)
        shared = [v for k, v in store.tensors.items() if k not in PRIVATE]
        # per (step, row): the saved tensors that grow with the rows (the weights autograd
        # saves by reference do not), over the 2 steps of 2 rows against 1 row
        step_row = -(-(_saved_bytes(network, config, dtype, 2) - _saved_bytes(network, config, dtype, 1)) // 2)
    rows = store.capacity
    stateless = config.mode == "stateless"
    probed = PROBE_SERIES * config.resolved_probe_length if config.probe_every > 0 else 0
    return Footprint(
        weight_bytes=_bytes(network.parameters()),
        per_series_bytes=-(-(_bytes(store.tensors.values()) + _bytes(shared)) // rows),  # rounded up
        initial_rows=rows,
        optimizer_moments=OPTIMIZER_MOMENTS.get(config.optimizer, 2),
        probe_bytes=_bytes(probe.tensors.values()),
        step_row_bytes=step_row,
        replayed_steps=max(config.replay_batch * config.max_window if stateless else 0, probed),
        window_bytes=0 if stateless else config.max_window * step_row,
    )
