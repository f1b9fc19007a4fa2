"""What filling a series' timestamp gaps is worth: outages cut out of real series, fed three ways.

A sensor that goes silent for a while and comes back sends its next value some steps later.
Before the service learned cadences (``tbptt_service.host.cadence``) the value was stepped as the
next one, so the series' seasons slipped out of phase by the outage's length; now the missing
steps are inserted as missing values. The service's insertion is, bit for bit, a library
``Forecaster`` fed ``None`` for the missing steps (``tests/service/api/test_timestamp_gaps.py``),
so this benchmark feeds the library directly:

- ``no outage``: every value (the best that can be done; scored on the same values as the others);
- ``stepped once``: the values sent, one after another (the service before this change);
- ``gaps filled``: the values sent, with ``None`` for each missing one (the service now).

Outages: from the end of the warm-up on, each value starts one with probability ``--rate`` (2 %);
its length is uniform in 1 .. the series' period (1 .. 12 without one), seeded per series. Scored:
the one-step forecast served for each value sent after the warm-up (the accuracy benchmark's 10 %
or one period), its MAE over the naive last-sent value's MAE. ``ForecasterConfig()`` defaults.

    python -m benchmarks.timestamp_gaps [--rate 0.02] [--seed 0] [--only airline,co2]
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import random

import torch

from benchmarks.accuracy import warmup_of
from benchmarks.real_series import RealSeries, all_series
from tbptt_online import Forecaster, ForecasterConfig

WAYS = ("no outage", "stepped once", "gaps filled")


def outages(series: RealSeries, rate: float, seed: int) -> list[bool]:
    """Per value: whether it is sent (False inside an outage)."""
    rng = random.Random(f"{seed}/{series.name}")
    n, longest = len(series.values), series.period if series.period > 1 else 12
    sent, t = [True] * n, warmup_of(series)
    while t < n:
        if rng.random() < rate:
            length = rng.randint(1, longest)
            for k in range(t, min(n, t + length)):
                sent[k] = False
            t += length + 1  # the value after an outage is sent
        else:
            t += 1
    return sent


def score(series: RealSeries, sent: list[bool], way: str) -> float:
    """MAE / naive MAE of the one-step forecasts of the values sent after the warm-up."""
    model = Forecaster(ForecasterConfig())
    warmup, errors, naive_errors, last = warmup_of(series), [], [], None
    for t, (y, kept) in enumerate(zip(series.values, sent, strict=True)):
        if not kept and way == "stepped once":
            continue
        result = model.observe(series.name, y if kept or way == "no outage" else None)
        if not kept:
            continue
        if t >= warmup and last is not None and result.forecast_made.mean is not None:
            errors.append(abs(y - result.forecast_made.mean))
            naive_errors.append(abs(y - last))
        last = y
    return sum(errors) / sum(naive_errors)


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=0.02, help="probability that a value starts an outage")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", type=str, default=None, help="comma-separated dataset names")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    streams = all_series(args.only.split(",") if args.only else None)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0]
    lines = [
        f"One-step MAE / naive MAE on the values sent, outages at rate {args.rate} (seed {args.seed}; "
        f"{stamp}, load average {load:.2f} at start)",
        "",
        "| stream | period | values missing | " + " | ".join(WAYS) + " |",
        "|---|---|---|" + "---|" * len(WAYS),
    ]
    table: dict[str, list[float]] = {way: [] for way in WAYS}
    for series in streams:
        sent = outages(series, args.rate, args.seed)
        row = [score(series, sent, way) for way in WAYS]
        for way, ratio in zip(WAYS, row, strict=True):
            table[way].append(ratio)
        missing = sent.count(False)
        cells = " | ".join(f"{r:.3f}" for r in row)
        lines.append(f"| {series.name} | {series.period} | {missing} of {len(sent)} | {cells} |")
        print(lines[-1], flush=True)
    means = " | ".join(f"**{geometric_mean(table[way]):.3f}**" for way in WAYS)
    lines.append(f"| geometric mean | | | {means} |")
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
