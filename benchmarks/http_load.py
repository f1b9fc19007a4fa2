"""HTTP: the service under load from a second process, beside a bare FastAPI app as the ceiling.

The script starts ``python -m tbptt_service.cli serve`` (uvicorn, 127.0.0.1, a free port, a
temporary state directory; a model GRU hidden 64 (the default until session 24), k1 = 8, k2 = 32, Adam,
stateful, training on; the memory budget raised to hold the run's series (``BUDGET``); every other
setting the service's default, or ``--env``) and
drives it with ``benchmarks.load_client`` in a child process: closed-loop keep-alive
connections, each bounded by time and count.

1. batch ingest: ``batch``-observation POSTs, each connection its own slice of series
   (after a fill of ``fill_ticks`` values per series, so that every update replays a full
   k2 window, or as many as ``fill_s`` allows: the count reached is reported);
2. single-observation POSTs from 64 connections, while
3. 4 more connections GET 12-step forecasts (also measured alone, before);
4. mixed load: single-observation POSTs from 32 connections beside connections streaming
   batches that hold 10 values per series (each such batch is 10 ticks of the model; the
   service applies it ``TBPTT_LONG_BATCH_CHUNK_TICKS`` ticks at a time and the short requests
   between two chunks, ``service/host/chunked_run.py``), to other series (the same single
   POSTs are also measured alone, before).

Then ``benchmarks.bare_app`` (routes that do nothing, served by uvicorn the same way)
gets the same load. The model's observation count must equal the observations the
client saw acknowledged, or the run fails.

    python -m benchmarks.http_load                 # full size, about 2 minutes
    python -m benchmarks.http_load --smoke --out /tmp/bench
    python -m benchmarks.http_load --env TBPTT_LOG_SYNC=interval
    python -m benchmarks.http_load --part single --out /tmp/h  # only the single POSTs and forecasts, no bare app
    python -m benchmarks.http_load --part mixed --out /tmp/h   # only the mixed load (4.), no bare app

``--part single`` (for a quicker look, about 30 s): the fill covers the single POSTs'
series only, then the forecasts alone and the single POSTs + forecasts; no batch
ingest, no bare app, so the batch-ingest rows and the targets on them stay empty.
``--part mixed`` (about 40 s): a fill of the single POSTs' and the long batches' series,
then the single POSTs alone and the mixed load; no bare app. A part writes its own files
(``http_load_single.*``, ``http_load_mixed.*``), not the whole run's ``http_load.*``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any
from unittest import mock

import httpx

from benchmarks import report, server_process
from benchmarks.load_client import Phase, Workload
from benchmarks.server_process import ServerProcess, free_port, serve_command
from tbptt_service.settings import Settings

MODEL = {"cell": "gru", "hidden_size": 64, "k1": 8, "k2": 32, "optimizer": "adam", "mode": "stateful"}
# The memory budget raised to hold the run's 10,000 series of MODEL: the default max_model_bytes (2 GiB)
# holds 8,192 of them by the library's estimate since the hybrid's per-series state grew (about 172 KB a
# series with the store's doubling), and refused the batches adding the rest (409: a fifth of the fill's
# and a third of the batch ingest's POSTs in a run on 2026-12-03). The load measured is the same either way.
BUDGET = {"TBPTT_MAX_MODEL_BYTES": str(8 * 2**30), "TBPTT_MAX_PROCESS_BYTES": str(16 * 2**30)}
HORIZON = 12
REPORTED_SETTINGS = (
    "durable",
    "log_sync",
    "log_sync_interval_ms",
    "microbatch_max_wait_ms",
    "microbatch_max_observations",
    "max_batch_observations",
    "checkpoint_interval_s",
    "checkpoint_every_observations",
    "max_series_per_model",
    "max_model_bytes",
    "max_process_bytes",
)


@dataclass(frozen=True)
class Size:
    series: int  # series fed by the batch ingest (names series-0 ...)
    batch: int  # observations per batch POST
    batch_connections: int
    fill_ticks: int  # values per series before the batch ingest is measured
    fill_s: float  # ... or as many as this time allows
    batch_s: float
    single_connections: int
    single_series: int  # series the single POSTs and the forecasts go to (already filled)
    forecast_connections: int
    forecast_alone_s: float
    mixed_s: float
    warmup_s: float
    mixed_single_connections: int  # the mixed load (4.): single POSTs over the single_series ...
    mixed_batch_connections: int  # ... beside these connections' long batches
    mixed_batch: int  # observations per long batch
    mixed_values_per_series: int  # values of each series in one long batch (that many ticks)
    mixed_series: int  # series the long batches go to, after the single_series (already filled)


FULL = Size(10_000, 1_000, 10, 40, 60.0, 10.0, 64, 1_000, 4, 5.0, 10.0, 2.0, 32, 2, 1_000, 10, 1_000)
SMOKE = Size(200, 100, 2, 3, 60.0, 1.0, 64, 50, 2, 0.5, 1.0, 0.3, 32, 1, 100, 10, 100)
GRACEFUL_EXIT = (0, -signal.SIGTERM)  # uvicorn re-raises the SIGTERM it handled, once shut down
MAX_REQUESTS = 1_000_000  # the count bound; time ends every measured phase long before it

MIXED = "single POST + batches of 10 values per series"
MIXED_ALONE = "single POST alone, as many clients as in the mixed load"
TARGETS = [  # (name, phase, workload, metric, goal, at most?)
    ("batch ingest obs/s, training on", "batch ingest", "batch", "observations_per_s", 50_000, False),
    ("single POST req/s, 64 clients", "single POST + forecast GET", "single", "requests_per_s", 2_500, False),
    ("single POST p99 ms", "single POST + forecast GET", "single", "p99", 50, True),
    ("forecast GET p99 ms during single POSTs", "single POST + forecast GET", "forecast", "p99", 20, True),
    ("single POST p99 ms beside batches of 10 values per series", MIXED, "single", "p99", 100, True),
]


PARTS = ("all", "single", "mixed")


def phases(size: Size, part: str = "all") -> dict[str, Phase]:
    """The service's phases, in order; ``part="single"``: a fill of the single POSTs' series only, no batch ingest;
    ``part="mixed"``: a fill of the single POSTs' and the long batches' series, then the mixed load."""
    if part != "all":
        series = size.single_series + (size.mixed_series if part == "mixed" else 0)
        size = replace(size, series=series, batch=min(size.batch, series), batch_connections=1)
    batch = Workload("batch", "post_batch", size.batch_connections, size.series, batch=size.batch)
    single = Workload("single", "post_single", size.single_connections, size.single_series)
    forecast = Workload("forecast", "get_forecast", size.forecast_connections, size.single_series, horizon=HORIZON)
    mixed_single = replace(single, connections=size.mixed_single_connections)
    long_batch = Workload(
        "batch",
        "post_batch",
        size.mixed_batch_connections,
        size.mixed_series,
        batch=size.mixed_batch,
        values_per_series=size.mixed_values_per_series,
        first_series=size.single_series,
    )
    fill_requests = size.fill_ticks * max(1, size.series // size.batch // size.batch_connections)
    chosen = {
        "fill": Phase([batch], 0.0, size.fill_s, fill_requests),  # fill_ticks values per series, or fill_s
        "batch ingest": Phase([batch], size.warmup_s, size.batch_s, MAX_REQUESTS),
        "forecast GET alone": Phase([forecast], size.warmup_s, size.forecast_alone_s, MAX_REQUESTS),
        "single POST + forecast GET": Phase([single, forecast], size.warmup_s, size.mixed_s, MAX_REQUESTS),
        MIXED_ALONE: Phase([mixed_single], size.warmup_s, size.mixed_s, MAX_REQUESTS),
        MIXED: Phase([mixed_single, long_batch], size.warmup_s, size.mixed_s, MAX_REQUESTS),
    }
    if part == "single":
        del chosen["batch ingest"], chosen[MIXED_ALONE], chosen[MIXED]
    if part == "mixed":
        chosen = {name: chosen[name] for name in ("fill", MIXED_ALONE, MIXED)}
    return chosen


def run_load(server: ServerProcess, name: str, phase: Phase) -> dict[str, Any]:
    """One phase from a child process; the client's summary plus the server's CPU use."""
    plan = {"host": "127.0.0.1", "port": server.port, "phase": asdict(phase)}
    cpu_before, started = server.cpu_seconds(), time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.load_client"],
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        timeout=phase.warmup_s + phase.measure_s + phase.request_timeout_s + 60.0,
        check=False,
    )
    wall, cpu_after = time.perf_counter() - started, server.cpu_seconds()
    if done.returncode != 0:
        raise RuntimeError(f"the load client failed in phase {name!r}:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["phase"] = name
    result["server_cpu_cores_busy"] = None if cpu_before is None else (cpu_after - cpu_before) / wall
    return result


def server_env(port: int, state_dir: Path, overrides: dict[str, str]) -> dict[str, str]:
    settings = {"TBPTT_DEFAULT_MODEL": json.dumps(MODEL), "TBPTT_LOG_LEVEL": "warning", **BUDGET, **overrides}
    return server_process.server_env(port, state_dir, **settings)


def effective_settings(env: dict[str, str]) -> dict[str, Any]:
    """The service's settings as the server process reads them from ``env``."""
    with mock.patch.dict(os.environ, env, clear=True):
        settings = Settings()
    return {key: getattr(settings, key) for key in REPORTED_SETTINGS}


