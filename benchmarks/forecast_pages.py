"""Every series' forecast of a model: one GET a series, beside ``GET .../forecasts`` pages.

A new user (session 56) read 300 hourly series' day-ahead forecasts with 300 GETs, 0.51 s a
round. Since session 57 ``GET /v1/models/{model}/forecasts`` answers a page of series (up to
1,000) in one request, computed in one batch. This script feeds hourly series (a daily cycle
and noise, each its own level) into the default model of ``python -m tbptt_service.cli serve``
(127.0.0.1, a free port, a temporary state directory), then times rounds of reading every
series' forecast: a GET per series (one after the other, as a dashboard's loop does), pages of
100 and pages of 1,000, with the Python client.

    python -m benchmarks.forecast_pages                  # 300 series x 504 hourly values, h = 24
    python -m benchmarks.forecast_pages --smoke --out /tmp/forecast_pages
"""

from __future__ import annotations

import math
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.server_process import ServerProcess, free_port, serve_command, server_env
from tbptt_online.client import Client

FULL, SMOKE = (300, 504, 5), (4, 30, 2)  # (series, values of each, rounds)
HORIZON = 24
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
GRACEFUL_EXIT = (0, -15)  # uvicorn re-raises the SIGTERM it handled, once shut down


def hour_rows(series: int, hour: int, seed: int = 0) -> list[tuple[str, float, int]]:
    """(series, value, unix seconds) of every series at ``hour``.

    >>> hour_rows(2, 0)
    [('s000', 72.55, 1767225600), ('s001', 62.68, 1767225600)]
    """
    noise = random.Random(seed * 1_000_003 + hour)
    levels = random.Random(seed)
    out = []
    for s in range(series):
        level = 20.0 + 60.0 * levels.random()
        value = level * (1.0 + 0.3 * math.sin(2 * math.pi * hour / 24)) + noise.gauss(0.0, 2.0)
        out.append((f"s{s:03d}", round(value, 2), T0 + 3600 * hour))
    return out


def read_rounds(client: Client, names: list[str], rounds: int) -> dict[str, list[float]]:
    """Seconds per round of reading every series' forecast, by each way."""
    ways = {
        "a GET per series": lambda: [client.forecast("default", n, HORIZON) for n in names],
        "pages of 100": lambda: list(client.iter_forecasts("default", HORIZON, page_size=100)),
        "pages of 1,000": lambda: list(client.iter_forecasts("default", HORIZON, page_size=1000)),
    }
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(rounds):
        for way, read in ways.items():  # alternated, round by round: a busy moment falls on each alike
            started = time.perf_counter()
            forecasts = read()
            seconds[way].append(time.perf_counter() - started)
            if [f.series for f in forecasts] != names:
                raise RuntimeError(f"{way}: read {len(forecasts)} forecasts of {len(names)} series")
    return seconds


def main(argv: list[str] | None = None) -> dict[str, Any]:
    made = report.parser(__doc__.splitlines()[0])
    args = made.parse_args(argv)
    series, values, rounds = SMOKE if args.smoke else FULL
    info = report.machine("benchmarks.forecast_pages", argv)
    with tempfile.TemporaryDirectory(prefix="forecast-pages-") as workdir:
        port = free_port()
        env = server_env(port, f"{workdir}/state", TBPTT_LOG_LEVEL="warning")
        with ServerProcess(serve_command(), env, port, Path(workdir) / "server.log") as server:
            server.wait_ready()
            with Client(server.url) as client:
                for hour in range(values):
                    client.observe_many("default", hour_rows(series, hour))
                names = sorted(f"s{s:03d}" for s in range(series))
                seconds = read_rounds(client, names, rounds)
        if server.exit_code not in GRACEFUL_EXIT:
            raise RuntimeError(f"the server exited with {server.exit_code}:\n{server.log_tail()}")
    payload = {
        "benchmark": "forecast_pages",
        "smoke": args.smoke,
        "machine": info,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "series": series,
        "values_per_series": values,
        "horizon": HORIZON,
        "rounds": rounds,
        "seconds": seconds,
    }
    markdown = render(payload)
    report.write(args.out, "forecast_pages", payload, markdown)
    print(markdown)
    return payload


def render(payload: dict[str, Any]) -> str:
    rows = [
        [way, statistics.median(times), min(times), max(times), payload["series"] / statistics.median(times)]
        for way, times in payload["seconds"].items()
    ]
    return "\n".join(
        [
            "## Every series' forecast: a GET each, or pages",
            "",
            report.machine_line(payload["machine"]) + f"; load average at end {payload['load_average_at_end'][0]}",
            "",
            f"{payload['series']} hourly series x {payload['values_per_series']} values in the default model; each "
            f"round reads every series' forecast {payload['horizon']} steps ahead, each way in turn, "
            f"{payload['rounds']} rounds (the Python client, one connection).",
            "",
            report.markdown_table(["way", "median s a round", "min s", "max s", "forecasts/s"], rows),
        ]
    )


if __name__ == "__main__":
    main()
