"""Accuracy on real series: prequential MAE against river's Holt-Winters and SNARIMAX, tuned in hindsight.

Each model sees each series once, value by value (forecast, then learn); nothing is scored
in the first 10 % or the first period, whichever is longer (see ``benchmarks.prequential``
for the alignment). Our forecaster runs with one configuration for every series: the
library's ``ForecasterConfig()`` defaults (``--config`` overrides fields, for experiments;
the published figures use the defaults). river's models are given the true period and
scored over a grid each; the best configuration per stream and metric is picked in hindsight
(see ``benchmarks.accuracy_summary``). Intervals (ours only: river gives none) are scored at
level 0.9 at horizons 1, 6 and 12.

    python -m benchmarks.accuracy                        # full size, about a minute on 2 cores
    python -m benchmarks.accuracy --only airline,nile --config '{"lr": 0.01}' --out /tmp/bench
    python -m benchmarks.accuracy --smoke --out /tmp/bench
    python -m benchmarks.accuracy --pmdarima /tmp/wheels  # seven series outside the nine (benchmarks.pmdarima_series)
    python -m benchmarks.accuracy --sktime /tmp/wheels    # ten more (benchmarks.sktime_series)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks import report
from benchmarks.accuracy_render import render
from benchmarks.accuracy_summary import dataset_summary, stream_summary, tally
from benchmarks.contenders import OURS, OurForecaster, contenders
from benchmarks.pmdarima_series import SERIES as PMDARIMA
from benchmarks.pmdarima_series import pmdarima_series
from benchmarks.prequential import evaluate
from benchmarks.real_series import LOADERS, RealSeries, all_series
from benchmarks.sktime_series import SERIES as SKTIME
from benchmarks.sktime_series import sktime_series
from tbptt_online import ForecasterConfig
from tbptt_online.guards import COUNTERS

HORIZON = 12
WARMUP_SHARE = 0.10
LEVEL = 0.9
COVERAGE_HORIZONS = (1, 6, 12)
SMOKE_SCORED = 24  # values scored per stream in --smoke, after a warm-up of one period


def warmup_of(series: RealSeries) -> int:
    # At least one period, so that HoltWinters has started (on the full series 10 % always is).
    return max(math.ceil(WARMUP_SHARE * len(series.values)), series.period)


def score_stream(series: RealSeries, ours: ForecasterConfig) -> list[dict[str, Any]]:
    """One row per contender (every grid configuration) on one stream."""
    warmup = warmup_of(series)
    rows = []
    for contender in contenders(series.period, min(series.values) > 0, ours):
        started = time.perf_counter()
        level = LEVEL if contender.intervals else None
        error = None
        model = contender.make()
        try:
            scores = evaluate(model, series.values, warmup, HORIZON, level, COVERAGE_HORIZONS)
        except ArithmeticError as failure:  # e.g. a multiplicative season dividing by zero
            if contender.family == OURS:
                raise
            scores, error = {}, f"{type(failure).__name__}: {failure}"
        if scores and not all(math.isfinite(v) for v in finite_checked(scores)):
            if contender.family == OURS:
                raise ValueError(f"ours forecast a non-finite value on {series.name}")
            scores, error = {}, "diverged (non-finite forecasts or errors)"
        rows.append(
            {
                "dataset": series.dataset,
                "stream": series.name,
                "family": contender.family,
                "config": contender.config,
                "values": len(series.values),
                "period": series.period,
                "warmup": warmup,
                "one_step_mae": scores.get("one_step_mae"),
                "one_step_rmse": scores.get("one_step_rmse"),
                "mean_horizon_mae": scores.get("mean_horizon_mae"),
                "horizon_mae": scores.get("horizon_mae"),
                "coverage": scores.get("coverage"),
                "error": error,
                "guards": guard_counts(model),
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
    return rows


def picked(
    series_list: list[RealSeries], only: list[str] | None, known: Sequence[str], among: str, smoke: bool
) -> list[RealSeries]:
    """The series ``--only`` names (all where None; ``SystemExit`` naming any not in ``known``, "not among
    ``among``"), cut to a warm-up and ``SMOKE_SCORED`` values under ``--smoke``."""
    if only:
        unknown = [name for name in only if name not in known]
        if unknown:
            raise SystemExit(f"--only {','.join(unknown)}: not among {among} {','.join(known)}")
        series_list = [s for s in series_list if s.name in only]
    if smoke:
        series_list = [dataclasses.replace(s, values=s.values[: s.period + SMOKE_SCORED]) for s in series_list]
    return series_list


def guard_counts(model: Any) -> dict[str, int] | None:
    """Ours: how often each instability guard fired on the stream (None for the others)."""
    if not isinstance(model, OurForecaster):
        return None
    stats = model.forecaster.update_stats()
    return {name: getattr(stats, name) for name in COUNTERS}


def finite_checked(scores: dict[str, Any]) -> list[float]:
    return [scores["one_step_mae"], scores["one_step_rmse"], scores["mean_horizon_mae"], *scores["horizon_mae"]]


def parse(argv: list[str] | None) -> argparse.Namespace:
    made = report.parser(__doc__.splitlines()[0])
    made.add_argument(
        "--only",
        type=lambda text: text.split(","),
        default=None,
        help=f"datasets, comma-separated: {','.join(LOADERS)} (with --pmdarima: {','.join(PMDARIMA)})",
    )
    outside = made.add_mutually_exclusive_group()  # one set at a time
    outside.add_argument(
        "--pmdarima",
        type=Path,
        default=None,
        help="score the seven series of benchmarks.pmdarima_series instead, read from the pmdarima wheel in this "
        "folder (written as accuracy_pmdarima.json / .md)",
    )
    outside.add_argument(
        "--sktime",
        type=Path,
        default=None,
        help="score the ten series of benchmarks.sktime_series instead, read from the sktime wheel in this "
        "folder (written as accuracy_sktime.json / .md)",
    )
    made.add_argument(
        "--config",
        type=json.loads,
        default={},
        help="ForecasterConfig fields for ours, as JSON (e.g. '{\"lr\": 0.01}'); default: the defaults",
    )
    return made.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    info = report.machine("benchmarks.accuracy", argv)
    try:
        ours = ForecasterConfig(**args.config)
    except TypeError as bad:  # an unknown field
        raise SystemExit(f"--config {json.dumps(args.config)}: {bad}") from bad
    torch.set_num_threads(1)  # one small series at a time: a second thread only adds overhead
    started = time.perf_counter()
    outside = {"pmdarima": (args.pmdarima, PMDARIMA, pmdarima_series), "sktime": (args.sktime, SKTIME, sktime_series)}
    chosen = next((name for name, (folder, _, _) in outside.items() if folder is not None), None)
    if chosen is None:
        series_list = picked(all_series(args.only), None, (), "", args.smoke)
    else:
        folder, known, read = outside[chosen]
        series_list = picked(read(folder), args.only, known, f"--{chosen}'s series", args.smoke)
    rows = [row for series in series_list for row in score_stream(series, ours)]
    streams = [stream_summary([r for r in rows if r["stream"] == s.name]) for s in series_list]
    names = list(dict.fromkeys(s.dataset for s in series_list))
    datasets = [dataset_summary([s for s in streams if s["dataset"] == name]) for name in names]
    payload = {
        "benchmark": "accuracy",
        "smoke": args.smoke,
        "machine": info,
        "horizon": HORIZON,
        "warmup_share": WARMUP_SHARE,
        "level": LEVEL,
        "coverage_horizons": list(COVERAGE_HORIZONS),
        "series": [
            {
                "name": s.name,
                "dataset": s.dataset,
                "values": len(s.values),
                "period": s.period,
                "warmup": warmup_of(s),
                "source": s.source,
            }
            for s in series_list
        ],
        "config_ours": ours.to_dict(),
        "config_overrides": args.config,
        "datasets": datasets,
        "streams": streams,
        "tally": tally(datasets, LEVEL),
        "seconds_per_family": {
            family: round(sum(r["seconds"] for r in rows if r["family"] == family), 1)
            for family in dict.fromkeys(r["family"] for r in rows)
        },
        "rows": rows,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    markdown = render(payload)
    report.write(args.out, "accuracy" if chosen is None else f"accuracy_{chosen}", payload, markdown)
    print(markdown)
    return payload


if __name__ == "__main__":
    main()
