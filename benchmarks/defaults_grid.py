"""Ours alone under several configurations, on the accuracy benchmark's series and on series outside it.

How a default is chosen without fitting it to one series: every configuration runs on the nine
series of ``benchmarks.accuracy`` (12 streams: each server_metrics host alone) and on the ten of
``benchmarks.outside_series``, prequential with the accuracy benchmark's warm-up and alignment;
the table gives MAE / naive MAE per stream (one step and h=1..12) and the geometric mean of each
set. No river models run (their figures do not depend on ours): a grid of six takes about 7 min.

    python -m benchmarks.defaults_grid --configs '[{"outlier_sigmas": null}, {}, {"outlier_sigmas": 4}]'
    python -m benchmarks.defaults_grid --only airline,nile --configs '[{}]'
    python -m benchmarks.defaults_grid --pmdarima /tmp/wheels  # and the seven of benchmarks.pmdarima_series
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
from pathlib import Path
from typing import Any

import torch

from benchmarks.accuracy import HORIZON, warmup_of
from benchmarks.contenders import OurForecaster
from benchmarks.outside_series import outside_series
from benchmarks.pmdarima_series import pmdarima_series
from benchmarks.prequential import LastValue, evaluate
from benchmarks.real_series import RealSeries, all_series
from tbptt_online import ForecasterConfig


def ratios(series: RealSeries, config: ForecasterConfig) -> tuple[float, float]:
    """(one step, h=1..H) MAE / the naive last value's, as ``benchmarks.accuracy`` scores them."""
    warmup = warmup_of(series)
    ours = evaluate(OurForecaster(config), series.values, warmup, HORIZON)
    naive = evaluate(LastValue(), series.values, warmup, HORIZON)
    return ours["one_step_mae"] / naive["one_step_mae"], ours["mean_horizon_mae"] / naive["mean_horizon_mae"]


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def table(sets: dict[str, list[RealSeries]], configs: list[dict[str, Any]]) -> str:
    """The markdown table: one row per stream and one per set's geometric mean, two columns per config."""
    found = {name: [[ratios(s, ForecasterConfig(**c)) for c in configs] for s in group] for name, group in sets.items()}
    head = "| stream | " + " | ".join(f"{json.dumps(c)}: one step / h=1..{HORIZON}" for c in configs) + " |"
    lines = [head, "|---" * (len(configs) + 1) + "|"]
    for name, group in sets.items():
        for series, row in zip(group, found[name], strict=True):
            lines.append(f"| {series.name} | " + " | ".join(f"{one:.4f} / {many:.4f}" for one, many in row) + " |")
    for name, group in sets.items():
        if not group:
            continue
        means = [
            (geometric_mean([r[i][0] for r in found[name]]), geometric_mean([r[i][1] for r in found[name]]))
            for i in range(len(configs))
        ]
        lines.append(f"| **{name}: geometric mean** | " + " | ".join(f"{a:.4f} / {b:.4f}" for a, b in means) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=json.loads, default=[{}], help="a JSON list of ForecasterConfig fields")
    parser.add_argument("--only", type=str, default=None, help="comma-separated stream names")
    parser.add_argument(
        "--pmdarima", type=Path, default=None, help="also the seven of benchmarks.pmdarima_series (wheel folder)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sets = {"the accuracy benchmark's (12 streams)": all_series(), "outside (10)": outside_series()}
    if args.pmdarima is not None:
        sets["pmdarima (7)"] = pmdarima_series(args.pmdarima)
    if args.only:
        sets = {name: [s for s in group if s.name in args.only.split(",")] for name, group in sets.items()}
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    start = os.getloadavg()[0]
    body = table(sets, args.configs)
    text = f"MAE / naive MAE, ours alone ({stamp}, load average {start:.2f} at start)\n\n{body}"
    print(text)
    return text


if __name__ == "__main__":
    main()
