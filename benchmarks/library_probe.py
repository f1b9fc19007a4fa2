"""Training throughput and single-series latency of whichever ``tbptt_online`` is first on the path.

``benchmarks.throughput`` runs this file in a subprocess twice: once with this checkout on
``PYTHONPATH`` and once with an older commit's library (the baseline), so both are
measured by the same code, each in a fresh process. It imports only the standard
library, torch and ``tbptt_online`` (never ``benchmarks.*``): an old library must run it.
It prints one JSON object on its last line of output.

Throughput: every series gets one standard normal value per tick, fed as one
``observe_many`` call per tick; only that call is timed, each tick on its own, so the
ticks on which ``season_length="auto"`` looks for seasons can be told apart. The same
forecaster goes on from one thread setting to the next, then reads every result (one
thread). Latency: one series of a seasonal stream (period 24), one ``observe`` and one
``forecast(horizon)`` per step on one thread, each step timed.

    PYTHONPATH=/path/to/checkout python benchmarks/library_probe.py --sizes 100:48:64
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

import tbptt_online
from tbptt_online import Forecaster, ForecasterConfig


def detection_steps(config: ForecasterConfig) -> Callable[[int, bool], bool]:
    """Whether step s is one where ``season_length="auto"`` looks for seasons (never for a
    library without a hybrid, or with the seasons given), given whether a series at that step
    has no season or a short one (``unsettled``): every series is looked at on ``DETECT_AT``,
    an unsettled one on ``DETECT_UNSETTLED`` too. The throughput probe's many standard normal
    series count as unsettled (some of them carry a false season, never all)."""
    never: Callable[[int, bool], bool] = lambda step, unsettled: False  # noqa: E731
    try:
        from tbptt_online import hybrid
    except ImportError:
        return never
    at, every = getattr(hybrid, "DETECT_AT", ()), getattr(hybrid, "DETECT_EVERY", 0)
    young = getattr(hybrid, "DETECT_UNSETTLED", ())
    if not getattr(config, "hybrid", False) or getattr(config, "season_length", None) != "auto":
        return never
    return lambda step, unsettled: step in at or (unsettled and step in young) or (every > 0 and step % every == 0)


def tick_values(n_series: int, ticks: int, seed: int = 0) -> list[list[tuple[str, float]]]:
    """The items of ``ticks`` ticks of ``n_series`` standard normal series (made before any timing)."""
    names = [f"series-{i}" for i in range(n_series)]
    generator = torch.Generator().manual_seed(seed)
    return [
        list(zip(names, torch.randn(n_series, generator=generator, dtype=torch.float64).tolist(), strict=True))
        for _ in range(ticks)
    ]


def time_ticks(forecaster: Forecaster, batches: list, read_results: bool = False) -> list[float]:
    """Seconds of each ``observe_many`` call (with ``read_results``: and of building every StepResult)."""
    spent = []
    for items in batches:
        start = time.perf_counter()
        results = forecaster.observe_many(items)
        if read_results:
            list(results)
        spent.append(time.perf_counter() - start)
    return spent


def throughput(config: ForecasterConfig, n_series: int, warmup: int, ticks: int, read_ticks: int) -> list[dict]:
    """Rows for threads 1 and 2 (``ticks`` each), then ``read_ticks`` with every result read
    (1 thread), after ``warmup`` ticks."""
    detecting = detection_steps(config)
    batches = tick_values(n_series, warmup + 2 * ticks + read_ticks)
    forecaster = Forecaster(config)
    torch.set_num_threads(1)
    time_ticks(forecaster, batches[:warmup])
    rows, first = [], warmup
    for threads, count, read in ((1, ticks, False), (2, ticks, False), (1, read_ticks, True)):
        if count == 0:
            continue
        torch.set_num_threads(threads)
        before = forecaster.update_stats().updates
        seconds = time_ticks(forecaster, batches[first : first + count], read)
        steps = range(first + 1, first + count + 1)  # every series is at the same step
        quiet = [s for s, step in zip(seconds, steps, strict=True) if not detecting(step, True)]
        rows.append(
            {
                "way": "training, every result read" if read else "training",
                "series": n_series,
                "threads": threads,
                "ticks": count,
                "steps": [steps[0], steps[-1]],
                "observations": n_series * count,
                "seconds": round(sum(seconds), 4),
                "obs_per_s": n_series * count / sum(seconds),
                "updates": forecaster.update_stats().updates - before,
                "detection_steps": [step for step in steps if detecting(step, True)],
                "detection_seconds": round(sum(seconds) - sum(quiet), 4),
                "obs_per_s_without_detection": n_series * len(quiet) / sum(quiet) if quiet else None,
            }
        )
        first += count
    return rows


def memory(config: ForecasterConfig, n_series: int) -> dict[str, Any]:
    """Bytes of one row of the series store's tensors, by field, after one tick of ``n_series`` series."""
    forecaster = Forecaster(config)
    forecaster.observe_many(tick_values(n_series, 1)[0])
    tensors = forecaster.store.tensors
    fields = {k: t.element_size() * t[0].numel() for k, t in tensors.items()}
    return {
        "series": n_series,
        "bytes_per_series_row": sum(fields.values()),
        "fields": fields,
        "allocated_bytes_per_series": sum(t.element_size() * t.numel() for t in tensors.values()) / n_series,
        "weights_bytes_shared": sum(p.element_size() * p.numel() for p in forecaster.network.parameters()),
    }


