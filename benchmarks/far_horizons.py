"""Interval coverage past the calibrated horizon: the far horizons' widths against the rule before them.

A forecast asked past ``calibrated_horizon`` (12) is served a half-width from the widths the model tracks:
since session 45 the far horizons' (24 and 48, ``calibration.far_horizons``), each calibrated on the
forecasts served there; before, ``q_12 sqrt(h / 12)`` alone. Per stream (the accuracy benchmark's, the
series outside it, and with ``--pmdarima`` / ``--sktime`` those sets; streams of at least ``MIN_VALUES``
values, the first ``MAX_VALUES``), prequential as ``benchmarks.accuracy`` (its warm-up, of the values
used): after each value the model is asked for 48 steps, and the share of the values inside its 90 %
interval at h = 6, 12, 18, 24, 36 and 48 is counted, for the widths it serves and for the rule of before
computed from the same state (``c_q`` alone, ``calibration.half_widths``, times the same phase factors,
``calibration.phase_widths``). The far widths change no forecast of these streams (nothing is missing in
them: a gap's next width is the only way they reach the served one-step forecast), so one run gives both,
side by side. Also the MAE / naive MAE at those horizons (the naive: the last value before the origin),
and how sharp each rule's intervals are (as ``benchmarks.interval_widths`` measures the tracked
horizons'): the interval score of mean +- w over that of the constant half-width that covers 90 % of the
stream's errors at h in hindsight, and the 95th percentile of w over it.

    python -m benchmarks.far_horizons --pmdarima /tmp/wheels --sktime /tmp/wheels
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import interval_widths, report
from benchmarks.accuracy import warmup_of
from benchmarks.real_series import RealSeries
from tbptt_online import Forecaster, ForecasterConfig, calibration

HORIZONS = (6, 12, 18, 24, 36, 48)
LEVEL = 0.9
MIN_VALUES = 150  # a 48-step forecast scored from a few dozen origins tells little
MAX_VALUES = 3000  # the longest streams' first values: enough origins, a bounded run
SMOKE = {"streams": 2, "values": 120}
OFF = 0.05  # a cell this far from the level is flagged


def streams(pmdarima: Path | None, sktime: Path | None) -> list[RealSeries]:
    """``interval_widths.streams``' of at least MIN_VALUES values."""
    return [s for s in interval_widths.streams(pmdarima, sktime) if len(s.values) >= MIN_VALUES]


def scored(series: RealSeries, values: int) -> dict[str, Any]:
    """Coverage (served, before) and MAE / naive MAE at ``HORIZONS`` of one stream's first ``values``."""
    y = np.asarray(series.values[:values], dtype=np.float64)
    used = RealSeries(series.name, list(series.values[:values]), series.period, series.source)
    n, longest, warm = len(y), max(HORIZONS), warmup_of(used)  # (the accuracy benchmark's rule, on the values used)
    forecaster = Forecaster(ForecasterConfig())
    inside = {"served": {h: [] for h in HORIZONS}, "before": {h: [] for h in HORIZONS}}
    half: dict[str, dict[int, list[float]]] = {"served": {h: [] for h in HORIZONS}, "before": {h: [] for h in HORIZONS}}
    errors: dict[int, list[float]] = {h: [] for h in HORIZONS}
    error, naive = {h: 0.0 for h in HORIZONS}, {h: 0.0 for h in HORIZONS}
    for t in range(n):
        if warm <= t <= n - longest:
            forecast = forecaster.forecast("y", longest, LEVEL)
            slot = forecaster.store.slot_of("y")
            tensors = forecaster.store.tensors
            before = calibration.half_widths(tensors["c_q"][slot : slot + 1], longest).numpy()  # [1, H, 1]
            names = ("c_phase", "c_phase_of", "c_phase_fit", "x_season_length", "steps")
            phased = [tensors[k][slot : slot + 1].numpy() for k in names]
            no_far = calibration.far_array(1)[:0]  # (no far horizons: their widths are what is compared)
            calibration.phase_widths(*phased, no_far, before, np.empty((1, 0, 1)))  # as served
            before = before[0, :, 0]  # [H]
            for h in HORIZONS:
                target, mean = y[t + h - 1], forecast.mean[h - 1]
                error[h] += abs(target - mean)
                naive[h] += abs(target - y[t - 1])
                if forecast.upper[h - 1] is not None:  # (None: no interval yet)
                    inside["served"][h].append(forecast.lower[h - 1] <= target <= forecast.upper[h - 1])
                    inside["before"][h].append(abs(target - mean) <= before[h - 1])
                    half["served"][h].append(forecast.upper[h - 1] - mean)
                    half["before"][h].append(float(before[h - 1]))
                    errors[h].append(abs(target - mean))
        forecaster.observe("y", float(y[t]))
    return {
        "stream": series.name,
        "values": n,
        "coverage": {rule: {str(h): float(np.mean(v)) for h, v in by.items()} for rule, by in inside.items()},
        "mae_over_naive": {str(h): error[h] / naive[h] for h in HORIZONS},
        "widths": {rule: {str(h): widths(errors[h], by[h]) for h in HORIZONS} for rule, by in half.items()},
    }


