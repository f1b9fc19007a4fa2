"""A long season whose length is found a few lags off: a 5-minute CPU metric's daily cycle (288), with and without
quieter weekends.

Twelve series (six seeds, each with two quieter weekend days a week and without), ``DAYS`` days of a 5-minute
CPU metric (a business-hours bump, AR(1) noise of 0.8, clipped to 0-100), fed a tick at a time to one
``Forecaster(ForecasterConfig())``: the seasons it serves are read every 32 values, and over the last 3 days,
from every 48th origin, the 12-step forecast is scored against the naive's (the last value) and the day-ahead
(288-step) one against the seasonal naive's (the value a day before its target): MAE over theirs, per series and
as a geometric mean per kind. Made from a new user's test (session 59), whose daily season was dropped at the
detection whose window held a weekend.

    python -m benchmarks.wandering_seasons
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
import torch

from benchmarks import report
from tbptt_online import Forecaster, ForecasterConfig

DAYS = 17
DAY = 288  # 5-minute values a day
SEEDS = 6
READ_EVERY = 32  # the seasons served, read every this many values
ORIGIN_EVERY = 48  # the scored origins, over the last 3 days
SINCE = 1056  # values after which a season is expected (found from 576 to 1,024)
SMOKE = {"days": 5}


def cpu(weekend: bool, seed: int, days: int) -> np.ndarray:
    """[days * DAY] one series: 10 + a bump of 35 at 14:00 (halved on weekend days), AR(1) noise, in [0, 100]."""
    rng = np.random.default_rng(seed)
    t = np.arange(DAY * days)
    hour = (t % DAY) / 12
    bump = 20 + 35 * np.exp(-(((hour - 14) / 3.5) ** 2))
    week = np.where(((t // DAY) % 7) >= 5, 0.5, 1.0) if weekend else np.ones(len(t))
    noise = np.zeros(len(t))
    for i in range(1, len(t)):
        noise[i] = 0.8 * noise[i - 1] + rng.normal(0, 2.5)
    return np.clip(10 + (bump - 10) * week + noise, 0, 100).round(2)


def run(days: int) -> list[dict[str, Any]]:
    series = {f"{'weekend' if w else 'flat'}{seed}": cpu(w, seed, days) for seed in range(SEEDS) for w in (True, False)}
    n = DAY * days
    torch.manual_seed(0)
    forecaster = Forecaster(ForecasterConfig())
    seasons: dict[str, list[tuple[int, tuple[int, ...]]]] = {k: [] for k in series}
    errors = {k: {12: [0.0, 0.0], DAY: [0.0, 0.0]} for k in series}  # horizon: [ours, the baseline's] summed
    for t in range(n):
        if t >= DAY * (days - 3) and t % ORIGIN_EVERY == 0:
            forecasts = forecaster.forecast_many([(k, DAY) for k in series])
            for k, forecast in zip(series, forecasts, strict=True):
                y = series[k]
                for h in (12, DAY):
                    if t + h - 1 < n:
                        baseline = y[t - 1] if h == 12 else y[t + h - 1 - DAY]  # naive; seasonal naive a day back
                        errors[k][h][0] += abs(forecast.mean[h - 1] - y[t + h - 1])
                        errors[k][h][1] += abs(baseline - y[t + h - 1])
        forecaster.observe_many([(k, float(v[t])) for k, v in series.items()])
        if t % READ_EVERY == READ_EVERY - 1:
            for k in series:
                seasons[k].append((t + 1, tuple(forecaster.series_stats(k).seasons)))
    rows = []
    for k in series:
        read = seasons[k]
        changes = [read[0]] + [b for a, b in itertools.pairwise(read) if a[1] != b[1]]
        rows.append(
            {
                "series": k,
                "season_changes": [[step, list(found)] for step, found in changes],
                "values_without_season_after": sum(READ_EVERY for step, found in read if step > SINCE and not found),
                "mae_over_naive_12": errors[k][12][0] / errors[k][12][1],
                "mae_over_seasonal_naive_day": errors[k][DAY][0] / errors[k][DAY][1],
            }
        )
    return rows


def geomean(values: list[float]) -> float:
    return float(np.exp(np.mean(np.log(values))))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = report.arguments(__doc__.splitlines()[0], argv)
    info = report.machine("benchmarks.wandering_seasons", argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    days = SMOKE["days"] if args.smoke else DAYS
    rows = run(days)
    summary = {
        kind: {
            "mae_over_naive_12": geomean([r["mae_over_naive_12"] for r in rows if r["series"].startswith(kind)]),
            "mae_over_seasonal_naive_day": geomean(
                [r["mae_over_seasonal_naive_day"] for r in rows if r["series"].startswith(kind)]
            ),
        }
        for kind in ("weekend", "flat")
    }
    payload = {
        "benchmark": "wandering_seasons",
        "smoke": args.smoke,
        "machine": info,
        "days": days,
        "rows": rows,
        "summary": summary,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    markdown = "\n".join(
        [
            "## A 5-minute daily cycle found a few lags off, with and without quieter weekends",
            "",
            report.machine_line(info),
            "",
            f"`ForecasterConfig()`, {len(rows)} series of {days} days; the seasons served (read every {READ_EVERY} "
            f"values) where they changed, the values after {SINCE} served without a season, and over the last 3 "
            f"days from every {ORIGIN_EVERY}th origin the 12-step MAE over the naive's and the day-ahead MAE over "
            "the seasonal naive's.",
            "",
            report.markdown_table(
                [
                    "series",
                    "seasons served (from value)",
                    "without a season",
                    "12-step / naive",
                    "day ahead / s. naive",
                ],
                [
                    [
                        r["series"],
                        ", ".join(f"{list(found)} ({step})" for step, found in r["season_changes"]),
                        r["values_without_season_after"],
                        f"{r['mae_over_naive_12']:.3f}",
                        f"{r['mae_over_seasonal_naive_day']:.3f}",
                    ]
                    for r in rows
                ],
            ),
            "",
            *[
                f"- {kind}: geometric means 12-step / naive {s['mae_over_naive_12']:.3f}, day ahead / seasonal naive "
                f"{s['mae_over_seasonal_naive_day']:.3f}"
                for kind, s in summary.items()
            ],
        ]
    )
    report.write(args.out, "wandering_seasons", payload, markdown)
    print(markdown)
    return payload


if __name__ == "__main__":
    main()
