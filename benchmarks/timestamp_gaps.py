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

    python -m benchmarks.timestamp_gaps [--rate 0.02] [--seed 0] [--only airline,co2] [--smoke] [--out DIR]
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch

from benchmarks import report
from benchmarks.accuracy import warmup_of
from benchmarks.real_series import RealSeries, all_series
from tbptt_online import Forecaster, ForecasterConfig

WAYS = ("no outage", "stepped once", "gaps filled")
SMOKE_DATASETS = ["airline", "nile"]


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


def table(streams: list[RealSeries], rate: float, seed: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Per stream: its period, values missing and ratio for each way; and each way's geometric mean."""
    rows = []
    for series in streams:
        sent = outages(series, rate, seed)
        ratios = {way: score(series, sent, way) for way in WAYS}
        rows.append({"stream": series.name, "period": series.period, "missing": sent.count(False), "values": len(sent)})
        rows[-1].update(ratios)
        print(rows[-1], flush=True)
    return rows, {way: geometric_mean([row[way] for row in rows]) for way in WAYS}


def render(payload: dict[str, Any]) -> str:
    info = payload["machine"]
    lines = [
        f"# Gaps in timestamps: `{info['command']}`",
        "",
        f"{info['date_utc']} UTC, load average {info['load_average_1_5_15'][0]:.2f} at start. One-step MAE / naive MAE "
        f"on the values sent, outages starting at rate {payload['rate']} (seed {payload['seed']}), "
        "`ForecasterConfig()` defaults.",
        "",
        "| stream | season | values missing | " + " | ".join(WAYS) + " |",
        "|---|---|---|" + "---|" * len(WAYS),
    ]
    for row in payload["rows"]:
        cells = " | ".join(f"{row[way]:.3f}" for way in WAYS)
        lines.append(f"| {row['stream']} | {row['period']} | {row['missing']} of {row['values']} | {cells} |")
    means = " | ".join(f"**{payload['geometric_means'][way]:.3f}**" for way in WAYS)
    lines.append(f"| geometric mean | | | {means} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    made = report.parser(__doc__.splitlines()[0])
    made.add_argument("--rate", type=float, default=0.02, help="probability that a value starts an outage")
    made.add_argument("--seed", type=int, default=0)
    made.add_argument("--only", type=str, default=None, help="comma-separated dataset names")
    args = made.parse_args(argv)
    info = report.machine("benchmarks.timestamp_gaps", argv)
    torch.set_num_threads(1)
    only = args.only.split(",") if args.only else (SMOKE_DATASETS if args.smoke else None)
    rows, means = table(all_series(only), args.rate, args.seed)
    payload = {
        "benchmark": "timestamp_gaps",
        "smoke": args.smoke,
        "machine": info,
        "rate": args.rate,
        "seed": args.seed,
        "rows": rows,
        "geometric_means": means,
    }
    markdown = render(payload)
    report.write(args.out, "timestamp_gaps", payload, markdown)
    print(markdown)
    return payload


if __name__ == "__main__":
    main()
