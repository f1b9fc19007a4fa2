"""Feeding many series from a CSV sorted by series: ``feed`` merged in time order, beside ``--in-file-order``.

A new user (session 56) backfilled 100 meters' 720 hourly values and found the rows sorted by
meter went in 15 times slower than sorted by time: the server steps a request's k-th values of
its series together as one tick, so 500 rows of one series are 500 ticks where 500 rows of 100
series are 5. Since session 57 ``feed`` merges the rows across series in time order. This script
writes the same rows sorted by time and sorted by series and feeds each, with
``python -m tbptt_service.cli feed`` (the CLI a user runs), into its own model of one server
(``python -m tbptt_service.cli serve`` on 127.0.0.1, a free port, a temporary state directory,
the default model), both in the default order and with ``--in-file-order``.

    python -m benchmarks.feed_order                  # 100 series x 720 hourly values
    python -m benchmarks.feed_order --smoke --out /tmp/feed_order
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

from benchmarks import report
from benchmarks.server_process import ServerProcess, free_port, serve_command, server_env
from tbptt_online.client import Client

FULL, SMOKE = (100, 720), (4, 30)  # (series, values of each)
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
GRACEFUL_EXIT = (0, -15)  # uvicorn re-raises the SIGTERM it handled, once shut down
RUNS = (("time", False), ("series", False), ("series", True), ("time", True))  # (file sorted by, --in-file-order)


def meter_rows(series: int, values: int, seed: int = 0) -> list[tuple[int, str, float]]:
    """(unix seconds, meter, kWh) of hourly meters: each its own level, a daily cycle, noise.

    >>> meter_rows(2, 3)[:2]
    [(1767225600, 'm000', 83.93), (1767229200, 'm000', 87.15)]
    """
    noise = random.Random(seed)
    rows = []
    for m in range(series):
        level = 50.0 + 40.0 * noise.random()
        for t in range(values):
            value = level * (1.0 + 0.3 * math.sin(2 * math.pi * t / 24)) + noise.gauss(0.0, 3.0)
            rows.append((T0 + 3600 * t, f"m{m:03d}", round(value, 2)))
    return rows


def write_csv(path: Path, rows: list[tuple[int, str, float]], by: str) -> None:
    ordered = sorted(rows, key=(lambda r: (r[1], r[0])) if by == "series" else (lambda r: (r[0], r[1])))
    path.write_text("timestamp,meter,kwh\n" + "".join(f"{t},{m},{v}\n" for t, m, v in ordered))


def feed(server: ServerProcess, csv: Path, model: str, file_order: bool) -> dict[str, Any]:
    with Client(server.url) as client:
        client.create_model(model)  # the default model's configuration
    command = [sys.executable, "-m", "tbptt_service.cli", "feed", str(csv), "--model", model]
    command += ["--series-column", "meter", "--time-column", "timestamp", "--value-column", "kwh"]
    command += ["--no-progress", "--url", server.url] + (["--in-file-order"] if file_order else [])
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the feed failed ({done.returncode}):\n{done.stderr[-3000:]}\n{server.log_tail()}")
    with Client(server.url) as client:
        held = client.get_model(model).observations
    mean = done.stdout.strip().splitlines()[-1].split()  # the report's last row: "all (geometric mean) N - - R"
    return {"seconds": seconds, "held": held, "observations_per_s": held / seconds, "mae_over_naive": float(mean[-1])}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    made = report.parser(__doc__.splitlines()[0])
    args = made.parse_args(argv)
    series, values = SMOKE if args.smoke else FULL
    info = report.machine("benchmarks.feed_order", argv)
    rows = meter_rows(series, values)
    runs = []
    with tempfile.TemporaryDirectory(prefix="feed-order-") as workdir:
        port = free_port()
        env = server_env(port, f"{workdir}/state", TBPTT_LOG_LEVEL="warning")
        for by in ("time", "series"):
            write_csv(Path(workdir) / f"by_{by}.csv", rows, by)
        with ServerProcess(serve_command(), env, port, Path(workdir) / "server.log") as server:
            server.wait_ready()
            for by, file_order in RUNS:
                model = f"by-{by}-{'file' if file_order else 'merged'}"
                measured = feed(server, Path(workdir) / f"by_{by}.csv", model, file_order)
                runs.append({"sorted_by": by, "in_file_order": file_order, **measured})
        if server.exit_code not in GRACEFUL_EXIT:
            raise RuntimeError(f"the server exited with {server.exit_code}:\n{server.log_tail()}")
    for run in runs:
        if run["held"] != len(rows):
            raise RuntimeError(f"a model holds {run['held']} of the {len(rows)} rows fed: {run}")
    payload = {
        "benchmark": "feed_order",
        "smoke": args.smoke,
        "machine": info,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "series": series,
        "values_per_series": values,
        "runs": runs,
    }
    markdown = render(payload)
    report.write(args.out, "feed_order", payload, markdown)
    print(markdown)
    return payload


def render(payload: dict[str, Any]) -> str:
    rows = [
        [f"by {run['sorted_by']}", "--in-file-order" if run["in_file_order"] else "merged by time (default)",
         run["seconds"], run["observations_per_s"], run["mae_over_naive"]]
        for run in payload["runs"]
    ]  # fmt: skip
    return "\n".join(
        [
            "## Feeding many series: the file's order",
            "",
            report.machine_line(payload["machine"]) + f"; load average at end {payload['load_average_at_end'][0]}",
            "",
            f"{payload['series']} hourly meters x {payload['values_per_series']} values, one CSV sorted by time "
            "and one sorted by meter, each fed into its own model (the default one) of one server, feed's "
            "default 500 rows a request; MAE/naive: the geometric mean over the meters that feed prints.",
            "",
            report.markdown_table(["file sorted", "feed's order", "wall s", "obs/s", "MAE/naive"], rows),
        ]
    )


if __name__ == "__main__":
    main()
