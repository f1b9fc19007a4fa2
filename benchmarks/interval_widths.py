"""Interval widths at the tracked horizons: how sharp the calibrated intervals are, served against the rule before.

A calibrated interval is not a useful one if it is calibrated by being wide half of the time and
narrow the other half. Per stream (the accuracy benchmark's, the series outside it, and with
``--pmdarima`` / ``--sktime`` those sets; the first ``MAX_VALUES`` values), prequential as
``benchmarks.accuracy`` (its warm-up): after each value the model is asked for 12 steps and,
at each horizon h = 1 .. 12 of each origin scored, three half-widths w are compared on the same
served mean:

- **served**: the library's (since session 46 a scale times a multiplier past one step, ``calibration``);
- **before**: session 45's rule, replayed here on the same served means: at every horizon the rule the
  one-step width keeps (``calibration.stepped``: ``q_h <- q_h exp(RATE (1{e > w_served} - 0.1))``,
  RATE 0.4, the first error setting 2 |e|, a forecast served without a
  width of its own judged against q_h, at least ``SLACK`` of the widest shorter horizon, q_1 sqrt(h)
  before a horizon has its own, a floor of 2^-23 of the value, under which the first error above it
  sets q again; and the errors of the values as they came, where the library scores a value beyond
  its bound at the bound);
- **hindsight**: the constant half-width that covers 90 % of the stream's scored errors at h, chosen
  after the fact (no online rule can know it).

Scored per stream and horizon: the coverage of mean +- w, the interval score of that interval
(Gneiting & Raftery 2007: ``2 w + (2 / 0.1) max(0, |e| - w)``, lower is better; it rewards a
narrow interval and charges each miss by its distance) over the hindsight width's, and the mean
and 95th percentile of w over the hindsight width. Summaries: cells at h = 1, 6, 12 more than 5
points from 90 %, the mean distance, and geometric means over the streams of each ratio (each
stream's mean over h = 1 .. 12).

    python -m benchmarks.interval_widths --pmdarima /tmp/wheels --sktime /tmp/wheels
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import report
from benchmarks.accuracy import warmup_of
from benchmarks.outside_series import outside_series
from benchmarks.pmdarima_series import pmdarima_series
from benchmarks.real_series import RealSeries, all_series
from benchmarks.sktime_series import sktime_series
from tbptt_online import Forecaster, ForecasterConfig, calibration

LEVEL = 0.9
HORIZON = 12  # ForecasterConfig().calibrated_horizon
SHOWN = (1, 6, 12)  # the horizons of the acceptance's coverage cells
OFF = 0.05  # a cell this far from the level is flagged
MAX_VALUES = 3000
SMOKE = {"streams": 2, "values": 120}
RULES = ("served", "before", "hindsight")
REPLAY_FLOOR = 2.0**-23  # the replay's floor, a share of the value (the kernels' STORED_RESOLUTION)


def streams(pmdarima: Path | None, sktime: Path | None) -> list[RealSeries]:
    found = all_series() + outside_series()
    found += pmdarima_series(pmdarima) if pmdarima else []
    found += sktime_series(sktime) if sktime else []
    return found


def recorded(series: RealSeries, values: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stream's values [n] and, after each, the served mean and half-width [n, H] (NaN: none)."""
    y = np.asarray(series.values[:values], dtype=np.float64)
    forecaster = Forecaster(ForecasterConfig())
    mean, half = np.full((len(y), HORIZON), np.nan), np.full((len(y), HORIZON), np.nan)
    for t, value in enumerate(y):
        forecaster.observe("y", float(value))
        forecast = forecaster.forecast("y", HORIZON, LEVEL)
        mean[t] = forecast.mean
        half[t] = [math.nan if u is None else u - m for u, m in zip(forecast.upper, forecast.mean, strict=True)]
    return y, mean, half


