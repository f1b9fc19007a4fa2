"""Each member of the hybrid's combination alone against the combination it serves.

The diagnosis behind issue 10's losses to naive: per stream, prequential as
``benchmarks.accuracy`` (the same warm-up and alignment), the MAE / naive MAE of the served
forecast, of each combiner's (fast, slow), of every member alone, and which member was best
in hindsight. The forecasts are read, after each value, from the origin ring the model keeps
for its own scoring (``c_origin``: float32 relative to the origin's reference ``c_origin_ref``,
so a figure may differ from the accuracy benchmark's in the sixth digit).

    python -m benchmarks.members                # the accuracy benchmark's streams
    python -m benchmarks.members --outside      # and series outside it (benchmarks.outside_series)
"""

from __future__ import annotations

import argparse
import datetime
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.accuracy import warmup_of
from benchmarks.outside_series import outside_series
from benchmarks.real_series import RealSeries, all_series
from tbptt_online import Forecaster, ForecasterConfig, hybrid

HORIZON = 12
SERVED, FAST, SLOW = hybrid.N_MEMBERS, hybrid.N_MEMBERS + 2, hybrid.N_MEMBERS + 3  # columns of the ring


def origins(series: RealSeries, config: ForecasterConfig) -> np.ndarray:
    """[n + 1, H, columns]: after t values (t = 0..n), the forecasts of values t .. t + H - 1
    by every member, the served mean, its half-width as remembered for scoring (0 where the
    horizon had no width of its own yet: ``tick_kernels.served``) and the two combiners (NaN at t = 0)."""
    return recorded(Forecaster(config), series.values)


def recorded(forecaster: Forecaster, values: Sequence[float] | np.ndarray) -> np.ndarray:
    """``origins`` of ``values`` fed to ``forecaster`` as series "y" (its state after them is the
    caller's to read: ``benchmarks.long_series``)."""
    ring_size = forecaster.config.calibrated_horizon
    made = np.full((len(values) + 1, ring_size, hybrid.ORIGIN_COLUMNS), np.nan)
    for t, y in enumerate(values, start=1):
        forecaster.observe("y", float(y))
        slot = forecaster.store.slot_of("y")
        ring = forecaster.store.tensors["c_origin"][slot, t % ring_size, :, :, 0].numpy()  # [Hc, columns]
        ref = forecaster.store.tensors["c_origin_ref"][slot, t % ring_size, 0].item()  # kept relative to it
        made[t] = ring + ref
        made[t, :, SERVED + 1] = ring[:, SERVED + 1]  # the half-width: stored as it is
    return made


def scores(series: RealSeries, config: ForecasterConfig) -> dict[str, Any]:
    """MAE / naive MAE, one step and over h = 1..H, of each column of ``origins``."""
    y = np.asarray(series.values)
    made = origins(series, config)
    start, n = warmup_of(series), len(y)
    horizon = min(HORIZON, config.calibrated_horizon)
    one = np.abs(y[start:, None] - made[start:n, 0])  # [n - start, columns]
    naive_one = np.abs(y[start:] - y[start - 1 : n - 1]).mean()
    ends = np.arange(start, n - horizon + 1)  # origins whose H values exist
    targets = y[ends[:, None] + np.arange(horizon)]  # [O, H]
    many = np.abs(targets[:, :, None] - made[ends, :horizon]).mean(axis=(0, 1))  # [columns]
    naive_many = np.abs(targets - y[ends - 1, None]).mean()
    return {"one": one.mean(axis=0) / naive_one, "many": many / naive_many}


def line(name: str, ratios: np.ndarray) -> str:
    members = ratios[: hybrid.N_MEMBERS]
    best = int(np.nanargmin(members))
    naive, network = members[hybrid.MEMBERS.index("naive")], members[hybrid.MEMBERS.index("network")]
    return (
        f"| {name} | {ratios[SERVED]:.3f} | {ratios[FAST]:.3f} | {ratios[SLOW]:.3f} | {naive:.3f} | "
        f"{network:.3f} | {hybrid.MEMBERS[best]} {members[best]:.3f} |"
    )


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outside", action="store_true", help="also the series outside the benchmark")
    parser.add_argument("--only", type=str, default=None, help="comma-separated stream names")
    args = parser.parse_args(argv)
    streams = all_series() + (outside_series() if args.outside else [])
    if args.only:
        streams = [s for s in streams if s.name in args.only.split(",")]
    config = ForecasterConfig()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = "| stream | served | fast combiner | slow combiner | naive member | network member | best member |"
    rows = {"one": [], "many": []}
    for series in streams:
        ratios = scores(series, config)
        for key in rows:
            rows[key].append(line(series.name, ratios[key]))
    load = os.getloadavg()[0]
    text = [f"MAE / naive MAE, `ForecasterConfig()` defaults ({stamp}, load average {load:.2f} at the end)", ""]
    for key, title in (("one", "one step"), ("many", f"h=1..{HORIZON}")):
        text += [f"{title}:", "", head, "|---|---|---|---|---|---|---|", *rows[key], ""]
    report = "\n".join(text)
    print(report)
    return report


if __name__ == "__main__":
    main()
