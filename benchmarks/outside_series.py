"""Series outside the accuracy benchmark, to check that a change is not fitted to its nine.

Nothing is downloaded: synthetic streams from a fixed seed (a Gaussian random walk, a
random walk with Student-t(3) steps, a daily sine with noise, an AR(1) with phi 0.8) and
statsmodels' ``macrodata`` (quarterly US macro series 1959-2009) and ``strikes``. ``period``
only sets the warm-up here (``benchmarks.accuracy.warmup_of``).
"""

from __future__ import annotations

import numpy as np

from benchmarks.real_series import RealSeries

SEED = 7


def synthetic() -> list[RealSeries]:
    rng = np.random.default_rng(SEED)
    walk = 100.0 + np.cumsum(rng.normal(0.0, 1.0, 800))  # [800]
    heavy = 50.0 + np.cumsum(rng.standard_t(3, 600))  # [600]
    t = np.arange(720)
    sine = 10.0 + 3.0 * np.sin(2 * np.pi * t / 24) + rng.normal(0.0, 0.7, len(t))  # [720]
    ar = np.zeros(600)
    for i in range(1, len(ar)):
        ar[i] = 0.8 * ar[i - 1] + rng.normal()
    return [
        RealSeries("synth_random_walk", walk.tolist(), 1, "Gaussian random walk, 800 values"),
        RealSeries("synth_walk_t3", heavy.tolist(), 1, "random walk with Student-t(3) steps, 600 values"),
        RealSeries("synth_daily_sine", sine.tolist(), 24, "sine of period 24 (amplitude 3) + noise 0.7, 720 values"),
        RealSeries("synth_ar1", (5.0 + ar).tolist(), 1, "AR(1), phi 0.8, 600 values"),
    ]


def statsmodels_series() -> list[RealSeries]:
    from statsmodels.datasets import macrodata, strikes

    macro = macrodata.load_pandas().data
    found = [
        RealSeries(f"macro_{name}", [float(v) for v in macro[name]], 4, f"statsmodels macrodata: quarterly {name}")
        for name in ("realgdp", "cpi", "unemp", "infl", "tbilrate")
    ]
    duration = [float(v) for v in strikes.load_pandas().data["duration"]]
    return [*found, RealSeries("strikes_duration", duration, 1, "statsmodels strikes: duration, 62 values")]


def outside_series() -> list[RealSeries]:
    return [*synthetic(), *statsmodels_series()]
