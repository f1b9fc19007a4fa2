"""The recurrent network: a stack of cells and a linear head, one step at a time.

The network knows nothing of windows, optimizers or series: ``advance`` consumes one
input per batch row, ``predict`` reads the forecast of the *next* value off a state.
States are batch-first so that rows can be gathered and scattered per series:

- gru / rnn: a tensor ``[B, num_layers, H]``
- lstm:      a tuple ``(h, c)`` of two such tensors
"""

from __future__ import annotations

import torch
from torch import nn

from tbptt_online.config import ForecasterConfig

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class RecurrentNetwork(nn.Module):
    """GRU, LSTM or Elman (tanh) cells stacked ``num_layers`` deep, plus a linear head.

    >>> net = RecurrentNetwork(ForecasterConfig(cell="lstm", hidden_size=8, n_features=2))
    >>> state = net.initial_state(3)
    >>> [tuple(t.shape) for t in state]
    [(3, 1, 8), (3, 1, 8)]
    >>> state = net.advance(torch.zeros(3, 2), state)
    >>> tuple(net.predict(state).shape)  # mean and variance head for each of 2 features
    (3, 4)
    """

    def __init__(self, config: ForecasterConfig) -> None:
        super().__init__()
        self.cell_type = config.cell
        self.hidden_size = config.hidden_size
        self.num_layers = config.num_layers
        cell_class = {"gru": nn.GRUCell, "lstm": nn.LSTMCell, "rnn": nn.RNNCell}[config.cell]
        sizes = [config.n_features] + [config.hidden_size] * (config.num_layers - 1)
        self.cells = nn.ModuleList(cell_class(size, config.hidden_size) for size in sizes)
        self.head = nn.Linear(config.hidden_size, config.output_size)

    def _zeros(self, batch: int) -> torch.Tensor:
        weight = self.head.weight
        return weight.new_zeros(batch, self.num_layers, self.hidden_size)  # [B, layers, H]

    def initial_state(self, batch: int) -> State:
        """The fresh state h_0 (zeros, not learned) for ``batch`` rows."""
        if self.cell_type == "lstm":
            return (self._zeros(batch), self._zeros(batch))
        return self._zeros(batch)

    def advance(self, x: torch.Tensor, state: State) -> State:
        """Consume ``x`` [B, d] and return the next state (same layout as ``state``)."""
        if self.cell_type == "lstm":
            h, c = state
            hs, cs = [], []
            inp = x
            for layer, cell in enumerate(self.cells):
                h_l, c_l = cell(inp, (h[:, layer], c[:, layer]))  # each [B, H]
                hs.append(h_l)
                cs.append(c_l)
                inp = h_l
            return (_stack(hs), _stack(cs))  # [B, layers, H] x2
        hs = []
        inp = x
        for layer, cell in enumerate(self.cells):
            inp = cell(inp, state[:, layer])  # [B, H]
            hs.append(inp)
        return _stack(hs)  # [B, layers, H]

    def predict(self, state: State) -> torch.Tensor:
        """Forecast of the next value from ``state``: [B, p], p = d (mse) or 2d (gaussian)."""
        h = state[0] if isinstance(state, tuple) else state
        return self.head(h[:, -1])  # top layer [B, H] -> [B, p]


def _stack(layers: list[torch.Tensor]) -> torch.Tensor:
    """[B, H] per layer -> [B, layers, H] (one layer: a view, no copy)."""
    return layers[0].unsqueeze(1) if len(layers) == 1 else torch.stack(layers, dim=1)


def select_rows(active: torch.Tensor, new: State, old: State) -> State:
    """Rows where ``active`` [B] is True take ``new``, the others keep ``old``.

    Used for windows of different lengths padded at the front: a padded row's state
    stays put, and ``where`` gives the unused branch exactly zero gradient.
    """
    if isinstance(new, tuple):
        return tuple(select_rows(active, n, o) for n, o in zip(new, old, strict=True))  # type: ignore[return-value]
    return torch.where(active[:, None, None], new, old)


def run_window(network: RecurrentNetwork, start: State, x: torch.Tensor, active_from: torch.Tensor) -> State:
    """Advance ``start`` over every value of the windows ``x`` [L, B, d] (front-padded:
    row i is real from ``active_from[i]`` on) and return the state after the last one."""
    padded = bool((active_from > 0).any())
    h = start
    for j in range(x.shape[0]):
        h_next = network.advance(x[j], h)
        h = select_rows(active_from <= j, h_next, h) if padded else h_next
    return h
