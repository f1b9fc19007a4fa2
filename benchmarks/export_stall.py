"""How long other clients wait while a large model's checkpoint is exported (``GET /v1/models/{model}/checkpoint``).

A real server (``tbptt-online serve``, defaults, its state in a temporary folder) holds two models of
``ForecasterConfig()``: ``big``, filled with SERIES series of three values each, and ``other``. A client
thread sends single values to ``other`` every 10 ms; their latencies are taken for a second before the
export and while it runs. Until session 47 the export held the event loop (a hostile test: 2.7 s at most
with 15,000 series, 894 MB): its header was prepended to the payload by a copy of the whole under the GIL
and the body, sent whole, was copied into the transport's buffer.

    python -m benchmarks.export_stall [--smoke] [--out DIR]
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks import report, server_process
from benchmarks.http_load import BUDGET, GRACEFUL_EXIT
from benchmarks.server_process import ServerProcess, free_port, serve_command

SERIES = 15_000
SMOKE = {"series": 1000}
BATCH = 5_000  # the service's default max_batch_observations
VALUES = 3  # per series
PAUSE_S = 0.01  # between two single values to the other model
BEFORE_S = 1.0  # the latencies taken before the export


def server_env(port: int, state_dir: Path) -> dict[str, str]:
    # the HTTP benchmark's raised budgets: they hold the big model too
    settings = {**BUDGET, "TBPTT_MAX_SERIES_PER_MODEL": str(10 * SERIES), "TBPTT_LOG_LEVEL": "warning"}
    return server_process.server_env(port, state_dir, **settings)


def measured(url: str, series: int) -> dict[str, Any]:
    """Fill ``big``, then export it while single values go to ``other`` (the module doc)."""
    with httpx.Client(base_url=url, timeout=600.0) as client:
        for name in ("big", "other"):
            client.post("/v1/models", json={"name": name, "config": {}}).raise_for_status()
        for value in range(VALUES):
            for start in range(0, series, BATCH):
                batch = [
                    {"series": f"s{i}", "value": float(i % 7 + value)} for i in range(start, min(series, start + BATCH))
                ]
                client.post("/v1/models/big/observations", json={"observations": batch}).raise_for_status()
        sent: list[tuple[float, float, int]] = []  # (when it was answered, seconds, status)
        stop = threading.Event()

        def single_values() -> None:
            with httpx.Client(base_url=url, timeout=600.0) as other:
                k = 0
                while not stop.is_set():
                    started = time.perf_counter()
                    status = other.post("/v1/models/other/observations", json={"series": "x", "value": float(k % 5)})
                    sent.append((time.perf_counter(), time.perf_counter() - started, status.status_code))
                    k += 1
                    time.sleep(PAUSE_S)

        poster = threading.Thread(target=single_values)
        poster.start()
        try:
            time.sleep(BEFORE_S)
            began = time.perf_counter()
            exported = client.get("/v1/models/big/checkpoint")
            ended = time.perf_counter()
            time.sleep(0.2)
        finally:
            stop.set()
            poster.join()
    exported.raise_for_status()
    before = [s for at, s, _ in sent if at < began]
    during = [s for at, s, _ in sent if began <= at <= ended]
    return {
        "export_bytes": len(exported.content),
        "export_seconds": round(ended - began, 3),
        "statuses": sorted({status for _, _, status in sent}),
        "before": _latencies(before),
        "during": _latencies(during),
    }


def _latencies(seconds: list[float]) -> dict[str, Any]:
    return {
        "count": len(seconds),
        "median_s": round(statistics.median(seconds), 4) if seconds else None,
        "max_s": round(max(seconds), 4) if seconds else None,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = report.arguments(__doc__.splitlines()[0], argv)
    info = report.machine("benchmarks.export_stall", argv)
    series = SMOKE["series"] if args.smoke else SERIES
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="export_stall_") as folder:
        port = free_port()
        server = ServerProcess(
            serve_command(), server_env(port, Path(folder) / "state"), port, Path(folder) / "server.log"
        )
        with server:
            server.wait_ready()
            result = measured(server.url, series)
        exit_code = server.exit_code
        if exit_code not in GRACEFUL_EXIT:
            raise RuntimeError(f"the server exited with {exit_code}:\n{server.log_tail()}")
    payload = {
        "benchmark": "export_stall",
        "smoke": args.smoke,
        "machine": info,
        "series": series,
        **result,
        "server_exit_code": exit_code,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    before, during = result["before"], result["during"]
    markdown = "\n".join(
        [
            "## Other clients during a large model's export",
            "",
            report.machine_line(info),
            "",
            f"A server on its defaults; model `big` ({series:,} series of {VALUES} values, `ForecasterConfig()`) "
            f"exported while single values go to model `other` every {PAUSE_S * 1000:.0f} ms (their latency in s: "
            f"{BEFORE_S:.0f} s before the export, and while it runs).",
            "",
            report.markdown_table(
                [
                    "export MB",
                    "export s",
                    "POSTs before",
                    "median before",
                    "max before",
                    "POSTs during",
                    "median during",
                    "max during",
                ],
                [
                    [
                        round(result["export_bytes"] / 1e6, 1),
                        result["export_seconds"],
                        before["count"],
                        before["median_s"],
                        before["max_s"],
                        during["count"],
                        during["median_s"],
                        during["max_s"],
                    ]
                ],
            ),
        ]
    )
    print(markdown)
    report.write(args.out, "export_stall", payload, markdown)
    return payload


if __name__ == "__main__":
    main()
