"""The recurrent network: a stack of cells and a linear head, one step at a time.

The network knows nothing of optimizers or series: ``advance`` consumes one input per
batch row, ``predict`` reads the forecast of the *next* value off a state; ``run_window``
and ``states_before`` run it over windows of values (a loop of steps, or for a few rows
without padding one sequence op). States are batch-first so that rows can be gathered
and scattered per series:

- gru / rnn: a tensor ``[B, num_layers, H]``
- lstm:      a tuple ``(h, c)`` of two such tensors
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from tbptt_online import gru_rows, gru_window, one_thread
from tbptt_online.config import ForecasterConfig
from tbptt_online.gru_window import GRUWindow

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]

# A tick's step of many rows without a graph runs in parts of at least PART_ROWS rows, at most PARTS of them,
# whatever the number of torch threads (``RecurrentNetwork.advance``): the same calls on one thread and on
# several, so the same bits (a part's rows need not get the bits of one call of all rows: MKL's products
# per row depend on how many rows it is given, in float64 at 10,000 rows in parts of 1,250, in float32
# between one call on one thread and torch's own split on two at 4,097 rows of hidden 32)
PART_ROWS = 1024
PARTS = 8


class RecurrentNetwork(nn.Module):
    """GRU, LSTM or Elman (tanh) cells stacked ``num_layers`` deep, plus a linear head.

    >>> config = ForecasterConfig(cell="lstm", hidden_size=8, n_features=2, hybrid=False, loss="gaussian")
    >>> net = RecurrentNetwork(config)
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
        sizes = [config.input_size] + [config.hidden_size] * (config.num_layers - 1)
        self.cells = nn.ModuleList(cell_class(size, config.hidden_size) for size in sizes)
        self.head = nn.Linear(config.hidden_size, config.output_size)
        if config.hybrid:  # the hybrid's correction starts at 0: an untrained model serves the experts' forecast
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

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
        if self._few_rows_step(x, state):  # (one series' tick: the compiled step, see gru_window.step)
            cell = self.cells[0]
            weights = (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
            return gru_window.step(x, state[:, 0], weights).unsqueeze(1)  # [B, 1, H]
        parts = min(PARTS, x.shape[0] // PART_ROWS)
        if parts > 1 and self.cell_type != "lstm" and not torch.is_grad_enabled():
            return self._advance_in_parts(x, state, parts)
        return self.stack(self.step(x, self.unstack(state)))

    def _advance_in_parts(self, x: torch.Tensor, state: torch.Tensor, count: int) -> torch.Tensor:
        """``advance`` of many rows without a graph: the rows in ``count`` parts of at least
        ``PART_ROWS``, each part's step with torch on one thread, the parts on ``one_thread``'s pool
        where torch has several threads (in turn on this one where it has one): the same bits on
        any number of threads. torch's own split of one call makes its threads wait for each other
        at the end of every operation: at 10,000 rows on 2 loaded cores (load average 7) a step
        took 18.5 ms that way, 9.3 on one thread, 3.2 in two parts on two (medians of 60, alternated)."""
        rows = x.shape[0]
        parts = [slice(rows * i // count, rows * (i + 1) // count) for i in range(count)]
        out = torch.empty_like(state)  # [B, layers, H]

        def run(chunks) -> None:
            with torch.no_grad():  # (the grad mode is each thread's own: none here, as in the caller)
                for i in chunks:
                    part = parts[i]
                    out[part] = self.stack(self.step(x[part], self.unstack(state[part])))

        one_thread.run_chunks(len(parts), run)
        return out

    def predict(self, state: State) -> torch.Tensor:
        """Forecast of the next value from ``state``: [B, p], p = d (mse) or 2d (gaussian).
        Without a graph, any cell and any number of rows, the head runs compiled
        (``gru_window.head``: its sums in float64, the same bits whatever the batch), so the
        forecast a tick of many series served equals a later forecast of one of them."""
        h = self.top(self.unstack(state))  # [B, H]
        if not torch.is_grad_enabled() and h.dtype == self.head.weight.dtype:
            return gru_window.head(h, self.head.weight, self.head.bias)  # [B, p]
        return self.predict_top(h)

    def _few_rows_step(self, x: torch.Tensor, state: State) -> bool:
        """Whether ``advance`` runs compiled (``gru_window.step``): one GRU layer, at most
        ``gru_window.FEW_ROWS`` rows, the input and the state in the weights' dtype (else torch's
        cell says what is wrong, whatever the rows), nothing recording a graph. More rows go
        through torch's cell, whose matrix products share the rows (the two differ by rounding:
        float64 sums here)."""
        return (
            self.cell_type == "gru"
            and self.num_layers == 1
            and x.shape[0] <= gru_window.FEW_ROWS
            and not torch.is_grad_enabled()
            and x.dtype == state.dtype == self.head.weight.dtype
        )

    # -- the per-layer layout of loops over steps ---------------------------------
    # A loop over the steps of a window works on the layers' states apart, a list of
    # [B, H] (lstm: (h, c)) per layer: stacking them into [B, layers, H] at every step
    # would cost two view ops per step, and two autograd nodes per step in a replay.
    def unstack(self, state: State) -> list:
        """[B, layers, H] (lstm: (h, c)) -> per layer [B, H] (lstm: (h, c)), views."""
        if self.cell_type == "lstm":
            h, c = state
            return list(zip(h.unbind(1), c.unbind(1), strict=True))
        return list(state.unbind(1))

    def stack(self, layers: list) -> State:
        """The inverse of ``unstack``."""
        if self.cell_type == "lstm":
            return (_stack([h for h, _ in layers]), _stack([c for _, c in layers]))
        return _stack(layers)

    def step(self, x: torch.Tensor, layers: list) -> list:
        """Consume ``x`` [B, d]: the layers' next states. The cells' functional ops are called
        with the cells' weights: what ``nn.GRUCell`` (etc.) computes, bit for bit, without
        the module call's checks and dispatch (a third of a one-row step's time)."""
        out, inp = [], x
        if self.cell_type == "lstm":
            for cell, (h, c) in zip(self.cells, layers, strict=True):
                h, c = torch.lstm_cell(inp, (h, c), cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
                out.append((h, c))  # [B, H] each
                inp = h
            return out
        cell_step = torch.gru_cell if self.cell_type == "gru" else torch.rnn_tanh_cell  # nn.RNNCell: tanh
        for cell, h in zip(self.cells, layers, strict=True):
            inp = cell_step(inp, h, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)  # [B, H]
            out.append(inp)
        return out

    def run_sequence(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Advance ``state`` over every value of ``x`` [L, B, d] (L >= 1) with one sequence
        op (torch.gru & co.: the input projections of all steps in one matrix product, the
        loop in C++): the top layer's h after each value [L, B, H], and the last state.
        The same function as L calls of ``advance``, to rounding (other kernels)."""
        params = [w for cell in self.cells for w in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)]
        flags = (True, self.num_layers, 0.0, self.training, False, False)  # biases, layers, no dropout, ...
        if self.cell_type == "lstm":
            h, c = state
            out, h_n, c_n = torch.lstm(x, (h.transpose(0, 1), c.transpose(0, 1)), params, *flags)
            return out, (h_n.transpose(0, 1), c_n.transpose(0, 1))  # [B, layers, H] x2
        sequence = torch.gru if self.cell_type == "gru" else torch.rnn_tanh
        out, h_n = sequence(x, state.transpose(0, 1), params, *flags)  # the op's state: [layers, B, H]
        return out, h_n.transpose(0, 1)  # [L, B, H], [B, layers, H]

    def top(self, layers: list) -> torch.Tensor:
        """The top layer's h [B, H]: what ``predict`` reads."""
        return layers[-1][0] if self.cell_type == "lstm" else layers[-1]

    def predict_top(self, h: torch.Tensor) -> torch.Tensor:
        """``predict`` from the top layer's h [N, H]: [N, p] (what ``self.head`` computes)."""
        return F.linear(h, self.head.weight, self.head.bias)


def _stack(layers: list[torch.Tensor]) -> torch.Tensor:
    """[B, H] per layer -> [B, layers, H] (one layer: a view, no copy)."""
    return layers[0].unsqueeze(1) if len(layers) == 1 else torch.stack(layers, dim=1)


def select_rows(active: torch.Tensor, new, old):
    """Rows where ``active`` [B] is True take ``new``, the others keep ``old`` (a tensor
    [B, ...], or a tuple or list of them, e.g. a state or its layers).

    Used for windows of different lengths padded at the front: a padded row's state
    stays put, and ``where`` gives the unused branch exactly zero gradient.
    """
    if isinstance(new, tuple | list):
        return type(new)(select_rows(active, n, o) for n, o in zip(new, old, strict=True))
    return torch.where(active.view(-1, *[1] * (new.dim() - 1)), new, old)


# Up to this many rows, a window without padding runs as one sequence op rather than a
# loop of steps: measured on the CPU (GRU, hidden 64, 32 steps, forward and backward),
# 17 % faster for 1 row, 9 % for 16, 3 % for 32, even at 64, and 40 % slower for 10,000
# rows. At 64 it is 2 Python calls instead of ~100, which matters where other threads
# want the GIL: in the service's HTTP benchmark (updates of ~64 series at a time) the
# single-POST p99 was 54 / 56 ms with 64 against 65 / 66 ms with 16 (runs interleaved).
SEQUENCE_OP_MAX_ROWS = 64


def _padded(active_from: torch.Tensor) -> bool:
    """Whether any window of a batch is front-padded (starts after the batch's first step)."""
    return bool((active_from.numpy() > 0).any())  # (numpy: a few integers without torch's per-call cost)


def _one_sequence_op(x: torch.Tensor, active_from: torch.Tensor) -> bool:
    return x.shape[0] > 0 and x.shape[1] <= SEQUENCE_OP_MAX_ROWS and not _padded(active_from)


def few_rows_gru(network: RecurrentNetwork, x: torch.Tensor, start: State, active_from: torch.Tensor) -> bool:
    """Whether a replay runs through ``gru_window`` (its docstring): one GRU layer, at most
    ``FEW_ROWS`` rows, no padding, a gradient wanted for the weights and for nothing else."""
    return 0 < x.shape[1] <= gru_window.FEW_ROWS and _plain_gru(network, x, start, active_from)


def many_rows_gru(network: RecurrentNetwork, x: torch.Tensor, start: State, active_from: torch.Tensor) -> bool:
    """Whether an update's replay can run through ``gru_rows`` (its docstring): as
    ``few_rows_gru`` asks, but at least ``gru_rows.MIN_ROWS`` rows. On several torch threads its
    chunks go to threads of their own, each on one (``one_thread``), with the same results."""
    return x.shape[1] >= gru_rows.MIN_ROWS and _plain_gru(network, x, start, active_from)


def _plain_gru(network: RecurrentNetwork, x: torch.Tensor, start: State, active_from: torch.Tensor) -> bool:
    """One GRU layer, no padding, a gradient wanted for the weights and for nothing else."""
    return (
        network.cell_type == "gru"
        and network.num_layers == 1
        and not _padded(active_from)
        and torch.is_grad_enabled()
        and not x.requires_grad
        and not start.requires_grad
        and network.cells[0].weight_hh.requires_grad
    )


def run_window(network: RecurrentNetwork, start: State, x: torch.Tensor, active_from: torch.Tensor) -> State:
    """Advance ``start`` over every value of the windows ``x`` [L, B, d] (front-padded:
    row i is real from ``active_from[i]`` on) and return the state after the last one."""
    if _one_sequence_op(x, active_from):
        return network.run_sequence(x, start)[1]
    padded = _padded(active_from)
    layers = network.unstack(start)
    for j in range(x.shape[0]):
        stepped = network.step(x[j], layers)
        layers = select_rows(active_from <= j, stepped, layers) if padded else stepped
    return network.stack(layers)


def states_before(
    network: RecurrentNetwork, start: State, x: torch.Tensor, active_from: torch.Tensor, first: int
) -> torch.Tensor:
    """The top layer's h before each value s >= ``first`` of the windows ``x`` [L, B, d]
    (padded as in ``run_window``), i.e. the state that forecasts x_s: ``[L - first, B, H]``.
    The state after the last value is never computed."""
    length = x.shape[0]
    compiled_gru = length > 1 and few_rows_gru(network, x, start, active_from)
    if compiled_gru or (length > 1 and _one_sequence_op(x, active_from)):  # over x_0 .. x_{L-2}: the states after
        if compiled_gru:
            cell = network.cells[0]
            weights = (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
            after = GRUWindow.apply(x[: length - 1], start[:, 0], *weights)  # [L - 1, B, H]
        else:
            after = network.run_sequence(x[: length - 1], start)[0]  # [L - 1, B, H]
        return after[first - 1 :] if first > 0 else torch.cat([network.top(network.unstack(start))[None], after])
    padded = _padded(active_from)
    layers, tops = network.unstack(start), []
    for j in range(length):
        if j >= first:
            tops.append(network.top(layers))
        if j < length - 1:  # the last value's own state is never needed
            stepped = network.step(x[j], layers)
            layers = select_rows(active_from <= j, stepped, layers) if padded else stepped
    return torch.stack(tops)  # [L - first, B, H]
