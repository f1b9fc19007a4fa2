"""The tick at many series with and without the library's malloc thresholds (``tbptt_online/allocator.py``).

What ``allocator.keep_freed_memory`` (``TBPTT_KEEP_FREED_MEMORY=1``, off by default) rests on: one
model on the main thread (what the thresholds cost where models update on threads of their own is
in ``allocator.py``'s docstring, from a hostile test). For each setting and thread count, in a fresh
process (glibc has one set of thresholds per process), ``tick_parts.measure``: the library's
defaults on standard normal series, one ``observe_many`` per tick of all of them, untimed
warm-up ticks then timed ones (updates and season detections among them); the tick and its
parts in microseconds per series, the milliseconds of an update, the minor page faults per
tick and per update, and the resident memory at the end. "glibc's default" is the library's
default (the switch unset: glibc's thresholds adapt to the blocks freed, its own rule). The settings
take turns, ``rounds`` times, so that a slow spell of the machine falls on both.

    python -m benchmarks.allocator                 # 10,000 series, about 4 minutes on 2 cores
    python -m benchmarks.allocator --smoke --out /tmp/bench
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import report, tick_parts
from benchmarks.lock_step import environment
from benchmarks.tick_parts import PARTS
from tbptt_online import allocator

ROOT = Path(__file__).resolve().parents[1]
DEFAULT, LIBRARY = "glibc's default", "the library's thresholds"
SETTINGS = (DEFAULT, LIBRARY)
THREADS = (1, 2)
FULL, SMOKE = (10_000, 48, 64, 2), (300, 8, 16, 1)  # series, warm-up ticks, timed ticks, rounds
COLUMNS = ("obs_per_s", "update_ms", "faults_per_update", "faults_per_tick", "resident_mb")


def run_setting(setting: str, threads: int, series: int, warmup: int, ticks: int) -> dict[str, Any]:
    """``tick_parts.measure`` in a fresh process under ``setting``, with whether its thresholds were set."""
    code = (
        "import json\n"
        "from tbptt_online import allocator\n"
        "from benchmarks.tick_parts import measure\n"
        f"result = measure({series}, {warmup}, {ticks}, threads={threads})\n"
        "print(json.dumps({**result, 'thresholds_set': allocator.thresholds_set()}))"
    )
    # the user's own malloc variables removed: the library's switch is the process's only choice
    chosen = dict.fromkeys(allocator.READ)
    env = environment({**chosen, allocator.SWITCH: "1" if setting == LIBRARY else None}, PYTHONPATH=str(ROOT))
    return tick_parts.in_fresh_process(code, env, f"with {setting} on {threads} thread(s)")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = report.arguments(__doc__.splitlines()[0], argv)
    info = report.machine("benchmarks.allocator", argv)
    series, warmup, ticks, rounds = SMOKE if args.smoke else FULL
    keys = [(setting, threads) for threads in THREADS for setting in SETTINGS]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {key: [] for key in keys}
    for round_ in range(rounds):
        for threads in THREADS:
            order = SETTINGS if round_ % 2 == 0 else SETTINGS[::-1]  # the first alternates
            for setting in order:
                runs[setting, threads].append(run_setting(setting, threads, series, warmup, ticks))
    medians = (*COLUMNS[1:], *(f"{part}_us_per_series" for part in PARTS))
    rows = [
        {"setting": setting, "threads": threads, **tick_parts.summary(runs[setting, threads], medians)}
        for setting, threads in keys
    ]
    payload = {
        "benchmark": "allocator",
        "smoke": args.smoke,
        "machine": info,
        "series": series,
        "warmup_ticks": warmup,
        "timed_ticks": ticks,
        "rounds": rounds,
        "mmap_threshold": allocator.MMAP_THRESHOLD,
        "trim_threshold": allocator.TRIM_THRESHOLD,
        "rows": rows,
        "runs": [{"setting": s, "threads": t, "runs": runs[s, t]} for s, t in keys],
    }
    lines = [
        "## The tick with and without the library's malloc thresholds",
        "",
        report.machine_line(info)
        + f". {series:,} standard normal series, the library's defaults, {warmup} untimed ticks then {ticks} "
        f"timed, {rounds} round(s) per setting taking turns (a fresh process each). The library's thresholds: "
        f"mmap {allocator.MMAP_THRESHOLD // 2**20} MiB, trim {allocator.TRIM_THRESHOLD // 2**20} MiB "
        f"(`{allocator.SWITCH}=1`); glibc's default: the library's default, the switch unset. One model on the "
        "main thread. obs/s of each round; the rest the median of the rounds: an update's milliseconds, minor "
        "page faults per update and per tick, resident memory at the end, and the update in microseconds per "
        "series of the tick.",
        "",
        report.markdown_table(
            ["setting", "threads", "obs/s", "update ms", "faults per update", "faults per tick", "resident MiB",
             "update µs per series"],
            [
                [
                    r["setting"],
                    r["threads"],
                    ", ".join(f"{x:,.0f}" for x in r["obs_per_s"]),
                    r["update_ms"],
                    r["faults_per_update"],
                    r["faults_per_tick"],
                    r["resident_mb"],
                    r["update_us_per_series"],
                ]
                for r in rows
            ],
        ),
    ]  # fmt: skip
    json_path, md_path = report.write(args.out, "allocator", payload, "\n".join(lines))
    print("\n".join(lines))
    print(f"\nwrote {json_path} and {md_path}")
    return payload


if __name__ == "__main__":
    main()