def replayed_before(y: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """[n, H] the half-widths session 45's rule would have served with these means (module doc): at every
    horizon the one-step width's rule (``calibration.stepped``), served as ``calibration.half_widths``."""
    n = len(y)
    q = torch.zeros(1, HORIZON, 1, dtype=torch.float64)  # each horizon's own width (0: none yet)
    served, own = np.full((n, HORIZON), np.nan), np.zeros((n, HORIZON), dtype=bool)
    for t in range(n):
        floor = REPLAY_FLOOR * abs(y[t])  # (the kernels': float32's spacing about the served mean, at least)
        for h in range(1, HORIZON + 1):
            origin = t - h
            if origin < 0 or math.isnan(mean[origin, h - 1]):
                continue
            error = abs(y[t] - mean[origin, h - 1])
            width = served[origin, h - 1] if own[origin, h - 1] else 0.0  # 0: none of its own when served
            q[0, h - 1, 0] = calibration.stepped(q[0, h - 1, 0].item(), error, LEVEL, floor, width)
        own[t] = q[0, :, 0].numpy() > 0
        served[t] = calibration.half_widths(q, HORIZON)[0, :, 0].numpy()
    return served


def sharpness(error: np.ndarray, half: np.ndarray, hindsight: float) -> dict[str, float]:
    """How sharp the intervals mean +- ``half`` are for the absolute errors ``error``, against the constant
    half-width ``hindsight``: their interval score over its (``score_ratio``), and their mean and 95th
    percentile over it (``width_ratio``, ``p95_width_ratio``); NaN where it is not > 0."""
    best = _interval_score(error, np.full_like(error, hindsight))
    return {
        "score_ratio": _interval_score(error, half) / best if best > 0 else math.nan,
        "width_ratio": float(np.mean(half)) / hindsight if hindsight > 0 else math.nan,
        "p95_width_ratio": float(np.quantile(half, 0.95)) / hindsight if hindsight > 0 else math.nan,
    }


def scored(series: RealSeries, values: int) -> dict[str, Any]:
    """Coverage, interval score and width of each rule at h = 1 .. H on one stream (module doc)."""
    y, mean, half = recorded(series, values)
    before = replayed_before(y, mean)
    used = RealSeries(series.name, list(series.values[:values]), series.period, series.source)
    warm, n = warmup_of(used), len(y)
    out: dict[str, Any] = {"stream": series.name, "values": n, "horizons": {}}
    for h in range(1, HORIZON + 1):
        origins = np.arange(max(warm - h, 0), n - h)  # forecasts of the values after the warm-up
        error = np.abs(y[origins + h] - mean[origins, h - 1])
        widths = {"served": half[origins, h - 1], "before": before[origins, h - 1]}
        known = ~np.isnan(error) & ~np.isnan(widths["served"]) & ~np.isnan(widths["before"])
        if known.sum() < 10:  # too few scored to say anything
            continue
        error = error[known]
        widths = {rule: w[known] for rule, w in widths.items()}
        hindsight = float(np.quantile(error, LEVEL))
        widths["hindsight"] = np.full_like(error, hindsight)
        out["horizons"][str(h)] = {
            "scored": int(known.sum()),
            "hindsight_half_width": hindsight,
            **{
                rule: {"coverage": float(np.mean(error <= w)), **sharpness(error, w, hindsight)}
                for rule, w in widths.items()
            },
        }
    return out


def _interval_score(error: np.ndarray, half: np.ndarray) -> float:
    """The mean interval score of mean +- ``half`` at LEVEL for the absolute errors ``error``."""
    return float(np.mean(2 * half + (2 / (1 - LEVEL)) * np.maximum(error - half, 0.0)))


def summary(rows: list[dict[str, Any]], rule: str) -> dict[str, Any]:
    cells = [r["horizons"][str(h)][rule]["coverage"] for r in rows for h in SHOWN if str(h) in r["horizons"]]
    gaps = [abs(r["horizons"][h][rule]["coverage"] - LEVEL) for r in rows for h in r["horizons"]]
    means = {
        key: [np.mean([v[rule][key] for v in r["horizons"].values()]) for r in rows if r["horizons"]]
        for key in ("score_ratio", "width_ratio", "p95_width_ratio")
    }
    return {
        "cells_off": int(sum(abs(c - LEVEL) > OFF for c in cells)),
        "cells": len(cells),
        "mean_abs_gap_points": float(100 * np.mean(gaps)),
        **{f"geomean_{key}": float(np.exp(np.mean(np.log(v)))) for key, v in means.items()},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = report.parser(__doc__.splitlines()[0])
    parser.add_argument("--pmdarima", type=Path, default=None, help="also pmdarima's series, from its wheel here")
    parser.add_argument("--sktime", type=Path, default=None, help="also sktime's series, from its wheel here")
    args = parser.parse_args(argv)
    info = report.machine("benchmarks.interval_widths", argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    chosen = streams(args.pmdarima, args.sktime)
    if args.smoke:
        chosen = chosen[: SMOKE["streams"]]
    values = SMOKE["values"] if args.smoke else MAX_VALUES
    rows = [scored(s, values) for s in chosen]
    payload = {
        "benchmark": "interval_widths",
        "smoke": args.smoke,
        "machine": info,
        "level": LEVEL,
        "rows": rows,
        "summary": {rule: summary(rows, rule) for rule in RULES},
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    markdown = "\n".join(
        [
            "## Interval widths at the tracked horizons: served, the rule before, and hindsight",
            "",
            report.machine_line(info),
            "",
            f"`ForecasterConfig()`, {len(rows)} streams, prequential after the accuracy benchmark's warm-up; at "
            f"each horizon h = 1 .. {HORIZON} the {100 * LEVEL:.0f} % interval mean +- w of the served mean, w "
            "served (the library's), before (session 45's rule replayed on the same means) and in hindsight "
            "(the constant that covers 90 % after the fact). Coverage at h = 1, 6, 12 (flagged *: more than "
            f"{100 * OFF:.0f} points off); score: the interval score over the hindsight width's, the stream's mean "
            "over h = 1 .. 12 (lower is better, 1 = the hindsight width's); p95: the 95th percentile of w over "
            "the hindsight width, the same mean.",
            "",
            report.markdown_table(
                [
                    "stream",
                    "values",
                    *[f"served h={h}" for h in SHOWN],
                    *[f"before h={h}" for h in SHOWN],
                    "score served / before",
                    "p95 served / before",
                ],
                [_row(r) for r in rows if r["horizons"]],
            ),
            "",
            *[
                f"- {rule}: {s['cells_off']} of {s['cells']} cells at h = 1, 6, 12 more than {100 * OFF:.0f} "
                f"points off; mean distance from {100 * LEVEL:.0f} % over h = 1 .. 12: "
                f"{s['mean_abs_gap_points']:.2f} points; geometric means: interval score / hindsight's "
                f"{s['geomean_score_ratio']:.3f}, mean width / hindsight {s['geomean_width_ratio']:.3f}, "
                f"95th percentile of the width / hindsight {s['geomean_p95_width_ratio']:.2f}"
                for rule, s in payload["summary"].items()
            ],
        ]
    )
    report.write(args.out, "interval_widths", payload, markdown)
    print(markdown)
    return payload


def _row(r: dict[str, Any]) -> list[Any]:
    def mean_of(rule: str, key: str) -> float:
        return float(np.mean([v[rule][key] for v in r["horizons"].values()]))

    def cell(rule: str, h: int) -> str:
        found = r["horizons"].get(str(h))
        if found is None:
            return "-"
        share = found[rule]["coverage"]
        return f"{100 * share:.1f} %" + (" *" if abs(share - LEVEL) > OFF else "")

    return [
        r["stream"],
        r["values"],
        *[cell("served", h) for h in SHOWN],
        *[cell("before", h) for h in SHOWN],
        f"{mean_of('served', 'score_ratio'):.3f} / {mean_of('before', 'score_ratio'):.3f}",
        f"{mean_of('served', 'p95_width_ratio'):.2f} / {mean_of('before', 'p95_width_ratio'):.2f}",
    ]


if __name__ == "__main__":
    main()
