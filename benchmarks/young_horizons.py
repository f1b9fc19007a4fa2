"""How far a young series' forecast runs past its values at long horizons.

A forecast far past ``calibrated_horizon`` rolls every member out and combines them with the
last tracked horizon's weights. On a series of a few values the members fitted on little
(the AR experts, the damped trends) can run off. Per length n: ``SERIES`` series of n values
drawn uniformly in [2, 9] (seed 0), each fed to a fresh ``Forecaster(ForecasterConfig())``
and forecast ``HORIZON`` steps ahead; the overshoot is how far the forecast's mean leaves
the values' range, in ranges (0: within it). Printed: the median and the largest overshoot
over the series of each length.

    python -m benchmarks.young_horizons
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks import report
from tbptt_online import Forecaster, ForecasterConfig

LENGTHS = (3, 5, 8, 14, 20, 30, 50)
SERIES = 10
HORIZON = 1000
SMOKE = {"lengths": (3, 8), "series": 2, "horizon": 50}


def overshoot(values: np.ndarray, horizon: int) -> float:
    """How far the forecast of ``values`` [n] over ``horizon`` steps leaves their range, in ranges."""
    forecaster = Forecaster(ForecasterConfig())
    for value in values:
        forecaster.observe("y", float(value))
    mean = np.asarray(forecaster.forecast("y", horizon=horizon).mean, dtype=float)
    low, high = values.min(), values.max()
    return float(max(0.0, mean.max() - high, low - mean.min()) / (high - low))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = report.arguments(__doc__.splitlines()[0], argv)
    info = report.machine("benchmarks.young_horizons", argv)
    size = SMOKE if args.smoke else {"lengths": LENGTHS, "series": SERIES, "horizon": HORIZON}
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    rows = []
    for n in size["lengths"]:
        each = [overshoot(rng.uniform(2.0, 9.0, size=n), size["horizon"]) for _ in range(size["series"])]
        rows.append({"values": n, "overshoot": each, "median": float(np.median(each)), "max": max(each)})
    payload = {
        "benchmark": "young_horizons",
        "smoke": args.smoke,
        "machine": info,
        **size,
        "rows": rows,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    markdown = "\n".join(
        [
            "## A young series' forecast far ahead",
            "",
            report.machine_line(info),
            "",
            f"{size['series']} series of n values uniform in [2, 9] per length (seed 0), `ForecasterConfig()`, "
            f"forecast h = 1..{size['horizon']}: how far the mean leaves the values' range, in ranges.",
            "",
            report.markdown_table(
                ["values n", "median overshoot", "largest overshoot"],
                [[r["values"], r["median"], r["max"]] for r in rows],
            ),
        ]
    )
    report.write(args.out, "young_horizons", payload, markdown)
    print(markdown)
    return payload


if __name__ == "__main__":
    main()