def measure_service(size: Size, overrides: dict[str, str], workdir: Path, part: str = "all") -> dict[str, Any]:
    port = free_port()
    env = server_env(port, workdir / "state", overrides)
    command = serve_command()
    with ServerProcess(command, env, port, workdir / "service.log") as server:
        server.wait_ready()
        results = [run_load(server, name, phase) for name, phase in phases(size, part).items()]
        info = httpx.get(f"{server.url}/v1/models/default", timeout=30.0).json()
    acknowledged = sum(w["acknowledged_observations"] for r in results for w in r["workloads"].values())
    if server.exit_code not in GRACEFUL_EXIT or info["observations"] != acknowledged:
        raise RuntimeError(
            f"exit code {server.exit_code}; the model holds {info['observations']} observations, the client saw "
            f"{acknowledged} acknowledged:\n{server.log_tail()}"
        )
    fill = results[0]["workloads"]["batch"]["acknowledged_observations"]
    filled = {"all": size.series, "single": size.single_series, "mixed": size.single_series + size.mixed_series}
    return {
        "fill_values_per_series": fill / filled[part],
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in effective_settings(env).items()},
        "env_overrides": overrides,
        "phases": results,
        "model_after": info,
        "acknowledged_observations": acknowledged,
        "exit_code": server.exit_code,
        "stop_seconds": server.stop_seconds,
    }


