"""Library throughput against the naive per-series loop, with memory per series and a profile.

Every series gets one value per tick, fed as one ``Forecaster.observe_many`` call per
tick (what a service batch does). Only that call is timed; the values are made before.
Training: GRU, hidden 64, k1 = 8, k2 = 32, Adam, stateful, gaussian loss (the
library's defaults). Forward-only: the library has no switch to turn training off,
so it is measured with k1 = 100,000, larger than the stream, so that no update falls
due (asserted); everything else of a tick (normalising, scoring, forecasting) runs.
The naive way is ``benchmarks.naive_tbptt``: one model per series, one call per value.

    python -m benchmarks.throughput            # full size, a few minutes
    python -m benchmarks.throughput --smoke --out /tmp/bench
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import torch

from benchmarks import report
from benchmarks.naive_tbptt import NaiveSeriesModel
from benchmarks.observe_profile import profile_observe
from tbptt_online import Forecaster, ForecasterConfig

TRAINING = ForecasterConfig(cell="gru", hidden_size=64, k1=8, k2=32, optimizer="adam", mode="stateful")
FORWARD_ONLY = dataclasses.replace(TRAINING, k1=100_000)  # no update falls due in a shorter stream
THREADS = (1, 2)

# series -> (warm-up ticks, timed ticks per thread setting). The warm-up covers k2 = 32
# steps so that every timed update replays a full window.
FULL_LIBRARY = {1: (40, 1600), 100: (40, 320), 10_000: (40, 48)}
FULL_FORWARD = {1: (8, 1600), 100: (8, 400), 10_000: (8, 24)}
FULL_NAIVE = {1: (40, 800), 100: (40, 48)}
SMOKE_LIBRARY = {1: (4, 16), 20: (4, 16), 200: (4, 8)}
SMOKE_FORWARD = SMOKE_LIBRARY
SMOKE_NAIVE = {1: (4, 16), 20: (4, 8)}

TARGETS = {
    "training obs/s at 10,000 series": 50_000,
    "forward-only obs/s at 10,000 series": 500_000,
    "library / naive at 100 series": 10.0,
    "single series: library time / raw torch time (at most)": 1.5,
}


class TickStream:
    """Standard normal values, one per series per tick, from a seeded generator."""

    def __init__(self, n_series: int, seed: int = 0) -> None:
        self.names = [f"series-{i}" for i in range(n_series)]
        self.generator = torch.Generator().manual_seed(seed)

    def next_values(self) -> list[float]:
        return torch.randn(len(self.names), generator=self.generator, dtype=torch.float64).tolist()

    def next_items(self) -> list[tuple[str, float]]:
        return list(zip(self.names, self.next_values(), strict=True))


def time_library(forecaster: Forecaster, stream: TickStream, ticks: int, read_results: bool = False) -> float:
    """Seconds spent inside ``observe_many`` over ``ticks`` ticks (and, with ``read_results``,
    in turning every result into its ``StepResult``, which the library otherwise builds lazily)."""
    spent = 0.0
    for _ in range(ticks):
        items = stream.next_items()
        start = time.perf_counter()
        results = forecaster.observe_many(items)
        if read_results:
            list(results)
        spent += time.perf_counter() - start
    return spent


def time_naive(models: list[NaiveSeriesModel], stream: TickStream, ticks: int) -> float:
    spent = 0.0
    for _ in range(ticks):
        values = stream.next_values()
        start = time.perf_counter()
        for model, value in zip(models, values, strict=True):
            model.observe(value)
        spent += time.perf_counter() - start
    return spent


def measure_library(config: ForecasterConfig, sizes: dict[int, tuple[int, int]], way: str) -> list[dict[str, Any]]:
    rows = []
    read_results = way == "training, every result read"
    for n_series, (warmup, ticks) in sizes.items():
        forecaster, stream = Forecaster(config), TickStream(n_series)
        time_library(forecaster, stream, warmup)  # the same forecaster goes on for each thread setting
        for threads in (1,) if read_results else THREADS:
            torch.set_num_threads(threads)
            before = forecaster.update_stats().updates
            seconds = time_library(forecaster, stream, ticks, read_results)
            updates = forecaster.update_stats().updates - before
            if way == "forward-only" and forecaster.update_stats().updates != 0:
                raise RuntimeError("an update ran in the forward-only measurement")
            rows.append(_row(way, n_series, threads, ticks, seconds, updates))
    return rows


def measure_naive(sizes: dict[int, tuple[int, int]]) -> list[dict[str, Any]]:
    rows = []
    for n_series, (warmup, ticks) in sizes.items():
        k1, k2 = TRAINING.k1, TRAINING.k2
        models = [NaiveSeriesModel(TRAINING.hidden_size, k1, k2, TRAINING.lr, seed=i) for i in range(n_series)]
        stream = TickStream(n_series)
        time_naive(models, stream, warmup)
        for threads in THREADS:
            torch.set_num_threads(threads)
            before = sum(m.updates for m in models)
            seconds = time_naive(models, stream, ticks)
            rows.append(_row("naive", n_series, threads, ticks, seconds, sum(m.updates for m in models) - before))
    return rows


def _row(way: str, n_series: int, threads: int, ticks: int, seconds: float, updates: int) -> dict[str, Any]:
    observations = n_series * ticks
    return {
        "way": way,
        "series": n_series,
        "threads": threads,
        "ticks": ticks,
        "observations": observations,
        "seconds": round(seconds, 4),
        "obs_per_s": observations / seconds,
        "updates": updates,
    }


def memory_per_series(n_series: int) -> dict[str, Any]:
    """Bytes of the store's per-series tensors (state, anchors, history, normaliser, scores)."""
    out: dict[str, Any] = {"series": n_series}
    for mode in ("stateful", "stateless"):
        forecaster = Forecaster(dataclasses.replace(TRAINING, mode=mode))
        forecaster.observe_many(TickStream(n_series).next_items())
        tensors = forecaster.store.tensors
        fields = {k: t.element_size() * t[0].numel() for k, t in tensors.items()}  # one row
        allocated = sum(t.element_size() * t.numel() for t in tensors.values())
        out[mode] = {
            "bytes_per_series_row": sum(fields.values()),
            "fields": fields,
            "capacity_rows": forecaster.store.capacity,
            "allocated_bytes_per_series": allocated / n_series,
            "weights_bytes_shared": sum(p.element_size() * p.numel() for p in forecaster.network.parameters()),
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = report.arguments(__doc__.splitlines()[0], argv)
    info = report.machine("benchmarks.throughput", argv)
    library_sizes, forward_sizes, naive_sizes = (
        (SMOKE_LIBRARY, SMOKE_FORWARD, SMOKE_NAIVE) if args.smoke else (FULL_LIBRARY, FULL_FORWARD, FULL_NAIVE)
    )
    started = time.perf_counter()
    rows = measure_library(TRAINING, library_sizes, "training")
    rows += measure_library(TRAINING, library_sizes, "training, every result read")
    rows += measure_library(FORWARD_ONLY, forward_sizes, "forward-only")
    rows += measure_naive(naive_sizes)
    largest, middle = max(library_sizes), sorted(naive_sizes)[-1]
    memory = memory_per_series(largest)
    short = args.smoke
    profiles = {
        "single series, training": profile_observe(TRAINING, TickStream(1), 40, 40 if short else 800),
        f"{largest} series, training": profile_observe(TRAINING, TickStream(largest), 40, 8 if short else 16),
        f"{largest} series, forward-only": profile_observe(FORWARD_ONLY, TickStream(largest), 2, 4 if short else 8),
    }
    torch.set_num_threads(info["torch_threads_default"])

    def rate(way: str, n: int, threads: int) -> float:
        return next(r["obs_per_s"] for r in rows if (r["way"], r["series"], r["threads"]) == (way, n, threads))

    def fastest(way: str, n: int) -> float:  # each way at its own best thread setting
        return max(rate(way, n, t) for t in THREADS)

    ratios = [
        {"series": n, "threads": t, "library_over_naive": rate("training", n, t) / rate("naive", n, t)}
        for n in naive_sizes
        for t in THREADS
        if n in library_sizes
    ]
    best = {
        "training obs/s at 10,000 series": fastest("training", largest),
        "forward-only obs/s at 10,000 series": fastest("forward-only", largest),
        "library / naive at 100 series": fastest("training", middle) / fastest("naive", middle),
        "single series: library time / raw torch time (at most)": fastest("naive", 1) / fastest("training", 1),
    }
    targets = [
        {
            "target": name,
            "goal": goal,
            "measured": best[name],
            "met": best[name] <= goal if "at most" in name else best[name] >= goal,
        }
        for name, goal in TARGETS.items()
    ]
    payload = {
        "benchmark": "throughput",
        "smoke": args.smoke,
        "machine": info,
        "config_training": TRAINING.to_dict(),
        "config_forward_only": FORWARD_ONLY.to_dict(),
        "forward_only_note": "no switch in the library: k1 = 100,000 > stream length, so no update falls due",
        "raw_torch_note": "raw torch time of a single series = the naive loop at 1 series (its own torch calls only)",
        "rows": rows,
        "ratios": ratios,
        "targets": targets,
        "memory": memory,
        "profiles": profiles,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    markdown = render(payload, largest)
    report.write(args.out, "throughput", payload, markdown)
    print(markdown)
    return payload


def render(payload: dict[str, Any], largest: int) -> str:
    rows, info = payload["rows"], payload["machine"]
    keys = sorted({(r["series"], r["threads"]) for r in rows})

    def get(way: str, key: tuple[int, int]) -> float | None:
        return next((r["obs_per_s"] for r in rows if r["way"] == way and (r["series"], r["threads"]) == key), None)

    table = []
    for key in keys:
        train, naive = get("training", key), get("naive", key)
        read = get("training, every result read", key)
        ratio = None if naive is None else train / naive
        table.append([key[0], key[1], train, read, get("forward-only", key), naive, ratio])
    parts = [
        "## Throughput (observations per second)",
        "",
        report.machine_line(info),
        "",
        "Training: GRU hidden 64, k1 = 8, k2 = 32, Adam, stateful, one `observe_many` call per tick of all "
        "series. Forward-only: k1 = 100,000 (no update falls due; the library has no switch). Naive: one "
        "model per series, one call per value, replay of k2 values and a backward every k1 steps. "
        "`observe_many` builds its StepResults lazily: the training column reads none, the next one reads "
        f"all (1 thread). Load average at the end: {payload['load_average_at_end'][0]} (other processes on "
        "the machine slow the 2-thread runs most).",
        "",
        report.markdown_table(
            [
                "series",
                "threads",
                "training obs/s",
                "same, every StepResult read",
                "forward-only obs/s",
                "naive obs/s",
                "training / naive",
            ],
            table,
        ),
        "",
        report.markdown_table(
            ["target", "goal", "measured (each way at its best thread setting)", "met"],
            [[t["target"], float(t["goal"]), t["measured"], "yes" if t["met"] else "no"] for t in payload["targets"]],
        ),
        "",
        f"Memory per series at {largest:,} series (bytes of one row of the store's tensors; allocated includes "
        "the spare capacity of the doubling growth):",
        "",
        report.markdown_table(
            ["mode", "bytes per series", "allocated bytes / series", "capacity rows", "shared weights bytes"],
            [
                [
                    mode,
                    m["bytes_per_series_row"],
                    m["allocated_bytes_per_series"],
                    m["capacity_rows"],
                    m["weights_bytes_shared"],
                ]
                for mode, m in ((k, payload["memory"][k]) for k in ("stateful", "stateless"))
            ],
        ),
    ]
    for name, prof in payload["profiles"].items():
        parts += [
            "",
            f"Profile, {name} (cProfile, 1 thread, {prof['ticks']} ticks; {100 * prof['share_in_torch_calls']:.0f} % "
            "of own time inside torch calls):",
            "",
            report.markdown_table(
                ["function (top own time)", "calls", "own %", "cumulative %"],
                [[e["function"], e["calls"], e["own_pct"], e["cumulative_pct"]] for e in prof["top_own_time"][:8]],
            ),
            "",
            report.markdown_table(
                ["library function (top cumulative)", "calls", "own %", "cumulative %"],
                [
                    [e["function"], e["calls"], e["own_pct"], e["cumulative_pct"]]
                    for e in prof["top_library_cumulative"][:8]
                ],
            ),
        ]
    return "\n".join(parts)


if __name__ == "__main__":
    main()
