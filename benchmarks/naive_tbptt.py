"""The naive way: one model per series, one call per observation, the textbook TBPTT loop.

This is what a user writes without the library, and what the throughput benchmark
compares against. It computes the same thing per series as the library's stateful
mode (GRU cell, linear head for mean and variance, gaussian loss, TBPTT(k1, k2) by
replaying the last k2 inputs from a detached state every k1 steps, Adam, clipping),
but one series at a time and without normalisation or scoring, so it is if anything
cheaper per observation than the library's bookkeeping.

Being a baseline outside the library, it has its own ``backward()`` (the library's only
one stays in ``tbptt_online/engine.py``).

>>> model = NaiveSeriesModel(hidden_size=8, k1=2, k2=4, seed=0)
>>> forecasts = [model.observe(v) for v in (1.0, 2.0, 3.0, 4.0)]
>>> model.steps, model.updates, isinstance(forecasts[-1], float)
(4, 2, True)
"""

from __future__ import annotations

import math
from collections import deque

import torch
from torch import nn
from torch.nn import functional as F


class NaiveSeriesModel:
    """One series' own GRU cell, head and optimizer."""

    def __init__(self, hidden_size: int, k1: int, k2: int, lr: float = 1e-3, seed: int = 0) -> None:
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        self.cell = nn.GRUCell(1, hidden_size)
        self.head = nn.Linear(hidden_size, 2)  # mean and variance parameter of the next value
        torch.random.set_rng_state(generator_state)
        self.params = [*self.cell.parameters(), *self.head.parameters()]
        self.optimizer = torch.optim.Adam(self.params, lr=lr)
        self.k1, self.k2 = k1, k2
        self.h = torch.zeros(1, hidden_size)  # [1, H] the carried state; never holds a graph
        self.inputs: deque[torch.Tensor] = deque(maxlen=k2)  # the last k2 inputs, each [1, 1]
        self.starts: deque[torch.Tensor] = deque(maxlen=k2)  # the state before each of them, [1, H]
        self.steps = 0
        self.updates = 0

    def observe(self, value: float) -> float:
        """Consume one value, update every k1 steps, return the forecast of the next value."""
        x = torch.tensor([[value]])  # [1, 1]
        self.starts.append(self.h)
        self.inputs.append(x)
        with torch.no_grad():
            self.h = self.cell(x, self.h)  # [1, H]
        self.steps += 1
        if self.steps % self.k1 == 0:
            self._update()
        with torch.no_grad():
            return float(self.head(self.h)[0, 0])

    def _update(self) -> None:
        # The window starts at the state stored before its first input, which was made
        # without a graph: detach() makes the truncation explicit (no gradient crosses it).
        h = self.starts[0].detach()
        first_scored = len(self.inputs) - min(self.k1, self.k2)
        loss = torch.zeros(())
        for j, x in enumerate(self.inputs):
            if j >= first_scored:
                pred = self.head(h)  # [1, 2]
                var = F.softplus(pred[:, 1]) + 1e-6
                loss = loss + 0.5 * (torch.log(var) + (x[:, 0] - pred[:, 0]) ** 2 / var).sum()
            if j < len(self.inputs) - 1:  # the last input's own state is never needed by a loss
                h = self.cell(x, h)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # the baseline's own backward, one per k1 steps of this series
        norm = nn.utils.clip_grad_norm_(self.params, 1.0)
        if math.isfinite(float(norm)):
            self.optimizer.step()
        self.updates += 1
