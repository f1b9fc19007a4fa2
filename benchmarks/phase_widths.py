"""Interval widths per phase of a season: noise that grows with the level (session 54).

Hourly streams with a daily season of 24 whose mean runs from 10 at night to 100 at the peak,
``10 + 90 (1 - cos(2 pi (t - 2) / 24)) / 2`` (night at hour 2, peak at hour 14), ``VALUES`` values each:

- **poisson**: counts, Poisson of that mean (sd 3.2 at night, 10 at the peak);
- **lognormal**: that mean times lognormal noise of sigma 0.15 (sd 1.5 at night, 15 at the peak);
- **constant**: that mean plus normal noise of sd 6 at every hour (the control).

Prequential as ``benchmarks.interval_widths``: after each value the model (``ForecasterConfig()``,
``season_length="auto"``) is asked for 12 steps at 90 %, and from value ``SCORED_FROM`` on each served
interval (lower, upper as served) is scored against the value it forecast: coverage per phase of the
target (night: the 7 hours whose mean is under 25; peak: the 7 whose mean is over 85) at h = 1, 6, 12,
overall coverage at h = 1 .. 12, and the interval score (Winkler: ``(u - l) + (2 / 0.1) (distance
outside)``) at h = 1 .. 12, per stream and seed (``SEEDS``).

    python -m benchmarks.phase_widths --out /tmp/phase
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from tbptt_online import Forecaster, ForecasterConfig

SEASON = 24
VALUES = 2000
SCORED_FROM = 500
HORIZON = 12
LEVEL = 0.9
SEEDS = (0, 1, 2)
KINDS = ("poisson", "lognormal", "constant")
SHOWN = (1, 6, 12)


def mean_at(t: np.ndarray) -> np.ndarray:
    return 10.0 + 90.0 * (1.0 - np.cos(2.0 * np.pi * (t - 2) / SEASON)) / 2.0


def stream(kind: str, seed: int, n: int = VALUES) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mu = mean_at(np.arange(n))
    if kind == "poisson":
        return rng.poisson(mu).astype(np.float64)
    if kind == "lognormal":
        return mu * np.exp(0.15 * rng.standard_normal(n) - 0.15**2 / 2)
    return mu + 6.0 * rng.standard_normal(n)


def scored(y: np.ndarray) -> dict:
    """Coverage per phase group and horizon, overall coverage and interval score of one stream."""
    forecaster = Forecaster(ForecasterConfig())
    n = len(y)
    lower, upper = np.full((n, HORIZON), np.nan), np.full((n, HORIZON), np.nan)
    for t, value in enumerate(y):
        forecaster.observe("y", float(value))
        forecast = forecaster.forecast("y", HORIZON, LEVEL)
        lower[t] = [math.nan if v is None else v for v in forecast.lower]
        upper[t] = [math.nan if v is None else v for v in forecast.upper]
    mu = mean_at(np.arange(n))
    night, peak = mu < 25.0, mu > 85.0
    out: dict = {"coverage": {}, "night": {}, "peak": {}, "score": []}
    covered_all, scores = [], []
    for h in range(1, HORIZON + 1):
        origins = np.arange(SCORED_FROM - h, n - h)  # targets SCORED_FROM .. n - 1
        target = origins + h
        lo, up, value = lower[origins, h - 1], upper[origins, h - 1], y[target]
        inside = (value >= lo) & (value <= up)
        width = up - lo
        score = width + (2.0 / (1.0 - LEVEL)) * (np.maximum(lo - value, 0.0) + np.maximum(value - up, 0.0))
        covered_all.append(inside.mean())
        scores.append(float(score.mean()))
        out["coverage"][h] = float(inside.mean())
        out["night"][h] = float(inside[night[target]].mean())
        out["peak"][h] = float(inside[peak[target]].mean())
    out["overall"] = float(np.mean(covered_all))
    out["score"] = float(np.mean(scores))
    out["score_by_h"] = scores
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--values", type=int, default=VALUES)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    results = {}
    for kind in KINDS:
        for seed in SEEDS:
            results[f"{kind}/{seed}"] = scored(stream(kind, seed, args.values))
            r = results[f"{kind}/{seed}"]
            cells = " ".join(f"h{h} night {r['night'][h]:.3f} peak {r['peak'][h]:.3f}" for h in SHOWN)
            print(f"{kind}/{seed}: {cells} overall {r['overall']:.3f} score {r['score']:.2f}", flush=True)
    payload = {"benchmark": "phase_widths", "results": results, "wall_seconds": round(time.perf_counter() - started)}
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "phase_widths.json").write_text(json.dumps(payload, indent=1))
    return payload


if __name__ == "__main__":
    main()
