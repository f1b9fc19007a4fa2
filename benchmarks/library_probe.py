"""Training throughput and single-series latency of whichever ``tbptt_online`` is first on the path.

``benchmarks.throughput`` runs this file in subprocesses: with this checkout on
``PYTHONPATH`` (its defaults, and the old network-only config) and with an older commit's
library (the baseline), so all are measured by the same code, each in a fresh process. It
imports only the standard library, torch and ``tbptt_online`` (never ``benchmarks.*``): an
old library must run it. It prints one JSON object on its last line of output.

Throughput: every series gets one standard normal value per tick, fed as one
``observe_many`` call per tick; only that call is timed, each tick on its own, so the
ticks on which ``season_length="auto"`` looks for seasons can be told apart. The same
forecaster goes on from one thread setting to the next, then reads every result (one
thread). Latency: one series of a seasonal stream (period 24), one ``observe`` and one
``forecast(horizon)`` per step on one thread, each step timed.

The work is a list of phases (a size's warm-up, its timed ticks on each thread setting,
the latency's warm-up and its timed steps), each a number of units (ticks or steps).
Alone, the probe runs them all. With ``--lock-step`` it prints the phases as one JSON line
and then runs units when told: each line ``N`` on its input runs up to N units of the
current phase (never past its end) and is answered with one JSON line; at the end of its
input it prints the result; each of those lines starts with ``REPLY`` (anything else printed,
by a library too, is not a reply). ``benchmarks.lock_step`` steps the libraries' probes in
turn (each phase's ``turn`` units at a time), so that a slow spell of a busy machine falls on
all of them.

    PYTHONPATH=/path/to/checkout python benchmarks/library_probe.py --sizes 100:48:64
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import tbptt_online  # before torch, as a user's program would: the library may set libgomp's wait (its openmp.py)

# isort: split
import torch

from tbptt_online import Forecaster, ForecasterConfig

REPLY = "lock-step: "  # the start of each line of the lock-step protocol on the output


def malloc_thresholds() -> dict[str, Any]:
    """glibc malloc's thresholds as this process has them: set by the library (its ``allocator``,
    where it has one) or by the environment (None: glibc's own rule)."""
    try:
        from tbptt_online import allocator
    except ImportError:  # an older library
        set_here = False
    else:
        set_here = allocator.thresholds_set()
    names = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
    return {"set_by_library": set_here, **{name: os.environ.get(name) for name in names}}


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


@dataclasses.dataclass
class Phase:
    """``units`` calls of ``step(i)``, i = 0, 1, ...; then ``done()`` (which records what was timed).
    ``turn``: how many units a lock-step driver runs before the next library's turn."""

    name: str
    units: int
    turn: int
    step: Callable[[int], None]
    done: Callable[[], None]


def run_all(phases: list[Phase]) -> None:
    for phase in phases:
        for i in range(phase.units):
            phase.step(i)
        phase.done()


class Throughput:
    """One forecaster of ``n_series`` series: ``warmup`` untimed ticks (one thread), ``ticks`` timed
    ticks on 1 thread, as many on 2, then ``read_ticks`` with every result read (1 thread).
    ``rows`` gets one row per timed phase as it ends."""

    def __init__(self, config: ForecasterConfig, n_series: int, warmup: int, ticks: int, read_ticks: int) -> None:
        self.config, self.n_series, self.warmup = config, n_series, warmup
        self.timed = ((1, ticks, False), (2, ticks, False), (1, read_ticks, True))  # threads, ticks, read
        self.detecting = detection_steps(config)
        self.rows: list[dict[str, Any]] = []
        self._forecaster: Forecaster | None = None
        self._batches: list = []
        self._seconds: list[float] = []
        self._updates_before = 0

    @property
    def forecaster(self) -> Forecaster:
        if self._forecaster is None:  # the values are made before any timing, on the first unit
            self._batches = tick_values(self.n_series, self.warmup + sum(count for _, count, _ in self.timed))
            self._forecaster = Forecaster(self.config)
        return self._forecaster

    def phases(self) -> list[Phase]:
        # a turn: one tick at 10,000 series (0.1-0.3 s; an old main's update tick 0.6 s); at fewer
        # series the whole phase (short turns slow small ticks: after 50 ms asleep, one series'
        # next tick took 2.4 ms, not 0.6)
        big = self.n_series >= 1_000
        out = []
        if self.warmup:
            out.append(Phase(f"{self.n_series} series, warm-up", self.warmup, self.warmup, self._warm, lambda: None))
        first = self.warmup
        for threads, count, read in self.timed:
            if count == 0:
                continue
            name = f"{self.n_series} series, {threads} thread{'s' if threads > 1 else ''}" + (", read" if read else "")
            turn = 1 if big else count
            out.append(
                Phase(name, count, turn, self._ticker(first, threads, read), self._recorder(first, threads, read))
            )
            first += count
        return out

    def _warm(self, i: int) -> None:
        forecaster = self.forecaster
        if i == 0:  # (a phase runs in one process, unit after unit: set once, as each timed phase does)
            torch.set_num_threads(1)
        forecaster.observe_many(self._batches[i])

    def _ticker(self, first: int, threads: int, read: bool) -> Callable[[int], None]:
        def step(i: int) -> None:
            forecaster = self.forecaster
            if i == 0:
                torch.set_num_threads(threads)
                self._seconds, self._updates_before = [], forecaster.update_stats().updates
            start = time.perf_counter()
            results = forecaster.observe_many(self._batches[first + i])
            if read:
                list(results)
            self._seconds.append(time.perf_counter() - start)

        return step

    def _recorder(self, first: int, threads: int, read: bool) -> Callable[[], None]:
        def done() -> None:
            seconds, count = self._seconds, len(self._seconds)
            steps = range(first + 1, first + count + 1)  # every series is at the same step
            quiet = [s for s, step in zip(seconds, steps, strict=True) if not self.detecting(step, True)]
            self.rows.append(
                {
                    "way": "training, every result read" if read else "training",
                    "series": self.n_series,
                    "threads": threads,
                    "ticks": count,
                    "steps": [steps[0], steps[-1]],
                    "observations": self.n_series * count,
                    "seconds": round(sum(seconds), 4),
                    "obs_per_s": self.n_series * count / sum(seconds),
                    "updates": self.forecaster.update_stats().updates - self._updates_before,
                    "detection_steps": [step for step in steps if self.detecting(step, True)],
                    "detection_seconds": round(sum(seconds) - sum(quiet), 4),
                    "obs_per_s_without_detection": self.n_series * len(quiet) / sum(quiet) if quiet else None,
                    "tick_seconds": [round(s, 6) for s in seconds],  # each timed tick's, in step order
                }
            )

        return done


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


class Latency:
    """One ``observe`` + ``forecast(horizon)`` of one series per step, one thread: ``warmup`` untimed
    steps, then ``steps`` timed; ``result`` is set when the timed phase ends."""

    def __init__(self, config: ForecasterConfig, warmup: int, steps: int, horizon: int) -> None:
        if steps < 1:
            raise SystemExit(f"the latency needs at least one timed step, not {steps}")
        self.config, self.warmup, self.steps, self.horizon = config, warmup, steps, horizon
        self.detecting = detection_steps(config)
        self.short = getattr(getattr(tbptt_online, "hybrid", None), "SHORT_SEASON", 0)  # 0: an old library
        self.values = seasonal_values(warmup + steps)
        self.forecaster, self.name = Forecaster(config), "seasonal-24"
        self.both: list[float] = []
        self.observe: list[float] = []
        self.forecast: list[float] = []
        self.updated: list[bool] = []
        self.detected: list[bool] = []
        self.result: dict[str, Any] | None = None

    def phases(self) -> list[Phase]:
        out = []
        if self.warmup:
            out.append(Phase("latency, warm-up", self.warmup, self.warmup, self._warm, lambda: None))
        out.append(Phase("latency", self.steps, self.steps, self._step, self._done))  # one turn: as for few series
        return out

    def _warm(self, i: int) -> None:
        if i == 0:
            torch.set_num_threads(1)
        self.forecaster.observe(self.name, self.values[i])
        self.forecaster.forecast(self.name, horizon=self.horizon)

    def _step(self, i: int) -> None:
        forecaster, name = self.forecaster, self.name
        if i == 0:  # (after the warm-up's, or a throughput phase's of 2 threads)
            torch.set_num_threads(1)
        # (untimed) whether it is looked at on DETECT_UNSETTLED (its first season none or short, as
        # hybrid.detection_due asks); an old library's stats have no seasons; no stats before a value
        stats = forecaster.series_stats(name) if self.warmup + i > 0 else None
        unsettled = all(p <= self.short for p in getattr(stats, "seasons", [])[:1])
        start = time.perf_counter()
        result = forecaster.observe(name, self.values[self.warmup + i])
        middle = time.perf_counter()
        forecaster.forecast(name, horizon=self.horizon)
        end = time.perf_counter()
        self.both.append(end - start)
        self.observe.append(middle - start)
        self.forecast.append(end - middle)
        self.updated.append(result.updated)
        self.detected.append(self.detecting(result.step, unsettled))

    def _done(self) -> None:
        both, updated, detected = self.both, self.updated, self.detected
        self.result = {
            "warmup_steps": self.warmup,
            "horizon": self.horizon,
            "observe_and_forecast": summary_ms(both),
            "observe": summary_ms(self.observe),
            "forecast": summary_ms(self.forecast),
            "steps_with_an_update": summary_ms([s for s, u in zip(both, updated, strict=True) if u]),
            "steps_without_an_update": summary_ms([s for s, u in zip(both, updated, strict=True) if not u]),
            "detection_steps": [self.warmup + 1 + i for i, d in enumerate(detected) if d],
            "detection_step_ms": [round(1e3 * s, 3) for s, d in zip(both, detected, strict=True) if d],
        }


def latency(config: ForecasterConfig, warmup: int, steps: int, horizon: int) -> dict[str, Any]:
    """The result of one ``Latency``, its phases run one after another."""
    run = Latency(config, warmup, steps, horizon)
    run_all(run.phases())
    assert run.result is not None
    return run.result


def lock_step(phases: list[Phase], lines: Iterable[str], reply: Callable[[str], None]) -> None:
    """Each line ``N`` runs up to N units of the current phase (never past its end) and is answered
    with ``{"phase", "ran", "left"}``; a phase's ``done`` runs with its last unit. Raises if the
    lines end before the phases do."""
    index, unit = 0, 0
    for line in lines:
        if index == len(phases):
            raise SystemExit(f"asked to run {line.strip()!r} units after the last phase")
        phase, wanted = phases[index], int(line)
        if wanted < 1:
            raise SystemExit(f"asked to run {wanted} units: at least one")
        ran = min(wanted, phase.units - unit)
        for i in range(unit, unit + ran):
            phase.step(i)
        unit += ran
        left = phase.units - unit
        if left == 0:
            phase.done()
            index, unit = index + 1, 0
        reply(json.dumps({"phase": phase.name, "ran": ran, "left": left}))
    if index < len(phases):
        raise SystemExit(f"the input ended in phase {phases[index].name!r}")


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
    parser.add_argument("--lock-step", action="store_true", help="print the phases, then run units as told on stdin")
    args = parser.parse_args(argv)
    config = ForecasterConfig(**json.loads(args.config))
    started = time.perf_counter()
    runs = [
        Throughput(config, n, warmup, ticks, read_ticks(ticks) if args.read else 0) for n, warmup, ticks in args.sizes
    ]
    phases = [phase for run in runs for phase in run.phases()]
    single = None
    if args.latency:
        warmup, steps = map(int, args.latency.split(":"))
        single = Latency(config, warmup, steps, args.horizon)
        phases += single.phases()
    mark = REPLY if args.lock_step else ""
    if args.lock_step:
        plan = [{"name": p.name, "units": p.units, "turn": p.turn} for p in phases]
        print(mark + json.dumps({"phases": plan}), flush=True)
        lock_step(phases, sys.stdin, lambda line: print(mark + line, flush=True))
    else:
        run_all(phases)
    largest = max((n for n, _, _ in args.sizes), default=0)
    out = {
        "library": os.path.dirname(tbptt_online.__file__),
        "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"),  # libgomp's busy wait as it was loaded (None: its default)
        "malloc_thresholds": malloc_thresholds(),
        "python": sys.executable,
        "config": config.to_dict(),
        "rows": [row for run in runs for row in run.rows],
        "memory": memory(config, largest) if largest else None,
        "latency": single.result if single else None,
    }
    out["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(mark + json.dumps(out, allow_nan=False), flush=True)
    return out


if __name__ == "__main__":
    main()
