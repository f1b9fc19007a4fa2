"""From the accuracy benchmark's rows to its verdicts: best in hindsight, datasets, tally.

A row is one contender (one grid configuration) scored on one stream. Per stream and per
metric (one-step MAE, MAE over h = 1..H), each figure is divided by the naive last value's,
and river's Holt-Winters and SNARIMAX are each represented by the configuration of their
grid that did best *on that stream and that metric* (chosen in hindsight: optimistic for
river). "river best" is the better of the two. A dataset with several streams (one per
host) takes the mean of its streams' ratios and coverages.

>>> geometric_mean([0.5, 2.0, 1.0])
1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from benchmarks.contenders import HOLT_WINTERS, NAIVE, OURS, RIVER_FAMILIES, SEASONAL_NAIVE, SNARIMAX

METRICS = {"one_step": "one_step_mae", "horizon": "mean_horizon_mae"}
RIVER_BEST = "river best"
COLUMNS = (NAIVE, SEASONAL_NAIVE, HOLT_WINTERS, SNARIMAX, RIVER_BEST, OURS)
COVERAGE_TOLERANCE = 0.05  # coverage within 5 points of the nominal level


def geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def stream_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The ratios to naive of one stream's rows (all of one stream; exactly one naive and one ours)."""
    (naive,) = [r for r in rows if r["family"] == NAIVE]
    (ours,) = [r for r in rows if r["family"] == OURS]
    (seasonal,) = [r for r in rows if r["family"] == SEASONAL_NAIVE]
    ratio: dict[str, dict[str, float]] = {}
    best_config: dict[str, dict[str, str]] = {}
    for metric, key in METRICS.items():
        ratio[metric] = {
            NAIVE: 1.0,
            SEASONAL_NAIVE: seasonal[key] / naive[key],
            OURS: ours[key] / naive[key],
        }
        best_config[metric] = {}
        for family in RIVER_FAMILIES:
            scored = [r for r in rows if r["family"] == family and r["error"] is None]
            if not scored:
                raise ValueError(f"every {family} configuration failed on {naive['stream']}")
            best = min(scored, key=lambda r: r[key])
            ratio[metric][family] = best[key] / naive[key]
            best_config[metric][family] = best["config"]
        winner = min(RIVER_FAMILIES, key=lambda family: ratio[metric][family])
        ratio[metric][RIVER_BEST] = ratio[metric][winner]
        best_config[metric][RIVER_BEST] = f"{winner} {best_config[metric][winner]}"
    return {
        "name": naive["stream"],
        "dataset": naive["dataset"],
        "streams": 1,
        "values": naive["values"],
        "period": naive["period"],
        "naive_mae": {metric: naive[key] for metric, key in METRICS.items()},
        "ratio": ratio,
        "best_config": best_config,
        "coverage": ours["coverage"],
    }


def dataset_summary(streams: list[dict[str, Any]]) -> dict[str, Any]:
    """One dataset's figures: its stream's, or the mean over its streams (ratios, MAEs, coverages)."""
    if len(streams) == 1:
        return {**streams[0], "name": streams[0]["dataset"]}

    def mean(values: Sequence[float]) -> float:
        return sum(values) / len(values)

    coverages = [s["coverage"] for s in streams]
    return {
        "name": streams[0]["dataset"],
        "dataset": streams[0]["dataset"],
        "streams": len(streams),
        "values": mean([s["values"] for s in streams]),
        "period": streams[0]["period"],
        "naive_mae": {metric: mean([s["naive_mae"][metric] for s in streams]) for metric in METRICS},
        "ratio": {
            metric: {column: mean([s["ratio"][metric][column] for s in streams]) for column in COLUMNS}
            for metric in METRICS
        },
        "best_config": {metric: dict.fromkeys(COLUMNS[2:5], "per stream") for metric in METRICS},
        "coverage": None if None in coverages else [mean(c) for c in zip(*coverages, strict=True)],
    }


def verdicts(summary: dict[str, Any], level: float) -> dict[str, bool | None]:
    """Where ours stands on one dataset (None: no coverage to judge)."""
    out: dict[str, bool | None] = {}
    for metric in METRICS:
        ratio = summary["ratio"][metric]
        out[f"le_river_best_{metric}"] = ratio[OURS] <= ratio[RIVER_BEST]
        out[f"lt_naive_{metric}"] = ratio[OURS] < 1.0
        out[f"lt_seasonal_naive_{metric}"] = ratio[OURS] < ratio[SEASONAL_NAIVE]
    coverage = summary["coverage"]
    out["coverage_ok"] = None if coverage is None else all(covered_ok(c, level) for c in coverage)
    return out


def covered_ok(coverage: float, level: float) -> bool:
    return abs(coverage - level) <= COVERAGE_TOLERANCE + 1e-12


def tally(datasets: list[dict[str, Any]], level: float) -> dict[str, Any]:
    """Counts over datasets of the acceptance of issue 10, and the geometric means per column."""
    judged = [verdicts(d, level) for d in datasets]

    def count(*keys: str) -> int:
        return sum(all(v[key] for key in keys) for v in judged)

    return {
        "datasets": len(datasets),
        "le_river_best_one_step": count("le_river_best_one_step"),
        "le_river_best_horizon": count("le_river_best_horizon"),
        "le_river_best_both": count("le_river_best_one_step", "le_river_best_horizon"),
        "lt_naive_both": count("lt_naive_one_step", "lt_naive_horizon"),
        "lt_seasonal_naive_both": count("lt_seasonal_naive_one_step", "lt_seasonal_naive_horizon"),
        "coverage_ok": count("coverage_ok"),
        "geometric_mean": {
            metric: {column: geometric_mean([d["ratio"][metric][column] for d in datasets]) for column in COLUMNS}
            for metric in METRICS
        },
    }
