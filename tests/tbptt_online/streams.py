"""Deterministic test streams: ticks of (series, value) with staggered starts and gaps; seeded AR(1) noise."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

Tick = list[tuple[str, Any]]


def value_at(series_index: int, step: int, d: int) -> float | list[float]:
    """A smooth, trending, series-specific value (no randomness: reproducible anywhere)."""
    row = [math.sin(0.9 * step + 1.3 * series_index + 0.7 * f) + 0.05 * step - 0.3 * f for f in range(d)]
    return row[0] if d == 1 else row


def staggered_ticks(
    starts: Sequence[int],
    n_ticks: int,
    d: int = 1,
    missing: Sequence[tuple[int, int]] = (),
    partial: Sequence[tuple[int, int, int]] = (),
) -> list[Tick]:
    """Series "s0", "s1", ... enter at tick ``starts[i]`` and then observe every tick.

    ``missing`` (series index, step t) -> the whole value is None; ``partial`` (series
    index, step t, feature) -> that feature is None (d > 1).
    """
    ticks: list[Tick] = []
    for i in range(n_ticks):
        tick: Tick = []
        for j, start in enumerate(starts):
            if i < start:
                continue
            t = i - start + 1
            value: Any = value_at(j, t, d)
            if (j, t) in missing:
                value = None
            for pj, pt, feature in partial:
                if (pj, pt) == (j, t):
                    value = list(value)
                    value[feature] = None
            tick.append((f"s{j}", value))
        ticks.append(tick)
    return ticks


def ar1_stream(seed: int, phi: float, season: bool, n: int) -> np.ndarray:
    """Level 50 plus AR(1) noise (``phi``, innovations N(0, 1)), with a daily season of amplitude 5 where
    ``season``: ``n`` values, seeded."""
    rng = np.random.default_rng(seed)
    noise = np.zeros(n)
    for t in range(1, n):
        noise[t] = phi * noise[t - 1] + rng.normal()
    return 50.0 + noise + (5.0 * np.sin(2 * np.pi * np.arange(n) / 24) if season else 0.0)
