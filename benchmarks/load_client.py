"""The HTTP benchmark's load generator: keep-alive HTTP/1.1 connections on one asyncio loop.

It runs as its own process (``python -m benchmarks.load_client`` with a JSON plan on
stdin, one JSON result line on stdout), so the load never shares the server's
interpreter. Each connection is a closed loop: send a request, read the whole
response, send the next. Requests are written by hand on ``asyncio`` streams rather
than through httpx, whose own cost per request (a few hundred microseconds) would be
a large share of the measured latency on 2 cores; the responses are checked for their
status and read to their last byte (``Content-Length``).

Every loop is bounded twice: by the phase's end time and by a request count per
connection; every request by a timeout. Completions inside the measured window
(after the warm-up) give the rates and the latencies; ``acknowledged_observations``
counts every 2xx POST of the whole phase, warm-up included.

>>> percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50), percentile([float(i) for i in range(1, 101)], 99)
(3.0, 99.0)
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

Kind = Literal["post_single", "post_batch", "get_forecast"]


@dataclass(frozen=True)
class Workload:
    """``connections`` closed-loop clients of one kind against model ``model``.

    post_single: connection c posts ``{series, value}`` to series c, c + connections, ...
    post_batch: ``batch`` observations per request, ``values_per_series`` of each series
    (``batch // values_per_series`` series, tick by tick: every series' first value, then
    every series' second...); the ``series`` are cut into slices of that many and connection
    c cycles over slices c, c + connections, ... (so concurrent batches hold different
    series). get_forecast: ``horizon`` steps of series c, ... Series are numbered from
    ``first_series``.

    >>> maker = RequestMaker(Workload("b", "post_batch", 1, 4, batch=4, values_per_series=2), "h", 1, 0)
    >>> request, count = maker.request(0, 1)
    >>> count, [o["series"] for o in orjson.loads(request[request.index(b"{") :])["observations"]]
    (4, ['series-2', 'series-3', 'series-2', 'series-3'])
    """

    name: str
    kind: Kind
    connections: int
    series: int
    batch: int = 1
    horizon: int = 12
    model: str = "default"
    values_per_series: int = 1  # post_batch: each series' values in one request (that many ticks)
    first_series: int = 0


@dataclass(frozen=True)
class Phase:
    workloads: list[Workload]
    warmup_s: float  # completions before this are not measured
    measure_s: float  # the measured window; no request starts after it ends
    max_requests_per_connection: int
    request_timeout_s: float = 30.0

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Phase:
        return cls(**{**raw, "workloads": [Workload(**w) for w in raw["workloads"]]})


def series_name(index: int) -> str:
    return f"series-{index}"


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0-100] of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n q / 100)
    return ordered[int(rank) - 1]


class RequestMaker:
    """The raw bytes of a workload's requests, one connection's sequence after another."""

    def __init__(self, workload: Workload, host: str, port: int, seed: int) -> None:
        self.workload = workload
        self.head = f"Host: {host}:{port}\r\nUser-Agent: benchmarks.load_client\r\n"
        self.random = random.Random(seed)
        self.per_request = max(1, workload.batch // workload.values_per_series)  # series in one batch
        n_slices = max(1, workload.series // self.per_request)
        self.units = n_slices if workload.kind == "post_batch" else workload.series

    def request(self, connection: int, round_: int) -> tuple[bytes, int]:
        """The request of ``connection``'s ``round_``-th turn and how many observations it carries."""
        w = self.workload
        unit = (connection + round_ * w.connections) % self.units
        first = w.first_series + unit * self.per_request
        if w.kind == "get_forecast":
            path = f"/v1/models/{w.model}/series/{series_name(w.first_series + unit)}/forecast?horizon={w.horizon}"
            return f"GET {path} HTTP/1.1\r\n{self.head}\r\n".encode(), 0
        if w.kind == "post_single":
            body = orjson.dumps({"series": series_name(w.first_series + unit), "value": self.random.gauss(0.0, 1.0)})
            count = 1
        else:
            names = [series_name(i) for i in range(first, first + self.per_request)]
            observations = [
                {"series": name, "value": self.random.gauss(0.0, 1.0)}
                for _ in range(w.values_per_series)
                for name in names
            ]
            body, count = orjson.dumps({"observations": observations}), len(observations)
        head = (
            f"POST /v1/models/{w.model}/observations HTTP/1.1\r\n{self.head}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body, count


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Send one request and read its whole response; its status code."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise RuntimeError(f"a response without Content-Length: {head[:200]!r}")
    await reader.readexactly(length)
    return status


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)  # completions inside the window
    requests_in_window: int = 0
    observations_in_window: int = 0
    acknowledged_observations: int = 0  # every 2xx POST, warm-up included
    requests_total: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # exceptions: timeouts, resets
    connections_stopped_by_count: int = 0


async def drive_connection(
    host: str, port: int, maker: RequestMaker, connection: int, phase: Phase, window: tuple[float, float], tally: Tally
) -> None:
    reader, writer = await asyncio.open_connection(host, port)  # asyncio sets TCP_NODELAY
    try:
        for round_ in range(phase.max_requests_per_connection):
            if time.perf_counter() >= window[1]:
                return
            request, count = maker.request(connection, round_)
            started = time.perf_counter()
            try:
                status = await asyncio.wait_for(exchange(reader, writer, request), phase.request_timeout_s)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, RuntimeError) as error:
                tally.failures.append(repr(error)[:200])
                return  # the connection's state is unknown: this client stops
            done = time.perf_counter()
            tally.requests_total += 1
            tally.statuses[str(status)] = tally.statuses.get(str(status), 0) + 1
            ok = 200 <= status < 300
            if ok:
                tally.acknowledged_observations += count
            if ok and window[0] <= done <= window[1]:
                tally.requests_in_window += 1
                tally.observations_in_window += count
                tally.latencies_ms.append(1000.0 * (done - started))
        tally.connections_stopped_by_count += 1
    finally:
        writer.close()
        await writer.wait_closed()


