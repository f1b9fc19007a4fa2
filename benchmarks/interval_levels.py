"""Interval coverage at other levels than the tracked one, learned against the normal ratio.

The hybrid tracks one level's half-width per horizon (``interval_level``, 0.9; ``calibration``)
and serves another level ``L`` as that width times a ratio. Two ratios side by side, from the
same run: the one it serves (``calibration.level_ratios``: learned per series and horizon from
the errors over the tracked width, ``c_shape``) and the normal distribution's z(L) / z(0.9),
which it served before session 30 (the tracked interval's half-width, read from the forecast
at 0.9, times that ratio about the same mean). Per stream, prequential with the accuracy
benchmark's warm-up (``benchmarks.accuracy.warmup_of``): after each value from the warm-up on,
one forecast of 12 steps at each level; a value h steps later is inside or not, for h = 1, 6,
12, over the origins that had an interval. The cut at 0 of a series never below 0 does not
change whether a value at or above 0 is inside, so the normal intervals are not cut.

    python -m benchmarks.interval_levels [--pmdarima DIR] [--smoke] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from benchmarks import report
from benchmarks.accuracy import HORIZON, warmup_of
from benchmarks.outside_series import outside_series
from benchmarks.pmdarima_series import pmdarima_series
from benchmarks.real_series import RealSeries, all_series
from tbptt_online import Forecaster, ForecasterConfig
from tbptt_online.intervals import z_value

LEVELS = (0.5, 0.8, 0.9, 0.95, 0.99)
HORIZONS = (1, 6, 12)
TRACKED = 0.9  # ForecasterConfig().interval_level
WAYS = ("learned", "normal")
SMOKE_VALUES = 90


def coverage(series: RealSeries) -> dict[str, Any]:
    """Per way, level and horizon: the share of values inside, over ``origins`` [h]."""
    torch.set_num_threads(1)
    forecaster, values = Forecaster(ForecasterConfig()), series.values
    n, start = len(values), warmup_of(series)
    inside = {(way, level, h): 0 for way in WAYS for level in LEVELS for h in HORIZONS}
    origins = dict.fromkeys(HORIZONS, 0)
    for t, y in enumerate(values):
        forecaster.observe("y", y)
        if t + 1 < start:
            continue
        asked = {level: forecaster.forecast("y", HORIZON, level) for level in LEVELS}
        tracked = asked[TRACKED]
        for h in HORIZONS:
            if t + h >= n or tracked.lower[h - 1] is None:
                continue
            origins[h] += 1
            target, mean = values[t + h], tracked.mean[h - 1]
            for level in LEVELS:
                made = asked[level]
                inside["learned", level, h] += made.lower[h - 1] <= target <= made.upper[h - 1]
                half = (tracked.upper[h - 1] - mean) * z_value(level) / z_value(TRACKED)
                inside["normal", level, h] += mean - half <= target <= mean + half
    return {
        "stream": series.name,
        "origins": origins,
        "coverage": {
            f"{way} {level} h{h}": inside[way, level, h] / origins[h] if origins[h] else None
            for way in WAYS
            for level in LEVELS
            for h in HORIZONS
        },
    }


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per way and level: the mean coverage at each horizon, the mean distance from the level in
    points and how many (stream, horizon) figures are more than 5 points from it."""
    out = []
    for level in LEVELS:
        for way in WAYS:
            figures = {h: [r["coverage"][f"{way} {level} h{h}"] for r in rows] for h in HORIZONS}
            every = [x for h in HORIZONS for x in figures[h] if x is not None]
            out.append(
                {
                    "level": level,
                    "way": way,
                    **{f"mean h{h}": sum(x for x in figures[h] if x is not None) / len(figures[h]) for h in HORIZONS},
                    "mean_distance_points": 100 * sum(abs(x - level) for x in every) / len(every),
                    "more_than_5_points": sum(abs(x - level) > 0.05 for x in every),
                    "figures": len(every),
                }
            )
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = report.parser(__doc__.splitlines()[0])
    parser.add_argument("--pmdarima", type=Path, default=None, help="also the seven of benchmarks.pmdarima_series")
    args: argparse.Namespace = parser.parse_args(argv)
    info = report.machine("benchmarks.interval_levels", argv)
    streams = [*all_series(), *outside_series(), *(pmdarima_series(args.pmdarima) if args.pmdarima else [])]
    if args.smoke:  # two short streams
        streams = [dataclasses.replace(s, values=s.values[:SMOKE_VALUES]) for s in streams[:2]]
    started = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        rows = list(pool.map(coverage, streams))
    table = summary(rows)
    payload = {
        "benchmark": "interval_levels",
        "smoke": args.smoke,
        "machine": info,
        "levels": LEVELS,
        "horizons": HORIZONS,
        "rows": rows,
        "summary": table,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    shown = [(level, way) for level in (0.5, 0.99) for way in WAYS]  # the per-stream table's columns
    per_stream = [
        [r["stream"], *(" / ".join(_percent(r["coverage"][f"{w} {lv} h{h}"]) for h in HORIZONS) for lv, w in shown)]
        for r in rows
    ]
    markdown = "\n".join(
        [
            "## Interval coverage at other levels (the tracked one: 90 %)",
            "",
            report.machine_line(info),
            "",
            f"{len(rows)} streams (the accuracy benchmark's 12, the 10 outside it"
            f"{', pmdarima' + chr(39) + 's 7' if args.pmdarima else ''}), `ForecasterConfig()`, prequential; "
            "coverage in per cent at h = 1 / 6 / 12; learned: as served (`calibration.level_ratios`); "
            "normal: the 90 % half-width times z(L) / z(0.9).",
            "",
            report.markdown_table(
                ["level", "way", "mean coverage h=1 / 6 / 12", "mean distance (points)", "figures > 5 points off"],
                [
                    [
                        t["level"],
                        t["way"],
                        " / ".join(f"{100 * t[f'mean h{h}']:.1f}" for h in HORIZONS),
                        f"{t['mean_distance_points']:.2f}",
                        f"{t['more_than_5_points']} of {t['figures']}",
                    ]
                    for t in table
                ],
            ),
            "",
            "Per stream at 50 % and 99 % (h = 1 / 6 / 12):",
            "",
            report.markdown_table(
                ["stream", "50 % learned", "50 % normal", "99 % learned", "99 % normal"],
                per_stream,
            ),
        ]
    )
    report.write(args.out, "interval_levels", payload, markdown)
    print(markdown)
    return payload


def _percent(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


if __name__ == "__main__":
    main()
