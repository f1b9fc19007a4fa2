"""Interval coverage past the last far horizon: a day ahead of 15-minute data, a week of hourly data.

A forecast asked past the last far horizon (48 with the defaults, ``calibration.far_horizons``) is served a
width extrapolated from the widths the model tracks (``calibration.beyond``); nothing calibrates it there. Per
stream, prequential after the accuracy benchmark's warm-up, from every ``EVERY``-th origin: the model is asked
for ``max(HORIZONS)`` steps, and the share of the values inside its 90 % interval at each of ``HORIZONS`` is
counted, with the interval score of mean +- w over that of the constant half-width that covers 90 % of the
stream's errors at h in hindsight (as ``benchmarks.far_horizons``). Streams: the accuracy work's of at least
``MIN_VALUES`` values (the first ``MAX_VALUES``; pmdarima's and sktime's too with ``--pmdarima`` /
``--sktime``), and four seeded families of the cadences where such horizons are asked (``synthetic``): a
15-minute sensor (a daily cycle of 96, AR(1) noise, a slow drift), hourly demand (a daily cycle times a weekly
one, multiplicative noise), a random walk seen through noise, a local linear trend.

    python -m benchmarks.past_far_horizons --pmdarima /tmp/wheels --sktime /tmp/wheels
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import far_horizons, interval_widths, report
from benchmarks.accuracy import warmup_of
from benchmarks.real_series import RealSeries
from tbptt_online import Forecaster, ForecasterConfig

HORIZONS = (48, 72, 96, 144, 192)
PAST = HORIZONS[1:]  # the horizons past the last far one (48)
LEVEL = far_horizons.LEVEL  # (its ``widths`` scores the intervals at this level)
EVERY = 3  # an origin every 3 values: a 192-step forecast from each value costs more than the run's learning
MIN_VALUES = 600  # 192 steps ahead need a long stream to score a few hundred origins
MAX_VALUES = 3000
OFF = far_horizons.OFF  # a cell this far from the level is flagged (as there)
SMOKE = {"streams": 2, "values": 260}


def synthetic() -> list[RealSeries]:
    """Four seeded families (module doc), 15 streams."""
    out = []
    for seed in range(6):  # 15-minute sensor: 28 days
        g = np.random.default_rng(100 + seed)
        n = 96 * 28
        t = np.arange(n)
        daily = 3.0 * np.sin(2 * np.pi * t / 96 + g.uniform(0, 6)) + np.sin(4 * np.pi * t / 96)
        noise = np.zeros(n)
        for i in range(1, n):
            noise[i] = 0.9 * noise[i - 1] + g.normal(0, 0.3)
        y = 20 + daily + noise + np.cumsum(g.normal(0, 0.01, n))
        out.append(RealSeries(f"sensor_15min_{seed}", y.tolist(), 96, "synthetic"))
    for seed in range(3):  # hourly demand: 14 weeks
        g = np.random.default_rng(200 + seed)
        t = np.arange(24 * 7 * 14)
        shape = (100 + 30 * np.sin(2 * np.pi * t / 24)) * (1 + 0.2 * np.sin(2 * np.pi * t / 168))
        out.append(
            RealSeries(f"hourly_demand_{seed}", (shape * np.exp(g.normal(0, 0.08, len(t)))).tolist(), 24, "synthetic")
        )
    for seed in range(3):  # a random walk seen through noise
        g = np.random.default_rng(300 + seed)
        y = np.cumsum(g.normal(0, 1, 2000)) + g.normal(0, 0.5, 2000)
        out.append(RealSeries(f"noisy_walk_{seed}", y.tolist(), 1, "synthetic"))
    for seed in range(3):  # a local linear trend
        g = np.random.default_rng(400 + seed)
        y = np.cumsum(np.cumsum(g.normal(0, 0.02, 2000))) + g.normal(0, 1, 2000)
        out.append(RealSeries(f"local_trend_{seed}", y.tolist(), 1, "synthetic"))
    return out


def scored(series: RealSeries, values: int) -> dict[str, Any]:
    """Coverage and interval score ratio at ``HORIZONS`` of one stream's first ``values``."""
    y = np.asarray(series.values[:values], dtype=np.float64)
    used = RealSeries(series.name, y.tolist(), series.period, series.source)
    n, longest, warm = len(y), max(HORIZONS), warmup_of(used)
    forecaster = Forecaster(ForecasterConfig())
    inside: dict[int, list[bool]] = {h: [] for h in HORIZONS}
    half: dict[int, list[float]] = {h: [] for h in HORIZONS}
    errors: dict[int, list[float]] = {h: [] for h in HORIZONS}
    for t in range(n):
        if warm <= t <= n - longest and t % EVERY == 0:
            forecast = forecaster.forecast("y", longest, LEVEL)
            for h in HORIZONS:
                if forecast.upper[h - 1] is None:  # (no interval yet)
                    continue
                target, mean = y[t + h - 1], forecast.mean[h - 1]
                inside[h].append(forecast.lower[h - 1] <= target <= forecast.upper[h - 1])
                half[h].append(forecast.upper[h - 1] - mean)
                errors[h].append(abs(target - mean))
        forecaster.observe("y", float(y[t]))
    return {
        "stream": series.name,
        "values": n,
        "origins": len(inside[longest]),
        "coverage": {str(h): float(np.mean(inside[h])) if inside[h] else math.nan for h in HORIZONS},
        "score_ratio": {str(h): far_horizons.widths(errors[h], half[h])["score_ratio"] for h in HORIZONS},
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    cells = np.array([[r["coverage"][str(h)] for h in PAST] for r in rows])  # [streams, H]
    scores = np.array([np.mean([r["score_ratio"][str(h)] for h in PAST]) for r in rows])
    return {
        "cells_off": int((np.abs(cells - LEVEL) > OFF).sum()),
        "cells": int(cells.size),
        "mean_abs_gap_points": float(100 * np.nanmean(np.abs(cells - LEVEL))),
        "mean_coverage": {str(h): float(np.nanmean(cells[:, i])) for i, h in enumerate(PAST)},
        "geomean_score_ratio": float(np.exp(np.mean(np.log(scores[np.isfinite(scores)])))),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = report.parser(__doc__.splitlines()[0])
    parser.add_argument("--pmdarima", type=Path, default=None, help="also pmdarima's series, from its wheel here")
    parser.add_argument("--sktime", type=Path, default=None, help="also sktime's series, from its wheel here")
    args = parser.parse_args(argv)
    info = report.machine("benchmarks.past_far_horizons", argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    chosen = [s for s in interval_widths.streams(args.pmdarima, args.sktime) if len(s.values) >= MIN_VALUES]
    chosen += synthetic()
    if args.smoke:
        chosen = chosen[: SMOKE["streams"]]
    values = SMOKE["values"] if args.smoke else MAX_VALUES
    rows = [scored(s, values) for s in chosen]
    payload = {
        "benchmark": "past_far_horizons",
        "smoke": args.smoke,
        "machine": info,
        "level": LEVEL,
        "horizons": list(HORIZONS),
        "rows": rows,
        "summary": summary(rows),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    s = payload["summary"]
    markdown = "\n".join(
        [
            "## Interval coverage past the last far horizon",
            "",
            report.machine_line(info),
            "",
            f"`ForecasterConfig()`, {len(rows)} streams, prequential from every {EVERY}rd origin after the accuracy "
            f"benchmark's warm-up: the share of the values inside the {100 * LEVEL:.0f} % interval served h steps "
            f"before them, and the interval score over the hindsight width's; flagged (*): more than "
            f"{100 * OFF:.0f} points off.",
            "",
            report.markdown_table(
                ["stream", "values", "origins", *[f"h={h}" for h in HORIZONS], *[f"score h={h}" for h in PAST]],
                [
                    [
                        r["stream"],
                        r["values"],
                        r["origins"],
                        *[far_horizons.coverage_cell(r["coverage"][str(h)]) for h in HORIZONS],
                        *[f"{r['score_ratio'][str(h)]:.2f}" for h in PAST],
                    ]
                    for r in rows
                ],
            ),
            "",
            f"- {s['cells_off']} of {s['cells']} cells at h = {', '.join(map(str, PAST))} more than "
            f"{100 * OFF:.0f} points off; mean distance from {100 * LEVEL:.0f} %: {s['mean_abs_gap_points']:.2f} "
            f"points; mean coverage {', '.join(f'{100 * c:.1f} %' for c in s['mean_coverage'].values())}; "
            f"geometric mean over the streams of the interval score over the hindsight width's (each one's mean "
            f"over those horizons): {s['geomean_score_ratio']:.3f}",
        ]
    )
    report.write(args.out, "past_far_horizons", payload, markdown)
    print(markdown)
    return payload


if __name__ == "__main__":
    main()
