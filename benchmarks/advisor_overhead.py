"""The truncation advisor's and the guards' cost at many series (issue 12: at most 10 %).

Two forecasters with the library's defaults over the same standard-normal values, one
``observe_many`` per tick of every series, one torch thread: **on** (the defaults: the
probe records its followed series every tick and measures every ``probe_every`` updates;
the guards watch every update) and **off** (``probe_every=0, guards=False``). After the
same untimed warm-up, timed blocks of ``k1`` ticks (one update each) alternate between the
two, so that a machine's load changes hit both alike; the per-tick times are compared by
their medians. A probe runs once in ``probe_every * k1`` ticks (512 with the defaults): too
rarely to land in a short run, so it is timed on its own (``Forecaster.probe_truncation``,
after the warm-up filled the followed series' windows) and added per tick.

    python -m benchmarks.advisor_overhead                  # 10,000 series, about 3 minutes
    python -m benchmarks.advisor_overhead --series 200 --blocks 2 --out /tmp/bench
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from tbptt_online import Forecaster, ForecasterConfig

WARMUP_TICKS = 48


def run(series: int, blocks: int, seed: int = 0) -> dict:
    torch.set_num_threads(1)
    on = Forecaster(ForecasterConfig(seed=seed))
    off = Forecaster(ForecasterConfig(seed=seed, probe_every=0, guards=False))
    k1 = on.config.k1
    names = [f"s{i}" for i in range(series)]
    generator = torch.Generator().manual_seed(seed)
    ticks = WARMUP_TICKS + 2 * blocks * k1 + 1
    values = torch.randn(ticks, series, generator=generator, dtype=torch.float64).tolist()

    def tick(f: Forecaster, t: int) -> float:
        started = time.perf_counter()
        f.observe_many(list(zip(names, values[t], strict=True)))
        return time.perf_counter() - started

    for t in range(WARMUP_TICKS):
        tick(on, t)
        tick(off, t)
    times: dict[str, list[float]] = {"on": [], "off": []}
    t = WARMUP_TICKS
    for block in range(blocks):  # alternate which goes first, so that neither always follows the other
        order = [("on", on), ("off", off)] if block % 2 == 0 else [("off", off), ("on", on)]
        for name, f in order:
            times[name] += [tick(f, t + i) for i in range(k1)]
        t += k1
    started = time.perf_counter()
    probed = on.probe_truncation()
    probe_seconds = time.perf_counter() - started
    per_tick = {name: statistics.median(value) for name, value in times.items()}
    probe_per_tick = probe_seconds / (on.config.probe_every * k1)
    with_probe = per_tick["on"] + probe_per_tick
    return {
        "series": series,
        "blocks": blocks,
        "timed_ticks_each": blocks * k1,
        "median_tick_seconds_off": per_tick["off"],
        "median_tick_seconds_on": per_tick["on"],
        "probe_seconds": probe_seconds,
        "probe_ran": probed,
        "probe_every_ticks": on.config.probe_every * k1,
        "obs_per_second_off": series / per_tick["off"],
        "obs_per_second_on_with_probe": series / with_probe,
        "throughput_ratio_on_off": per_tick["off"] / with_probe,
        "guard_counts_on": on.engine.guard.counts,
    }


def render(result: dict, command: str, started: str, load: float) -> str:
    r = result
    fall = 1 - r["throughput_ratio_on_off"]
    return "\n".join(
        [
            "## The truncation advisor's and the guards' overhead",
            "",
            f"{started}, load average at start {load:.2f}; command: `{command}`. {r['series']:,} series, "
            f"{r['timed_ticks_each']} timed ticks each (alternating blocks of k1), one torch thread.",
            "",
            "| | median tick (s) | obs/s |",
            "|---|---|---|",
            f"| advisor and guards off | {r['median_tick_seconds_off']:.4f} | {r['obs_per_second_off']:,.0f} |",
            f"| on (defaults), the probe's share included | {r['median_tick_seconds_on']:.4f} + "
            f"{r['probe_seconds'] / r['probe_every_ticks']:.5f} | {r['obs_per_second_on_with_probe']:,.0f} |",
            "",
            f"One probe took {r['probe_seconds']:.3f} s (ran: {r['probe_ran']}), once every "
            f"{r['probe_every_ticks']} ticks. Throughput on / off: {r['throughput_ratio_on_off']:.3f} "
            f"(a fall of {100 * fall:.1f} %; target at most 10 %). Guards fired (on): {r['guard_counts_on']}.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--blocks", type=int, default=6, help="timed blocks of k1 ticks per forecaster")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    load = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result = run(args.series, args.blocks)
    command = "python -m benchmarks.advisor_overhead" + (
        f" --series {args.series} --blocks {args.blocks}" if (args.series, args.blocks) != (10_000, 6) else ""
    )
    text = render(result, command, started, load)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "advisor_overhead.md").write_text(text)
    (args.out / "advisor_overhead.json").write_text(json.dumps({**result, "command": command, "load": load}, indent=1))


if __name__ == "__main__":
    main()
