"""Library throughput and single-series latency, the library's defaults against an older main's, side by side.

Every series gets one value per tick, fed as one ``Forecaster.observe_many`` call per
tick (what a service batch does). Only that call is timed; the values are made before.

- **Side by side, in lock step** (``benchmarks/library_probe.py``, one subprocess each, the
  same code): this checkout's ``ForecasterConfig()`` (the hybrid: experts, online
  combination, calibrated intervals, the network as a corrector), the defaults of the library
  at ``--baseline-commit`` (the network-only forecaster: GRU 64, k1 8, k2 32, Adam), exported
  with ``git archive`` into a folder under the temporary directory (or given as ``--baseline
  PATH``), and the old network-only configuration on this checkout (to tell the engine's cost
  from the hybrid's), and the old main once more under the new library's libgomp wait
  (``GOMP_SPINCOUNT``, ``tbptt_online/openmp.py``; the others run as each library comes: the
  old main with libgomp's default), so that the ratio is against the old main at the better of
  the two. The four processes take turns, the first to go rotating: one tick
  each at 10,000 series, so that a slow spell of this shared machine falls on all of them (run
  one after another, the old main's two runs in one benchmark differed by up to 17 %); at
  fewer series, and for the latency, a whole row each (a process that has waited runs slower
  for a while: short turns would slow small ticks); 20 ms between two turns
  (``lock_step.PAUSE_S``: a process's idle OpenMP threads spin on after its turn, at libgomp's
  default for several milliseconds of a core (``benchmarks.openmp_spin`` measures it), which the
  next process lost). Every probe warms up 48 ticks first: the
  hybrid's warm-up updates (every value up to step 32) and its first season detections (steps
  16, 20, 24, 30, 36, 42, 48) are not timed; later detections (54, 60, 66, 72, 84, 96, ...:
  the standard normal series have no season, so they are looked at on
  ``hybrid.DETECT_UNSETTLED`` too) fall into the timed ticks and are reported apart.
- **Latency**: one ``observe`` + ``forecast(horizon=12)`` of one seasonal series (period
  24) per step on one thread, after a warm-up of 200 steps; both libraries.
- **This checkout's defaults only** (in this process): forward-only (the library has no
  switch to turn training off: k1 = 100,000 and no warm-up updates, so that no update
  falls due, asserted); the naive loop (``benchmarks.naive_tbptt``: one network-only
  model per series, one call per value); memory per series; cProfile of the tick.

    python -m benchmarks.throughput            # full size, about 4.5 minutes on 2 cores
    python -m benchmarks.throughput --smoke --out /tmp/bench
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

# before torch (here and in benchmarks.report), as a user's program: its libgomp wait
from tbptt_online import allocator, openmp

# isort: split
import torch

from benchmarks import report
from benchmarks.lock_step import Probe, in_lock_step
from benchmarks.naive_tbptt import NaiveSeriesModel
from benchmarks.observe_profile import profile_observe
from benchmarks.throughput_render import render
from tbptt_online import Forecaster, ForecasterConfig

ROOT = Path(__file__).resolve().parents[1]
BASELINE_COMMIT = "aa3f8ed"  # the last main whose defaults were the network-only forecaster
TRAINING = ForecasterConfig()  # the library's defaults (the hybrid)
FORWARD_ONLY = dataclasses.replace(TRAINING, k1=100_000, warmup_updates=0)  # no update falls due
BASELINE_SETTINGS = "baseline, the new library's process settings"  # the old main under GOMP_SPINCOUNT as the
# new library sets it in its process (``tbptt_online/openmp.py``; its malloc thresholds, ``allocator.py``, are
# off by default, so every probe runs under glibc's own)
SETTINGS = {openmp.VARIABLE: str(openmp.SPIN_COUNT)}
OLD_DEFAULTS = {"hybrid": False, "warmup_updates": 0, "lr": 1e-3, "loss": "gaussian"}  # the network-only one
# the first round's forward-only target was set for the network-only forecaster (GRU 64 then): the network-only
# config on this library (``hybrid=False``, its other defaults: GRU 32 since session 24), no update falling due
FORWARD_ONLY_NETWORK = dataclasses.replace(ForecasterConfig(**OLD_DEFAULTS), k1=100_000)
THREADS = (1, 2)
NETWORK_FORWARD = "forward-only, network-only config"  # the rows' way of FORWARD_ONLY_NETWORK
HORIZON = 12

# series:warmup:ticks per thread setting (and half as many with every result read). 48 warm-up
# ticks pass the hybrid's warm-up updates (steps 1-32) and its first detections (16-48);
# tick counts are multiples of k1 = 8, so every timed window holds the same number of updates.
# Few ticks at 1 and 100 series: on a busy machine a 2-thread tick of a few series can take 100 ms
# (twice these counts took 19 minutes on 2 cores at load 4-7; these took 21 minutes at load 5-9).
# 128 ticks at 10,000 series (16 updates each): the old main's update takes 300-420 ms or more on
# two threads by how many pages it faults in (README), and over 32 ticks (4 updates) its rate
# swung 1.6x from run to run; each WINDOW ticks' rate is reported beside the whole phase's.
FULL_SIDE_BY_SIDE = "1:48:200,100:48:80,10000:48:128"
WINDOW = 32  # ticks: the rate of each such stretch of a phase at 10,000 series, in step order
SMOKE_SIDE_BY_SIDE = "1:24:8,20:24:8"
FULL_LATENCY, SMOKE_LATENCY = "200:2000", "30:20"
FULL_FORWARD = {1: (48, 200), 100: (48, 80), 10_000: (48, 16)}
SMOKE_FORWARD = {1: (4, 8), 20: (4, 4)}
FULL_NAIVE = {1: (40, 96), 100: (40, 16)}
SMOKE_NAIVE = {1: (4, 8), 20: (4, 4)}
FULL_PROFILE = (48, 200, 8, 4)  # warm-up ticks, then profiled ticks: 1 series, the largest, forward-only
SMOKE_PROFILE = (8, 16, 4, 2)

TARGETS = {  # name -> (goal, at most)
    "training at 10,000 series: new defaults / old main, same run": (0.8, False),
    "single series observe + forecast(12), median ms": (1.0, True),
    "single series observe + forecast(12), p99 ms": (3.0, True),
    "training obs/s at 10,000 series": (50_000, False),
    "forward-only obs/s at 10,000 series": (500_000, False),
    "forward-only obs/s at 10,000 series, the network-only config": (500_000, False),
    "library / naive at 100 series": (10.0, False),
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


# -- side by side (subprocesses) ----------------------------------------------------
def baseline_library(path: Path | None, commit: str) -> Path:
    """A folder holding the ``tbptt_online`` of ``commit``: ``path`` when given, else exported
    once with ``git archive`` into the temporary directory (nothing in this checkout changes)."""
    if path is not None:
        if not (path / "tbptt_online" / "__init__.py").is_file():
            raise SystemExit(f"--baseline {path} holds no tbptt_online/__init__.py")
        return path.resolve()
    target = Path(tempfile.gettempdir()) / f"tbptt-baseline-{commit}"
    if (target / "tbptt_online" / "__init__.py").is_file():
        return target
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "tbptt_online"], capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise SystemExit(
            f"cannot export tbptt_online at {commit} with git archive ({archive.stderr.decode().strip()}); "
            "give a checkout of the old main with --baseline PATH"
        )
    staging = Path(tempfile.mkdtemp(prefix=f"tbptt-baseline-{commit}-", dir=target.parent))
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(staging, filter="data")
    try:
        staging.rename(target)
    except OSError:  # another run exported it meanwhile
        shutil.rmtree(staging)
    return target


def side_by_side(baseline: Path, commit: str, smoke: bool) -> dict[str, Any]:
    """The baseline's defaults, this checkout's, the old network-only config on this checkout
    and the baseline under the new library's process settings (``SETTINGS``): four probes in lock step
    (``in_lock_step``)."""
    arguments = ["--sizes", SMOKE_SIDE_BY_SIDE if smoke else FULL_SIDE_BY_SIDE, "--read", "--horizon", str(HORIZON)]
    latency = ["--latency", SMOKE_LATENCY if smoke else FULL_LATENCY]
    probes: dict[str, Probe] = {}
    # each library as it comes: libgomp's default and glibc's own thresholds, or what the library sets
    chosen = (*SETTINGS, *allocator.READ)
    shipped: dict[str, str | None] = dict.fromkeys(chosen)
    try:
        probes["baseline"] = Probe(baseline, [*arguments, *latency], env=shipped)
        probes["new defaults"] = Probe(ROOT, [*arguments, *latency], env=shipped)
        network_only = [*arguments, "--config", json.dumps(OLD_DEFAULTS)]
        probes["new library, old network-only config"] = Probe(ROOT, network_only, env=shipped)
        # the old main with the new library's process settings: what the settings alone do to it
        probes[BASELINE_SETTINGS] = Probe(baseline, arguments, env={**shipped, **SETTINGS})
        in_lock_step(probes)
        runs = {name: probe.finish() for name, probe in probes.items()}
    finally:
        for probe in probes.values():
            probe.kill()
    rows = []
    for name, run in runs.items():
        library = {"baseline": "baseline", BASELINE_SETTINGS: "baseline, new settings"}.get(name, "current")
        rows += [{**row, "library": library, "run": name} for row in run["rows"]]
    return {"baseline_commit": commit, "baseline_path": str(baseline), "runs": runs, "rows": rows}


def window_rates(n_series: int, tick_seconds: list[float]) -> list[float]:
    """obs/s of each ``WINDOW`` consecutive ticks (a shorter rest is left out).

    >>> window_rates(10, [0.125] * 32 + [0.25] * 32 + [0.5])
    [80.0, 40.0]
    """
    return [
        n_series * WINDOW / sum(tick_seconds[i : i + WINDOW]) for i in range(0, len(tick_seconds) - WINDOW + 1, WINDOW)
    ]


def baseline_rate(rows: list[dict[str, Any]], way: str, n: int, threads: int, library: str = "baseline") -> float:
    (rate,) = [
        r["obs_per_s"]
        for r in rows
        if r["library"] == library and (r["way"], r["series"], r["threads"]) == (way, n, threads)
    ]
    return rate


# -- this checkout's defaults (in this process) ------------------------------------
def time_library(forecaster: Forecaster, stream: TickStream, ticks: int) -> float:
    """Seconds spent inside ``observe_many`` over ``ticks`` ticks."""
    spent = 0.0
    for _ in range(ticks):
        items = stream.next_items()
        start = time.perf_counter()
        forecaster.observe_many(items)
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


def measure_forward_only(
    sizes: dict[int, tuple[int, int]], config: ForecasterConfig = FORWARD_ONLY, way: str = "forward-only"
) -> list[dict[str, Any]]:
    rows = []
    for n_series, (warmup, ticks) in sizes.items():
        forecaster, stream = Forecaster(config), TickStream(n_series)
        time_library(forecaster, stream, warmup)  # the same forecaster goes on for each thread setting
        for threads in THREADS:
            torch.set_num_threads(threads)
            seconds = time_library(forecaster, stream, ticks)
            if forecaster.update_stats().updates != 0:
                raise RuntimeError("an update ran in the forward-only measurement")
            rows.append(_row(way, n_series, threads, ticks, seconds, 0))
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
        "library": "naive" if way == "naive" else "current",
        "series": n_series,
        "threads": threads,
        "ticks": ticks,
        "observations": observations,
        "seconds": round(seconds, 4),
        "obs_per_s": observations / seconds,
        "updates": updates,
    }


def memory_per_series(n_series: int) -> dict[str, Any]:
    """Bytes of the store's per-series tensors (network state, history, experts, combination, scores)."""
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
    parser = report.parser(__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, default=None, help="a folder holding the old main's tbptt_online")
    parser.add_argument("--baseline-commit", default=BASELINE_COMMIT, help="exported when --baseline is not given")
    args = parser.parse_args(argv)
    info = report.machine("benchmarks.throughput", argv)
    smoke = args.smoke
    started = time.perf_counter()
    compared = side_by_side(baseline_library(args.baseline, args.baseline_commit), args.baseline_commit, smoke)
    forward_sizes, naive_sizes = (SMOKE_FORWARD, SMOKE_NAIVE) if smoke else (FULL_FORWARD, FULL_NAIVE)
    rows = [r for r in compared["rows"] if r["run"] == "new defaults"]
    rows += measure_forward_only(forward_sizes)
    rows += measure_forward_only(forward_sizes, FORWARD_ONLY_NETWORK, NETWORK_FORWARD)
    rows += measure_naive(naive_sizes)
    largest, middle = max(forward_sizes), sorted(naive_sizes)[-1]
    memory = memory_per_series(largest)
    memory["baseline"] = compared["runs"]["baseline"]["memory"]
    warm, single, many, forward = SMOKE_PROFILE if smoke else FULL_PROFILE
    profiles = {
        "single series, training": profile_observe(TRAINING, TickStream(1), warm, single),
        f"single series, observe + forecast({HORIZON})": profile_observe(
            TRAINING, TickStream(1), warm, single, forecast_horizon=HORIZON
        ),
        f"{largest} series, training": profile_observe(TRAINING, TickStream(largest), warm, many),
        f"{largest} series, forward-only": profile_observe(FORWARD_ONLY, TickStream(largest), warm, forward),
    }
    torch.set_num_threads(info["torch_threads_default"])

    def rate(way: str, n: int, threads: int) -> float:
        return next(r["obs_per_s"] for r in rows if (r["way"], r["series"], r["threads"]) == (way, n, threads))

    def fastest(way: str, n: int) -> float:  # each way at its own best thread setting
        return max(rate(way, n, t) for t in THREADS)

    side = compared["rows"]
    ratios = [
        {
            "way": way,
            "series": r["series"],
            "threads": r["threads"],
            "new_obs_per_s": r["obs_per_s"],
            "new_obs_per_s_without_detection": r["obs_per_s_without_detection"],
            "old_obs_per_s": baseline_rate(side, way, r["series"], r["threads"]),
            "old_settings_obs_per_s": baseline_rate(side, way, r["series"], r["threads"], "baseline, new settings"),
        }
        for r in rows
        for way in ("training", "training, every result read")
        if r["way"] == way
    ]
    for r in ratios:  # against the old main at the better of its two process settings
        r["old_best_obs_per_s"] = max(r["old_obs_per_s"], r["old_settings_obs_per_s"])
        r["new_over_old"] = r["new_obs_per_s"] / r["old_best_obs_per_s"]
    windows = [
        {key: r[key] for key in ("run", "way", "series", "threads", "steps")}
        | {"obs_per_s": window_rates(r["series"], r["tick_seconds"])}
        for r in side
        if r["ticks"] >= 2 * WINDOW
    ]
    new_latency = compared["runs"]["new defaults"]["latency"]["observe_and_forecast"]
    biggest = max(r["series"] for r in ratios)
    best = {
        "training at 10,000 series: new defaults / old main, same run": max(
            r["new_obs_per_s"] for r in ratios if (r["way"], r["series"]) == ("training", biggest)
        )
        / max(r["old_best_obs_per_s"] for r in ratios if (r["way"], r["series"]) == ("training", biggest)),
        "single series observe + forecast(12), median ms": new_latency["median_ms"],
        "single series observe + forecast(12), p99 ms": new_latency["p99_ms"],
        "training obs/s at 10,000 series": fastest("training", biggest),
        "forward-only obs/s at 10,000 series": fastest("forward-only", largest),
        "forward-only obs/s at 10,000 series, the network-only config": fastest(NETWORK_FORWARD, largest),
        "library / naive at 100 series": fastest("training", middle) / fastest("naive", middle),
    }
    targets = [
        {
            "target": name,
            "goal": goal,
            "measured": best[name],
            "met": best[name] <= goal if at_most else best[name] >= goal,
        }
        for name, (goal, at_most) in TARGETS.items()
    ]
    payload = {
        "benchmark": "throughput",
        "smoke": smoke,
        "driver_gomp_spincount": os.environ.get(openmp.VARIABLE),  # the wait of this process's own measurements
        "driver_malloc_thresholds_set": allocator.thresholds_set(),  # and its malloc's (set only where asked)
        "machine": info,
        "config_training": TRAINING.to_dict(),
        "config_forward_only": FORWARD_ONLY.to_dict(),
        "config_forward_only_network": FORWARD_ONLY_NETWORK.to_dict(),
        "baseline": {k: v for k, v in compared.items() if k != "rows"},
        "side_by_side_rows": side,
        "window_ticks": WINDOW,
        "windows": windows,
        "forward_only_note": "no switch in the library: k1 = 100,000 > stream length and warmup_updates = 0",
        "forward_only_sizes": {n: {"warmup": w, "ticks": t} for n, (w, t) in forward_sizes.items()},
        "rows": rows,
        "ratios": ratios,
        "targets": targets,
        "memory": memory,
        "profiles": profiles,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    markdown = render(payload)
    report.write(args.out, "throughput", payload, markdown)
    print(markdown)
    return payload


if __name__ == "__main__":
    main()
