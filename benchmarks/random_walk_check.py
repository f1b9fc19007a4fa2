"""Can anything beat the last value on TrumpApproval? A check of the series the hybrid cannot get below naive on.

Issue 10 asks for MAE below naive's on every series of the accuracy benchmark; on
TrumpApproval the hybrid gets 1.007 (one step) and river's best 1.037. If the series is a
random walk (its changes independent, with a median of 0), the last value is the best
one-step forecast in MAE and nothing gets below 1 but by luck. This prints, for
TrumpApproval and for two random walks of ``benchmarks.outside_series`` as controls:

- the autocorrelation of the changes at lags 1..7, beside the white-noise band ``2 / sqrt(n)``;
- the one-step MAE / naive MAE, scored as ``benchmarks.accuracy`` scores (after its warm-up), of
  forecasters fitted on all the values before each one (refitted at every step): least-squares
  AR(p) on the changes (p = 1, 2, 3, 5; ARIMA(p, 1, 0) without a constant), and the last value
  plus the median or the mean of the past changes (a drift).

    python -m benchmarks.random_walk_check
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.accuracy import warmup_of
from benchmarks.outside_series import synthetic
from benchmarks.real_series import RealSeries, trump_approval

LAGS = 7
ORDERS = (1, 2, 3, 5)


def change_autocorrelation(values: np.ndarray, lags: int = LAGS) -> np.ndarray:
    """[lags]: the sample autocorrelation of the changes at lags 1..lags (the mean removed)."""
    c = np.diff(values)
    c = c - c.mean()
    denominator = float(c @ c)
    return np.array([float(c[:-k] @ c[k:]) / denominator for k in range(1, lags + 1)])


def ar_forecasts(values: np.ndarray, p: int, start: int) -> np.ndarray:
    """[n - start]: the forecast of values[t] (t = start..n-1) by a least-squares AR(p) on the
    changes before t: ``y[t-1] + sum_i a_i c[t-1-i]``, ``c[j] = y[j+1] - y[j]``; the last value
    where fewer than 2p changes are known."""
    changes = np.diff(values)  # changes[j] = values[j + 1] - values[j]
    out = []
    for t in range(start, len(values)):
        known = changes[: t - 1]  # the changes up to values[t - 1]
        if len(known) < 2 * p:
            out.append(values[t - 1])
            continue
        lagged = np.stack([known[p - 1 - i : len(known) - 1 - i] for i in range(p)], axis=1)  # [m, p]
        coefficients = np.linalg.lstsq(lagged, known[p:], rcond=None)[0]  # [p]
        out.append(values[t - 1] + known[::-1][:p] @ coefficients)
    return np.array(out)


def drift_forecasts(values: np.ndarray, start: int, centre) -> np.ndarray:
    """[n - start]: the last value plus ``centre`` (np.median, np.mean) of the changes before t."""
    changes = np.diff(values)
    return np.array([values[t - 1] + (centre(changes[: t - 1]) if t > 1 else 0.0) for t in range(start, len(values))])


def check(series: RealSeries) -> dict[str, object]:
    y = np.asarray(series.values, dtype=np.float64)
    start = warmup_of(series)
    targets = y[start:]
    naive = np.abs(targets - y[start - 1 : -1]).mean()
    ratios = {f"AR({p}) on the changes": np.abs(targets - ar_forecasts(y, p, start)).mean() / naive for p in ORDERS}
    for name, centre in (("median", np.median), ("mean", np.mean)):
        ratios[f"last value + {name} change"] = np.abs(targets - drift_forecasts(y, start, centre)).mean() / naive
    return {
        "name": series.name,
        "values": len(y),
        "autocorrelation": change_autocorrelation(y),
        "band": 2.0 / np.sqrt(len(y) - 1),
        "ratios": ratios,
    }


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    streams = trump_approval() + [s for s in synthetic() if s.name in ("synth_random_walk", "synth_walk_t3")]
    results = [check(s) for s in streams]
    print("Autocorrelation of the changes (white-noise band: +-2 / sqrt(n))\n")
    print("| series | n | band | " + " | ".join(f"lag {k}" for k in range(1, LAGS + 1)) + " |")
    print("|---|---|---|" + "---|" * LAGS)
    for r in results:
        cells = " | ".join(f"{a:+.3f}" for a in r["autocorrelation"])
        print(f"| {r['name']} | {r['values']} | {r['band']:.3f} | {cells} |")
    names = list(results[0]["ratios"])
    print("\nOne-step MAE / naive MAE, refitted on every value before the forecast (after the warm-up)\n")
    print("| series | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for r in results:
        print(f"| {r['name']} | " + " | ".join(f"{r['ratios'][k]:.3f}" for k in names) + " |")
    return results


if __name__ == "__main__":
    main()
