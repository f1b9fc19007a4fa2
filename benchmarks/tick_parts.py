"""A tick of many series, part by part, in this process: what ``benchmarks.openmp_spin`` and
``benchmarks.allocator`` measure under each of their process settings (each in a fresh process).

The library's defaults on standard normal series, one ``observe_many`` per tick of all of them,
on ``threads`` torch threads: untimed warm-up ticks, then timed ticks (season detection ticks
among them, as in ``benchmarks.throughput``). The whole tick and its parts in microseconds per
series: the compiled kernels before the network's step (scoring, experts' advance), after it
(experts' paths, combination, network input), the served forecasts, and the network's update;
the minor page faults of the timed ticks (those inside the updates apart: every page the kernel
maps and zeroes for the process) and the resident memory at the end. ``in_fresh_process`` runs
it in a process of its own, ``summary`` sums up its rounds under one setting.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

PARTS = {  # what is timed inside a tick: hybrid_tick's compiled calls and the forecaster's update
    "before": ("hybrid_tick", "score_and_advance"),
    "after": ("hybrid_tick", "base_and_input"),
    "served": ("hybrid_tick", "remember_and_serve"),
    "update": ("forecaster.Forecaster", "_update_stateful"),
}


def minor_faults() -> int:
    """This process's minor page faults so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def resident_mb() -> float:
    """This process's resident memory now, in MiB (Linux's ``/proc/self/statm``)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def measure(series: int, warmup: int, ticks: int, threads: int = 2) -> dict[str, Any]:
    """The tick and its parts (the module docstring) in this process, as it is set up."""
    import torch

    from tbptt_online import Forecaster, ForecasterConfig, forecaster, hybrid_tick

    torch.set_num_threads(threads)
    spent: defaultdict[str, float] = defaultdict(float)
    faults = {"update": 0, "updates": 0}

    def timed(owner: Any, name: str, part: str) -> None:
        call: Callable[..., Any] = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start, faulted = time.perf_counter(), minor_faults()
            try:
                return call(*args, **kwargs)
            finally:
                spent[part] += time.perf_counter() - start
                if part == "update":
                    faults["update"] += minor_faults() - faulted
                    faults["updates"] += 1

        setattr(owner, name, wrapper)

    owners = {"hybrid_tick": hybrid_tick, "forecaster.Forecaster": forecaster.Forecaster}
    for part, (owner, name) in PARTS.items():
        timed(owners[owner], name, part)
    model = Forecaster(ForecasterConfig())
    names = [f"s{i}" for i in range(series)]
    generator = torch.Generator().manual_seed(0)
    values = [torch.randn(series, generator=generator, dtype=torch.float64).tolist() for _ in range(warmup + ticks)]
    for t in range(warmup):
        model.observe_many(list(zip(names, values[t], strict=True)))
    spent.clear()
    faults.update(update=0, updates=0)
    start, faulted = time.perf_counter(), minor_faults()
    for t in range(warmup, warmup + ticks):
        model.observe_many(list(zip(names, values[t], strict=True)))
    seconds = time.perf_counter() - start
    faulted = minor_faults() - faulted
    per_series = 1e6 / (ticks * series)
    return {
        "obs_per_s": ticks * series / seconds,
        "tick_us_per_series": seconds * per_series,
        **{f"{part}_us_per_series": spent[part] * per_series for part in PARTS},
        "update_ms": spent["update"] * 1e3 / max(faults["updates"], 1),
        "updates": faults["updates"],
        "faults_per_tick": faulted / ticks,
        "faults_per_update": faults["update"] / max(faults["updates"], 1),
        "resident_mb": resident_mb(),
    }


def in_fresh_process(code: str, env: dict[str, str], what: str) -> dict[str, Any]:
    """The JSON object ``code`` (run by this interpreter in a process of its own, environment
    ``env``) prints on its last line; a RuntimeError naming ``what`` and its stderr if it fails."""
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the probe {what} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(measured: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    """Rounds of ``measure`` under one setting: the obs/s of each, and the median of each of ``keys``."""
    return {
        "obs_per_s": [r["obs_per_s"] for r in measured],
        **{key: statistics.median(r[key] for r in measured) for key in keys},
    }
