"""The tick at many series under libgomp's busy waits (``GOMP_SPINCOUNT``), part by part, on 2 threads.

What ``tbptt_online/openmp.py``'s setting rests on. For each wait, in a fresh process (libgomp
reads the variable once, when torch loads it), the library's defaults on standard normal
series, one ``observe_many`` per tick of all of them, ``torch.set_num_threads(2)``: untimed
warm-up ticks, then timed ticks (season detection ticks among them, as in
``benchmarks.throughput``), the whole tick and its parts in microseconds per series: the
compiled kernels before the network's step (scoring, experts' advance), after it (experts'
paths, combination, network input), the served forecasts, and the network's update; then the
CPU time its idle OpenMP threads burn after an operation (``idle_cpu_ms``). The
waits take turns, ``--rounds`` times, so that a slow spell of the machine falls on all.

    python -m benchmarks.openmp_spin                 # 10,000 series, about 4 minutes on 2 cores
    python -m benchmarks.openmp_spin --smoke --out /tmp/bench
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks import report, tick_parts
from benchmarks.lock_step import environment
from benchmarks.tick_parts import PARTS
from tbptt_online import openmp

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = "libgomp's default"  # the variable unset: 300,000 rounds
WAITS = (DEFAULT, "0", "2000", "10000", "20000")
IDLE_S = 0.05  # how long ``idle_cpu_ms`` sleeps after the operation
FULL, SMOKE = (10_000, 48, 32, 2), (300, 8, 8, 1)  # series, warm-up ticks, timed ticks, rounds


def measure(series: int, warmup: int, ticks: int) -> dict[str, Any]:
    """In this process (its libgomp as loaded): the tick and its parts on 2 threads
    (``tick_parts.measure``), the CPU its idle threads burn and the wait it ran under."""
    return {
        **tick_parts.measure(series, warmup, ticks),
        "idle_cpu_ms": idle_cpu_ms(),
        "gomp_spincount": os.environ.get(openmp.VARIABLE),
    }


def idle_cpu_ms(rounds: int = 5, idle_s: float = IDLE_S) -> float:
    """The CPU time this process spends while its main thread sleeps ``idle_s`` right after a
    2-thread torch operation (a matrix product): its OpenMP threads' busy wait, in milliseconds,
    the median of ``rounds``. What another process loses of a core when it runs right after."""
    import torch

    a = torch.randn(1000, 1000, generator=torch.Generator().manual_seed(0))
    burnt = []
    for _ in range(rounds):
        torch.mm(a, a)  # a parallel region, then nothing
        start = time.process_time()
        time.sleep(idle_s)
        burnt.append((time.process_time() - start) * 1e3)
    return statistics.median(burnt)


def run_wait(wait: str, series: int, warmup: int, ticks: int) -> dict[str, Any]:
    """``measure`` in a fresh process under ``wait``."""
    env = environment({openmp.VARIABLE: None if wait == DEFAULT else wait}, PYTHONPATH=str(ROOT))
    code = (
        "import json, torch\n"  # torch first: the package must not choose the wait here
        "from benchmarks.openmp_spin import measure\n"
        f"print(json.dumps(measure({series}, {warmup}, {ticks})))"
    )
    return tick_parts.in_fresh_process(code, env, f"under {openmp.VARIABLE}={wait}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = report.arguments(__doc__.splitlines()[0], argv)
    info = report.machine("benchmarks.openmp_spin", argv)
    series, warmup, ticks, rounds = SMOKE if args.smoke else FULL
    runs: dict[str, list[dict[str, Any]]] = {wait: [] for wait in WAITS}
    for round_ in range(rounds):
        for wait in WAITS[round_ % len(WAITS) :] + WAITS[: round_ % len(WAITS)]:  # the first rotates
            runs[wait].append(run_wait(wait, series, warmup, ticks))
    medians = ("tick_us_per_series", *(f"{p}_us_per_series" for p in PARTS), "idle_cpu_ms")
    rows = [{"wait": wait, **tick_parts.summary(measured, medians)} for wait, measured in runs.items()]
    payload = {
        "benchmark": "openmp_spin",
        "smoke": args.smoke,
        "machine": info,
        "series": series,
        "warmup_ticks": warmup,
        "timed_ticks": ticks,
        "rounds": rounds,
        "rows": rows,
        "runs": runs,
    }
    lines = [
        "## The tick under libgomp's busy waits (`GOMP_SPINCOUNT`), 2 threads",
        "",
        report.machine_line(info)
        + f". {series:,} standard normal series, the library's defaults, {warmup} untimed ticks then {ticks} "
        f"timed, {rounds} round(s) per wait taking turns (a fresh process each); microseconds per series, the "
        "median of the rounds; obs/s of each round. The last column: the CPU time the process spent while its "
        f"main thread slept {IDLE_S * 1e3:.0f} ms right after a 2-thread matrix product (its OpenMP threads' busy "
        "wait: what a process that runs next loses of a core), the median of 5.",
        "",
        report.markdown_table(
            [
                "GOMP_SPINCOUNT",
                "obs/s",
                "tick",
                "kernels before the network",
                "kernels after",
                "served",
                "update",
                f"CPU ms while idle {IDLE_S * 1e3:.0f} ms",
            ],
            [
                [
                    r["wait"],
                    ", ".join(f"{x:,.0f}" for x in r["obs_per_s"]),
                    r["tick_us_per_series"],
                    r["before_us_per_series"],
                    r["after_us_per_series"],
                    r["served_us_per_series"],
                    r["update_us_per_series"],
                    r["idle_cpu_ms"],
                ]
                for r in rows
            ],
        ),
    ]
    json_path, md_path = report.write(args.out, "openmp_spin", payload, "\n".join(lines))
    print("\n".join(lines))
    print(f"\nwrote {json_path} and {md_path}")
    return payload


if __name__ == "__main__":
    main()
