"""Feeding one long series from a CSV: ``tbptt-online feed`` against a real server, beside the library alone.

Issue 11 found 66 obs/s feeding a 2,000-row single-series CSV. Every row of one series
is a tick of the model (its k-th value in a batch goes to tick k), so a batch of 500
rows of one series is 500 ticks, each a forward pass of one row (and an update every
``k1``): the per-tick cost of the library is the ceiling. This script measures both,
with the service's default model and every other setting the service's default:

1. the library alone: ``Forecaster.observe_many`` over the same values, ``batch`` at a time;
2. ``python -m tbptt_service.cli feed FILE --series s --time-column t --value-column v`` (the
   CLI a user runs) against ``python -m tbptt_service.cli serve`` on 127.0.0.1, a free port and a
   temporary state directory.

    python -m benchmarks.feed_one_series                  # 2,000 rows, batches of 500
    python -m benchmarks.feed_one_series --smoke --out /tmp/feed
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import torch

from benchmarks import report
from benchmarks.server_process import ServerProcess, free_port, serve_command, server_env
from tbptt_online import Forecaster, ForecasterConfig

FULL_ROWS, SMOKE_ROWS = 2_000, 60
GRACEFUL_EXIT = (0, -15)  # uvicorn re-raises the SIGTERM it handled, once shut down


def series_values(rows: int, seed: int = 0) -> list[float]:
    """An hourly series with a daily cycle and noise (what the README's tour feeds).

    >>> len(series_values(48)), round(series_values(48)[6], 3)
    (48, 58.179)
    """
    noise = random.Random(seed)
    return [round(50.0 + 8.0 * math.sin(2 * math.pi * t / 24) + noise.gauss(0.0, 1.0), 3) for t in range(rows)]


def write_csv(path: Path, values: list[float]) -> None:
    t0 = 1_700_000_000
    path.write_text("t,v\n" + "".join(f"{t0 + 3600 * i},{v}\n" for i, v in enumerate(values)))


def measure_library(values: list[float], batch: int) -> dict[str, Any]:
    forecaster = Forecaster(ForecasterConfig())
    started, cpu_started = time.perf_counter(), time.process_time()
    for first in range(0, len(values), batch):
        forecaster.observe_many([("s", v) for v in values[first : first + batch]])
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "observations_per_s": len(values) / seconds,
        "observations_per_cpu_s": len(values) / cpu,
        "updates": forecaster.engine.updates,
    }


def measure_feed(csv: Path, batch: int, workdir: Path) -> dict[str, Any]:
    port = free_port()
    env = server_env(port, workdir / "state", TBPTT_LOG_LEVEL="warning")
    command = serve_command()
    with ServerProcess(command, env, port, workdir / "server.log") as server:
        server.wait_ready()
        feed = [sys.executable, "-m", "tbptt_service.cli", "feed", str(csv), "--series", "s", "--time-column", "t"]
        feed += ["--value-column", "v", "--batch-size", str(batch), "--no-progress", "--url", server.url]
        cpu_before, started = server.cpu_seconds(), time.perf_counter()
        done = subprocess.run(feed, capture_output=True, text=True, timeout=3600, check=False)
        seconds = time.perf_counter() - started
        cpu_after = server.cpu_seconds()
        if done.returncode != 0:
            raise RuntimeError(f"the feed failed ({done.returncode}):\n{done.stderr[-3000:]}\n{server.log_tail()}")
        held = httpx.get(f"{server.url}/v1/models/default/series/s", timeout=30.0).json()["count"]
    if server.exit_code not in GRACEFUL_EXIT:
        raise RuntimeError(f"the server exited with {server.exit_code}:\n{server.log_tail()}")
    return {
        "seconds": seconds,
        "observations_per_s": held / seconds,
        "held": held,
        "server_cpu_seconds": None if cpu_before is None else cpu_after - cpu_before,
        "observations_per_server_cpu_s": None if cpu_before is None else held / (cpu_after - cpu_before),
        "printed": done.stdout.strip().splitlines()[-3:],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    made = report.parser(__doc__.splitlines()[0])
    made.add_argument("--rows", type=int, default=None, help=f"rows of the series (default {FULL_ROWS:,})")
    made.add_argument("--batch-size", type=int, default=500, help="rows per request, and per observe_many")
    args = made.parse_args(argv)
    rows = args.rows or (SMOKE_ROWS if args.smoke else FULL_ROWS)
    info = report.machine("benchmarks.feed_one_series", argv)
    torch.set_num_threads(1)  # as the service computes (TBPTT_TORCH_THREADS, default 1)
    values = series_values(rows)
    with tempfile.TemporaryDirectory(prefix="feed-") as workdir:
        csv = Path(workdir) / "one_series.csv"
        write_csv(csv, values)
        library = measure_library(values, args.batch_size)
        feed = measure_feed(csv, args.batch_size, Path(workdir))
    if feed["held"] != rows:
        raise RuntimeError(f"the server holds {feed['held']} of the {rows} rows fed")
    payload = {
        "benchmark": "feed_one_series",
        "smoke": args.smoke,
        "machine": info,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "rows": rows,
        "batch_size": args.batch_size,
        "config": ForecasterConfig().to_dict(),
        "library": library,
        "feed": feed,
    }
    markdown = render(payload)
    report.write(args.out, "feed_one_series", payload, markdown)
    print(markdown)
    return payload


def render(payload: dict[str, Any]) -> str:
    library, feed = payload["library"], payload["feed"]
    rows = [
        ["library: Forecaster.observe_many", library["observations_per_s"], library["seconds"],
         library["cpu_seconds"], library["observations_per_cpu_s"]],
        ["tbptt-online feed -> serve (HTTP)", feed["observations_per_s"], feed["seconds"],
         feed["server_cpu_seconds"], feed["observations_per_server_cpu_s"]],
    ]  # fmt: skip
    return "\n".join(
        [
            "## Feeding one long series",
            "",
            report.machine_line(payload["machine"]) + f"; load average at end {payload['load_average_at_end'][0]}",
            "",
            f"{payload['rows']:,} rows of one hourly series (daily cycle + noise), {payload['batch_size']} rows per "
            "request and per observe_many, the default model (ForecasterConfig()).",
            "",
            "CPU seconds: the library's process, or the server's (the feeding client's are apart); obs per "
            "CPU second reads the cost apart from what else the machine was doing.",
            "",
            report.markdown_table(["path", "obs/s", "wall s", "CPU s", "obs per CPU s"], rows),
        ]
    )


if __name__ == "__main__":
    main()