def measure_bare(size: Size, workdir: Path) -> dict[str, Any]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TBPTT_")}
    command = [sys.executable, "-m", "benchmarks.bare_app", "--port", str(port)]
    chosen = {k: v for k, v in phases(size).items() if k in ("batch ingest", "single POST + forecast GET", MIXED)}
    with ServerProcess(command, env, port, workdir / "bare.log") as server:
        server.wait_ready()
        results = [run_load(server, name, phase) for name, phase in chosen.items()]
    if server.exit_code not in GRACEFUL_EXIT:
        raise RuntimeError(f"the bare app exited with {server.exit_code}:\n{server.log_tail()}")
    return {"phases": results, "exit_code": server.exit_code}


def metric(run: dict[str, Any], phase: str, workload: str, name: str) -> float | None:
    found = next((r for r in run["phases"] if r["phase"] == phase), None)
    if found is None or workload not in found["workloads"]:
        return None
    w = found["workloads"][workload]
    return w["latency_ms"][name] if name.startswith("p") else w[name]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    made = report.parser(__doc__.splitlines()[0])
    made.add_argument("--env", action="append", default=[], metavar="TBPTT_X=V", help="a service setting")
    made.add_argument("--part", choices=PARTS, default="all", help="single: the single POSTs and forecasts only")
    args = made.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.env)
    info = report.machine("benchmarks.http_load", argv)
    size = SMOKE if args.smoke else FULL
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="http-load-") as workdir:
        service = measure_service(size, overrides, Path(workdir), args.part)
        bare = measure_bare(size, Path(workdir)) if args.part == "all" else {"phases": [], "exit_code": None}
    targets = []
    for name, phase, workload, key, goal, at_most in TARGETS:
        measured = metric(service, phase, workload, key)
        met = measured is not None and (measured <= goal if at_most else measured >= goal)
        targets.append({"target": name, "goal": goal, "at_most": at_most, "measured": measured, "met": met})
    payload = {
        "benchmark": "http_load",
        "smoke": args.smoke,
        "part": args.part,
        "machine": info,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "model": MODEL,
        "size": asdict(size),
        "client": "benchmarks.load_client: one child process, one asyncio loop, hand-written HTTP/1.1 keep-alive "
        "connections, closed loop (one request in flight per connection)",
        "service": service,
        "bare": bare,
        "targets": targets,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    markdown = render(payload)
    report.write(args.out, "http_load" if args.part == "all" else f"http_load_{args.part}", payload, markdown)
    print(markdown)
    return payload


def render(payload: dict[str, Any]) -> str:
    service, bare, size = payload["service"], payload["bare"], payload["size"]
    goals = {(t["target"]): t for t in payload["targets"]}
    batch, mixed = "batch ingest", "single POST + forecast GET"

    def row(label: str, phase: str, workload: str, key: str, target: str | None = None) -> list[Any]:
        t = goals.get(target) if target else None
        goal = None if t is None else ("<= " if t["at_most"] else ">= ") + f"{t['goal']:,}"
        met = None if t is None else ("yes" if t["met"] else "no")
        return [label, metric(service, phase, workload, key), metric(bare, phase, workload, key), goal, met]

    headline = [
        row("batch ingest obs/s (training on)", batch, "batch", "observations_per_s", TARGETS[0][0]),
        row("batch POST p50 ms", batch, "batch", "p50"),
        row("batch POST p99 ms", batch, "batch", "p99"),
        row("single POST req/s", mixed, "single", "requests_per_s", TARGETS[1][0]),
        row("single POST p50 ms", mixed, "single", "p50"),
        row("single POST p99 ms", mixed, "single", "p99", TARGETS[2][0]),
        row("forecast GET req/s, during single POSTs", mixed, "forecast", "requests_per_s"),
        row("forecast GET p50 ms, during single POSTs", mixed, "forecast", "p50"),
        row("forecast GET p99 ms, during single POSTs", mixed, "forecast", "p99", TARGETS[3][0]),
        row("forecast GET p50 ms, alone", "forecast GET alone", "forecast", "p50"),
        row("forecast GET p99 ms, alone", "forecast GET alone", "forecast", "p99"),
        row("fill obs/s (first values of fresh series)", "fill", "batch", "observations_per_s"),
        row(f"mixed: single POST req/s, {size['mixed_single_connections']} clients", MIXED, "single", "requests_per_s"),
        row("mixed: single POST p50 ms", MIXED, "single", "p50"),
        row("mixed: single POST p99 ms", MIXED, "single", "p99", TARGETS[4][0]),
        row("the same single POSTs alone: req/s", MIXED_ALONE, "single", "requests_per_s"),
        row("the same single POSTs alone: p50 ms", MIXED_ALONE, "single", "p50"),
        row("the same single POSTs alone: p99 ms", MIXED_ALONE, "single", "p99"),
        row("mixed: long batches obs/s", MIXED, "batch", "observations_per_s"),
        row("mixed: long batch POST p99 ms", MIXED, "batch", "p99"),
    ]
    per_phase = []
    for server, run in (("service", service), ("bare", bare)):
        for r in run["phases"]:
            for name, w in r["workloads"].items():
                errors = sum(n for code, n in w["statuses"].items() if not code.startswith("2")) + w["failure_count"]
                per_phase.append(
                    [server, r["phase"], name, w["requests_total"], errors, r["server_cpu_cores_busy"],
                     r["client_cpu_cores_busy"], r["wall_s"]]
                )  # fmt: skip
    settings = ", ".join(f"{k}={v}" for k, v in service["settings"].items())
    parts = [
        "## HTTP under load (service against a bare FastAPI app)",
        "",
        report.machine_line(payload["machine"]) + f"; load average at end {payload['load_average_at_end'][0]}",
        "",
        f"Service: `python -m tbptt_service.cli serve` (uvicorn, 127.0.0.1), model {json.dumps(payload['model'])}, "
        f"settings: {settings}; environment overrides: {service['env_overrides'] or 'none'}. "
        "Bare: `python -m benchmarks.bare_app` (routes that do nothing, uvicorn the same way). "
        f"Client: {payload['client']}.",
        "",
        f"Batch ingest: {size['batch_connections']} connections, {size['batch']:,} observations per POST over "
        f"{size['series']:,} series (after a fill of {service['fill_values_per_series']:.1f} values per series), "
        f"{size['batch_s']} s measured. Single POSTs: {size['single_connections']} connections over "
        f"{size['single_series']:,} series, with {size['forecast_connections']} connections of forecast GETs "
        f"(horizon {HORIZON}) at the same time, {size['mixed_s']} s measured after {size['warmup_s']} s warm-up. "
        f"Mixed load: {size['mixed_single_connections']} connections of single POSTs over the same "
        f"{size['single_series']:,} series beside {size['mixed_batch_connections']} connections posting "
        f"{size['mixed_batch']:,} observations at a time, {size['mixed_values_per_series']} values of each of "
        f"{size['mixed_batch'] // size['mixed_values_per_series']:,} series (so {size['mixed_values_per_series']} "
        f"ticks), over {size['mixed_series']:,} other series, {size['mixed_s']} s measured; and before it the "
        "same single POSTs alone. "
        "Latencies are the client's, from writing the request to reading the last byte of the response.",
        "",
        report.markdown_table(["measurement", "service", "bare FastAPI (ceiling)", "target", "met"], headline),
        "",
        report.markdown_table(
            ["server", "phase", "workload", "requests", "errors", "server CPU (cores)", "client CPU (cores)", "wall s"],
            per_phase,
        ),
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    main()
