"""Where stateless windows come from: uniform draws over every retained window.

A series with n retained values (n = min(steps, history size)) holds n - k2 + 1
windows of length k2; each of them, over all series, is equally likely.
"""

from __future__ import annotations

from typing import Protocol

import torch


class WindowSampler(Protocol):
    def __call__(self, steps: torch.Tensor, retained: int, k2: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Given each slot's step count ``steps`` [C], return ``n`` windows as
        (slots [n], last steps [n]); every window must lie in the retained history."""
        ...


class UniformWindowSampler:
    """The default sampler, driven by its own seeded generator (saved in checkpoints).

    >>> sampler = UniformWindowSampler(seed=0)
    >>> slots, ends = sampler(torch.tensor([3, 10]), retained=8, k2=4, n=5)
    >>> bool(((slots == 1) & (ends >= 6) & (ends <= 10)).all())  # slot 0 holds no window
    True
    """

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, steps: torch.Tensor, retained: int, k2: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        windows = (steps.clamp(max=retained) - k2 + 1).clamp(min=0)  # [C] windows per slot
        total = int(windows.sum())
        if total == 0:
            return torch.empty(0, dtype=torch.int64), torch.empty(0, dtype=torch.int64)
        draws = torch.randint(total, (n,), generator=self.generator)  # [n] in [0, total)
        bounds = windows.cumsum(0)  # [C]
        slots = torch.searchsorted(bounds, draws, right=True)  # [n]
        offset = draws - (bounds[slots] - windows[slots])  # [n] 0 .. windows-1, 0 = newest
        return slots, steps[slots] - offset
