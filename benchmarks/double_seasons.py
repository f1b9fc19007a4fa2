"""Day-ahead forecasts of hourly series with a daily and a weekly season, per ``season_length``.

Hourly series (seed 0 to ``SEEDS - 1``, ``SERIES`` each) shaped as many demand and load streams are:
a level (10 to 1,000), a daily sine (amplitude 5-50 %, any phase), AR(1) noise (coefficient 0.5,
sd 2-10 %), and in half of them a weekend whose values are 0.6 of the weekdays'. Each seed's series
are fed together, ``WEEKS`` weeks of values, to one ``Forecaster`` per setting of ``season_length``:
``"auto"`` (the default), ``[24, 168]`` (both known), ``168`` and ``24``. From week
``SCORED_FROM`` on, every ``EVERY`` values, each series is forecast 24 steps ahead; the MAE of
those forecasts over the MAE of the same hour a week before (the weekly seasonal naive), per series,
then the geometric mean over the series with a weekend, and over those without, per setting.

    python -m benchmarks.double_seasons
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from benchmarks import report
from tbptt_online import Forecaster, ForecasterConfig

SEEDS, SERIES, WEEKS, SCORED_FROM, EVERY = 3, 40, 10, 4, 6
SMOKE = {"seeds": 1, "series": 4, "weeks": 3, "scored_from": 2}
SETTINGS = {'"auto"': "auto", "[24, 168]": [24, 168], "168": 168, "24": 24}
HORIZON = 24


def fleet(seed: int, series: int, weeks: int) -> tuple[np.ndarray, np.ndarray]:
    """The values [series, 168 * weeks] of one seed, and which series have a weekend dip [series]."""
    rng = np.random.default_rng(seed)
    t = np.arange(168 * weeks)
    weekend = (t // 24) % 7 >= 5
    values, dips = np.empty((series, len(t))), np.zeros(series, dtype=bool)
    for i in range(series):
        level, amplitude, phase = rng.uniform(10, 1000), rng.uniform(0.05, 0.5), rng.uniform(0, 24)
        dips[i], sd = i % 2 == 1, rng.uniform(0.02, 0.1)
        noise = np.zeros(len(t))
        for k in range(1, len(t)):
            noise[k] = 0.5 * noise[k - 1] + rng.normal(0.0, sd)
        daily = 1 + amplitude * np.sin(2 * np.pi * (t - phase) / 24)
        values[i] = level * daily * np.where(weekend & dips[i], 0.6, 1.0) * (1 + noise)
    return values, dips


def day_ahead_ratios(values: np.ndarray, season_length: Any, scored_from: int) -> tuple[list[float], list[list[int]]]:
    """Per series: the 24-step forecasts' MAE over the weekly naive's, and the seasons served at the end."""
    forecaster = Forecaster(ForecasterConfig(season_length=season_length))
    names = [f"s{i}" for i in range(values.shape[0])]
    errors = np.zeros((values.shape[0], 2))  # the forecast's, the weekly naive's
    for t in range(values.shape[1]):
        forecaster.observe_many(list(zip(names, values[:, t].tolist(), strict=True)))
        target = t + HORIZON
        if t >= 168 * scored_from and t % EVERY == 0 and target < values.shape[1]:
            for i, forecast in enumerate(forecaster.forecast_many([(name, HORIZON) for name in names])):
                truth = values[i, target]
                errors[i] += (abs(truth - forecast.mean[-1]), abs(truth - values[i, target - 168]))
    return (errors[:, 0] / errors[:, 1]).tolist(), [forecaster.series_stats(name).seasons for name in names]


def geometric_mean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = report.arguments(__doc__.splitlines()[0], argv)
    info = report.machine("benchmarks.double_seasons", argv)
    size = SMOKE if args.smoke else {"seeds": SEEDS, "series": SERIES, "weeks": WEEKS, "scored_from": SCORED_FROM}
    torch.set_num_threads(1)
    started = time.perf_counter()
    rows = []
    for label, setting in SETTINGS.items():
        dip, flat, served = [], [], set()
        for seed in range(size["seeds"]):
            values, dips = fleet(seed, size["series"], size["weeks"])
            ratios, seasons = day_ahead_ratios(values, setting, size["scored_from"])
            dip += [r for r, d in zip(ratios, dips, strict=True) if d]
            flat += [r for r, d in zip(ratios, dips, strict=True) if not d]
            served |= {tuple(s) for s in seasons}
        rows.append(
            {
                "season_length": label,
                "weekend": geometric_mean(dip),
                "no_weekend": geometric_mean(flat),
                "series": [len(dip), len(flat)],
                "served": sorted(served),
            }
        )
    payload = {
        "benchmark": "double_seasons",
        "smoke": args.smoke,
        "machine": info,
        **size,
        "rows": rows,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    markdown = "\n".join(
        [
            "## Day-ahead forecasts of hourly series with a daily and a weekly season",
            "",
            report.machine_line(info),
            "",
            f"{size['seeds']} seeds of {size['series']} hourly series, {size['weeks']} weeks; a 24-step forecast every "
            f"{EVERY} values from week {size['scored_from']}: its MAE / the weekly seasonal naive's (the same hour a "
            "week before), geometric mean over the series with a weekend at 0.6 of the weekdays and over those "
            "without, per `season_length`; the seasons they served at the end.",
            "",
            report.markdown_table(
                ["season_length", "weekend dip", "no weekend dip", "seasons served"],
                [
                    [
                        f"`{r['season_length']}`",
                        f"{r['weekend']:.3f}",
                        f"{r['no_weekend']:.3f}",
                        ", ".join(str(list(s)) for s in r["served"]),
                    ]
                    for r in rows
                ],
            ),
        ]
    )
    report.write(args.out, "double_seasons", payload, markdown)
    print(markdown)
    return payload


if __name__ == "__main__":
    main()