def seasonal_values(steps: int, period: int = 24, seed: int = 1) -> list[float]:
    """10 + 3 sin(2 pi t / period) + N(0, 0.5^2): positive, so every expert is active."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(1, steps + 1, dtype=torch.float64)
    noise = 0.5 * torch.randn(steps, generator=generator, dtype=torch.float64)
    return (10.0 + 3.0 * torch.sin(2 * math.pi * t / period) + noise).tolist()


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def summary_ms(seconds: list[float]) -> dict[str, Any]:
    ordered = sorted(seconds)
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "median_ms": 1e3 * percentile(ordered, 50),
        "p90_ms": 1e3 * percentile(ordered, 90),
        "p99_ms": 1e3 * percentile(ordered, 99),
        "max_ms": 1e3 * ordered[-1],
        "mean_ms": 1e3 * sum(ordered) / len(ordered),
    }


def latency(config: ForecasterConfig, warmup: int, steps: int, horizon: int) -> dict[str, Any]:
    """One ``observe`` + ``forecast(horizon)`` of one series per step, one thread."""
    torch.set_num_threads(1)
    detecting = detection_steps(config)
    forecaster, name = Forecaster(config), "seasonal-24"
    values = seasonal_values(warmup + steps)
    for value in values[:warmup]:
        forecaster.observe(name, value)
        forecaster.forecast(name, horizon=horizon)
    both, observe, forecast, updated, detected = [], [], [], [], []
    short = getattr(getattr(tbptt_online, "hybrid", None), "SHORT_SEASON", 0)  # 0: an old library
    for i, value in enumerate(values[warmup:]):
        # (untimed) whether it is looked at on DETECT_UNSETTLED (its first season none or short, as
        # hybrid.detection_due asks); an old library's stats have no seasons; no stats before a value
        stats = forecaster.series_stats(name) if warmup + i > 0 else None
        unsettled = all(p <= short for p in getattr(stats, "seasons", [])[:1])
        start = time.perf_counter()
        result = forecaster.observe(name, value)
        middle = time.perf_counter()
        forecaster.forecast(name, horizon=horizon)
        end = time.perf_counter()
        both.append(end - start)
        observe.append(middle - start)
        forecast.append(end - middle)
        updated.append(result.updated)
        detected.append(detecting(result.step, unsettled))
    return {
        "warmup_steps": warmup,
        "horizon": horizon,
        "observe_and_forecast": summary_ms(both),
        "observe": summary_ms(observe),
        "forecast": summary_ms(forecast),
        "steps_with_an_update": summary_ms([s for s, u in zip(both, updated, strict=True) if u]),
        "steps_without_an_update": summary_ms([s for s, u in zip(both, updated, strict=True) if not u]),
        "detection_steps": [warmup + 1 + i for i, d in enumerate(detected) if d],
        "detection_step_ms": [round(1e3 * s, 3) for s, d in zip(both, detected, strict=True) if d],
    }


def read_ticks(ticks: int) -> int:
    """Half of ``ticks``, rounded up to a multiple of 8 (k1 of both libraries' defaults: whole update cycles)."""
    return -(-ticks // 16) * 8


def sizes(text: str) -> list[tuple[int, int, int]]:
    """``series:warmup:ticks,...`` -> [(series, warmup, ticks), ...]."""
    return [tuple(int(part) for part in item.split(":")) for item in text.split(",") if item]  # type: ignore[misc]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="{}", help="JSON overrides of the library's ForecasterConfig() defaults")
    parser.add_argument("--sizes", type=sizes, default=[], help="series:warmup:ticks,... (training throughput)")
    parser.add_argument("--read", action="store_true", help="then about half as many ticks with every StepResult read")
    parser.add_argument("--latency", default="", help="warmup:steps of the single-series latency (none if empty)")
    parser.add_argument("--horizon", type=int, default=12)
    args = parser.parse_args(argv)
    config = ForecasterConfig(**json.loads(args.config))
    started = time.perf_counter()
    rows = [
        row
        for n, warmup, ticks in args.sizes
        for row in throughput(config, n, warmup, ticks, read_ticks(ticks) if args.read else 0)
    ]
    largest = max((n for n, _, _ in args.sizes), default=0)
    out = {
        "library": os.path.dirname(tbptt_online.__file__),
        "python": sys.executable,
        "config": config.to_dict(),
        "rows": rows,
        "memory": memory(config, largest) if largest else None,
        "latency": None,
    }
    if args.latency:
        warmup, steps = map(int, args.latency.split(":"))
        out["latency"] = latency(config, warmup, steps, args.horizon)
    out["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out, allow_nan=False))
    return out


if __name__ == "__main__":
    main()
