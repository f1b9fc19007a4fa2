"""Sparse and spiky series: what a forecast with the lowest MAE looks like when most values are 0.

Demand for a slow-moving item, a counter of rare events, a spiky monitoring metric: values
that are 0 most of the time. The MAE-best forecast of such a series is its median (often 0),
where a smoothing forecast is a mean. Synthetic streams (seed 0), each fed prequentially to a
fresh ``Forecaster(ForecasterConfig())`` (forecast, then learn), scored after a warm-up of 10 %
(at least 24 values): MAE / the naive last value's MAE, one step and over h = 1..12, beside
two simple references for the one step: the median and the mean of the last 100 values.

    python -m benchmarks.sparse_series [--smoke] [--out DIR]
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks import report
from tbptt_online import Forecaster, ForecasterConfig

HORIZON = 12
LENGTH = 700
SMOKE_LENGTH = 120


def streams(n: int) -> dict[str, np.ndarray]:
    """The synthetic streams, ``n`` values each (seed 0)."""
    rng = np.random.default_rng(0)
    t = np.arange(n)
    return {
        "poisson 0.3 (74 % zeros)": rng.poisson(0.3, n).astype(float),
        "poisson 2": rng.poisson(2.0, n).astype(float),
        "rare spikes (5 %, 10-50)": (rng.random(n) < 0.05) * rng.uniform(10.0, 50.0, n),
        "poisson, weekly rate 0.1-1.9": rng.poisson(1.0 + 0.9 * np.sin(2 * np.pi * t / 7), n).astype(float),
        "poisson, daily rate 0.5-5.5": rng.poisson(3.0 + 2.5 * np.sin(2 * np.pi * t / 24), n).astype(float),
    }


def scores(y: np.ndarray) -> dict[str, float]:
    """MAE / naive MAE of ours (one step, h = 1..12) and of the running median and mean (one step)."""
    forecaster, n = Forecaster(ForecasterConfig()), len(y)
    made = np.full((n + 1, HORIZON), np.nan)  # made[t]: the forecasts of values t .. t + 11 (0-based)
    for t, value in enumerate(y, start=1):
        forecaster.observe("y", float(value))
        made[t] = forecaster.forecast("y", horizon=HORIZON).mean
    start = max(n // 10, 24)
    naive = np.abs(y[start:] - y[start - 1 : n - 1]).mean()
    ends = np.arange(start, n - HORIZON + 1)
    targets = y[ends[:, None] + np.arange(HORIZON)]
    naive_many = np.abs(targets - y[ends - 1, None]).mean()
    median = np.array([np.median(y[max(0, t - 100) : t]) for t in range(start, n)])
    mean = np.array([y[max(0, t - 100) : t].mean() for t in range(start, n)])
    return {
        "ours_one_step": float(np.abs(y[start:] - made[start:n, 0]).mean() / naive),
        "ours_h12": float(np.abs(targets - made[ends]).mean() / naive_many),
        "median_100": float(np.abs(y[start:] - median).mean() / naive),
        "mean_100": float(np.abs(y[start:] - mean).mean() / naive),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = report.arguments(__doc__.splitlines()[0], argv)
    info = report.machine("benchmarks.sparse_series", argv)
    n = SMOKE_LENGTH if args.smoke else LENGTH
    started = time.perf_counter()
    rows = [{"stream": name, **scores(y)} for name, y in streams(n).items()]
    payload = {
        "benchmark": "sparse_series",
        "smoke": args.smoke,
        "machine": info,
        "values": n,
        "rows": rows,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    markdown = "\n".join(
        [
            "## Sparse and spiky series",
            "",
            report.machine_line(info),
            "",
            f"{n} values per stream (seed 0), `ForecasterConfig()`, prequential; MAE / naive MAE.",
            "",
            report.markdown_table(
                ["stream", "ours, one step", "ours, h=1..12", "median of last 100", "mean of last 100"],
                [[r["stream"], r["ours_one_step"], r["ours_h12"], r["median_100"], r["mean_100"]] for r in rows],
            ),
        ]
    )
    report.write(args.out, "sparse_series", payload, markdown)
    print(markdown)
    return payload


if __name__ == "__main__":
    main()