def summarise(workload: Workload, tally: Tally, measure_s: float) -> dict[str, Any]:
    lat = tally.latencies_ms
    return {
        "workload": dataclasses.asdict(workload),
        "requests_in_window": tally.requests_in_window,
        "requests_per_s": tally.requests_in_window / measure_s,
        "observations_per_s": tally.observations_in_window / measure_s,
        "latency_ms": {f"p{q}": percentile(lat, q) for q in (50, 90, 99)} | {"max": max(lat, default=None)},
        "acknowledged_observations": tally.acknowledged_observations,
        "requests_total": tally.requests_total,
        "statuses": tally.statuses,
        "failures": tally.failures[:10],
        "failure_count": len(tally.failures),
        "connections_stopped_by_count": tally.connections_stopped_by_count,
    }


async def run_phase(host: str, port: int, phase: Phase, seed: int = 0) -> dict[str, Any]:
    """Run every workload of ``phase`` at once; the summary of each, by name."""
    start = time.perf_counter()
    window = (start + phase.warmup_s, start + phase.warmup_s + phase.measure_s)
    tallies = {w.name: Tally() for w in phase.workloads}
    tasks = []
    for index, workload in enumerate(phase.workloads):
        maker = RequestMaker(workload, host, port, seed + index)
        tasks += [
            drive_connection(host, port, maker, c, phase, window, tallies[workload.name])
            for c in range(workload.connections)
        ]
    usage_before = None

    async def mark_window_start() -> None:
        nonlocal usage_before
        await asyncio.sleep(phase.warmup_s)
        usage_before = resource.getrusage(resource.RUSAGE_SELF)

    await asyncio.wait_for(
        asyncio.gather(mark_window_start(), *tasks),
        timeout=phase.warmup_s + phase.measure_s + phase.request_timeout_s + 10.0,
    )
    ended = time.perf_counter()
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage_after.ru_utime + usage_after.ru_stime) - (usage_before.ru_utime + usage_before.ru_stime)
    measured_s = min(ended, window[1]) - window[0]  # shorter than measure_s when every connection hit its count
    return {
        "wall_s": round(ended - start, 3),
        "measured_s": round(measured_s, 3),
        "client_cpu_cores_busy": cpu / (ended - window[0]),
        "workloads": {w.name: summarise(w, tallies[w.name], measured_s) for w in phase.workloads},
    }


def main() -> None:
    """Read ``{"host", "port", "phase": {...}}`` on stdin; print the result as one JSON line."""
    plan = json.loads(sys.stdin.read())
    result = asyncio.run(run_phase(plan["host"], plan["port"], Phase.from_dict(plan["phase"]), plan.get("seed", 0)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