def widths(errors: list[float], half: list[float]) -> dict[str, float]:
    """The interval score of mean +- ``half`` over that of the constant half-width that covers LEVEL of
    ``errors`` in hindsight, and the 95th percentile of ``half`` over that width (as in
    ``benchmarks.interval_widths``)."""
    e, w = np.asarray(errors), np.asarray(half)
    hindsight = float(np.quantile(e, LEVEL)) if len(e) else math.nan
    if not hindsight > 0:
        return {"score_ratio": math.nan, "p95_width_ratio": math.nan}
    ratios = interval_widths.sharpness(e, w, hindsight)
    return {key: ratios[key] for key in ("score_ratio", "p95_width_ratio")}


def summary(rows: list[dict[str, Any]], rule: str, horizons: tuple[int, ...]) -> dict[str, Any]:
    cells = np.array([[r["coverage"][rule][str(h)] for h in horizons] for r in rows])  # [streams, H]
    ratios = {
        key: np.array([np.mean([r["widths"][rule][str(h)][key] for h in horizons]) for r in rows])
        for key in ("score_ratio", "p95_width_ratio")
    }
    return {
        **{f"geomean_{key}": float(np.exp(np.mean(np.log(v[np.isfinite(v)])))) for key, v in ratios.items()},
        "cells_off": int((np.abs(cells - LEVEL) > OFF).sum()),
        "cells": int(cells.size),
        "mean_abs_gap_points": float(100 * np.abs(cells - LEVEL).mean()),
        "mean_coverage": {str(h): float(cells[:, i].mean()) for i, h in enumerate(horizons)},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = report.parser(__doc__.splitlines()[0])
    parser.add_argument("--pmdarima", type=Path, default=None, help="also pmdarima's series, from its wheel here")
    parser.add_argument("--sktime", type=Path, default=None, help="also sktime's series, from its wheel here")
    args = parser.parse_args(argv)
    info = report.machine("benchmarks.far_horizons", argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    chosen = streams(args.pmdarima, args.sktime)
    if args.smoke:
        chosen = chosen[: SMOKE["streams"]]
    values = SMOKE["values"] if args.smoke else MAX_VALUES
    rows = [scored(s, values) for s in chosen]
    far = tuple(h for h in HORIZONS if h > ForecasterConfig().calibrated_horizon)
    payload = {
        "benchmark": "far_horizons",
        "smoke": args.smoke,
        "machine": info,
        "level": LEVEL,
        "horizons": list(HORIZONS),
        "rows": rows,
        "summary": {rule: summary(rows, rule, far) for rule in ("served", "before")},
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    markdown = "\n".join(
        [
            "## Interval coverage past the calibrated horizon",
            "",
            report.machine_line(info),
            "",
            f"`ForecasterConfig()` (calibrated horizon 12, far horizons {calibration.far_horizons(12)}), "
            f"{len(rows)} streams, prequential after the accuracy benchmark's warm-up: the share of the values "
            f"inside the {100 * LEVEL:.0f} % interval served h steps before them (the far widths), and "
            '"before" the rule of before session 45 from the same state (q_12 sqrt(h / 12)); flagged (*): more '
            f"than {100 * OFF:.0f} points off. MAE / naive: the served mean's, at h.",
            "",
            report.markdown_table(
                [
                    "stream",
                    "values",
                    *[f"h={h}" for h in HORIZONS],
                    *[f"before h={h}" for h in far],
                    "MAE / naive h=24, 48",
                ],
                [
                    [
                        r["stream"],
                        r["values"],
                        *[coverage_cell(r["coverage"]["served"][str(h)]) for h in HORIZONS],
                        *[coverage_cell(r["coverage"]["before"][str(h)]) for h in far],
                        f"{r['mae_over_naive']['24']:.3f}, {r['mae_over_naive']['48']:.3f}",
                    ]
                    for r in rows
                ],
            ),
            "",
            *[
                f"- {name}: {s['cells_off']} of {s['cells']} cells at h = {', '.join(map(str, far))} more than "
                f"{100 * OFF:.0f} points off; mean distance from {100 * LEVEL:.0f} %: "
                f"{s['mean_abs_gap_points']:.2f} points; "
                f"mean coverage {', '.join(f'{100 * c:.1f} %' for c in s['mean_coverage'].values())}; geometric "
                f"means over the streams (each one's mean over those horizons): interval score over the hindsight "
                f"width's {s['geomean_score_ratio']:.3f}, 95th percentile of the half-width over it "
                f"{s['geomean_p95_width_ratio']:.2f}"
                for name, s in (
                    ("served (far widths)", payload["summary"]["served"]),
                    ("before", payload["summary"]["before"]),
                )
            ],
        ]
    )
    report.write(args.out, "far_horizons", payload, markdown)
    print(markdown)
    return payload


def coverage_cell(share: float) -> str:
    """A coverage as a table's cell: a percentage, starred when more than ``OFF`` from ``LEVEL``; ``-`` for
    NaN (a horizon with no scored forecast: ``past_far_horizons``)."""
    return "-" if math.isnan(share) else f"{100 * share:.1f} %" + (" *" if abs(share - LEVEL) > OFF else "")


if __name__ == "__main__":
    main()
