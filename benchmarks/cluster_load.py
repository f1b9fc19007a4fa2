"""The cluster's throughput beside the in-process server's, in one run, on this machine.

Starts a throwaway PostgreSQL (``benchmarks.postgres_server``) and a local Ray cluster (a head
with no CPUs and one worker node, ``ray.cluster_utils.Cluster``, token authentication on), then
for each shard count (1, 2, 4 by default): a fresh database, the shard actors, one front process
(``tbptt-online serve --ray``), 8 models created through it, and two load phases from
``benchmarks.load_client`` (its own process): single-observation POSTs (4 connections per model)
and batches (``--batch`` observations per request, 1 connection per model). The same phases run
against the in-process server (``tbptt-online serve``, SQLite log). Before that, the per-call
overhead: the round trip of an empty ``handle`` call on a shard actor, against the same call on
a ``ShardHost`` in this process.

    python -m benchmarks.cluster_load --out benchmarks/results        # about 4 minutes on 2 cores
    python -m benchmarks.cluster_load --shards 1 --measure-s 3 --out /tmp/c   # a quick look

Every process started here is stopped here (the servers by their PIDs, the Ray nodes by the
cluster, PostgreSQL by its PID). Results: ``cluster_load.json`` and ``cluster_load.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_AUTH_MODE", "token")  # read when Ray is first imported
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))

import psycopg
import ray
from ray.cluster_utils import Cluster

from benchmarks import report
from benchmarks.postgres_server import TemporaryPostgres
from benchmarks.server_process import ServerProcess, free_port, serve_command

MODELS = [f"m{i}" for i in range(8)]
SMALL = {"hidden_size": 16, "k1": 8, "k2": 16, "dtype": "float32", "seed": 1}


def load(port: int, kind: str, connections: int, batch: int, warmup_s: float, measure_s: float) -> dict[str, Any]:
    workloads = [
        {"name": m, "kind": kind, "connections": connections, "series": 64, "batch": batch, "model": m} for m in MODELS
    ]
    plan = {
        "host": "127.0.0.1",
        "port": port,
        "phase": {
            "workloads": workloads,
            "warmup_s": warmup_s,
            "measure_s": measure_s,
            "max_requests_per_connection": 1_000_000,
        },
    }
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.load_client"], input=json.dumps(plan), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"load_client failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    per = result["workloads"].values()
    latencies = [w["latency_ms"]["p99"] for w in per if w["latency_ms"]["p99"] is not None]
    return {
        "requests_per_s": round(sum(w["requests_per_s"] for w in per), 1),
        "observations_per_s": round(sum(w["observations_per_s"] for w in per), 1),
        "p50_ms_median_over_models": statistics.median(w["latency_ms"]["p50"] or 0.0 for w in per),
        "p99_ms_worst_model": max(latencies, default=None),
        "non_2xx": sum(n for w in per for s, n in w["statuses"].items() if not s.startswith("2")),
        "failures": sum(w["failure_count"] for w in per),
        "failure_examples": sorted({f for w in per for f in w["failures"]})[:5],  # what they were
    }


def create_models(url: str) -> None:
    import httpx

    for m in MODELS:
        response = httpx.post(f"{url}/v1/models", json={"name": m, "config": SMALL}, timeout=120)
        assert response.status_code == 201, response.text


def phases(server: ServerProcess, args: argparse.Namespace) -> dict[str, Any]:
    create_models(server.url)
    return {
        "single": load(server.port, "post_single", 4, 1, args.warmup_s, args.measure_s),
        "batch": load(server.port, "post_batch", 1, args.batch, args.warmup_s, args.measure_s),
    }


def call_overhead(shards_handle: Any, host: Any, calls: int = 200) -> dict[str, float]:
    from tbptt_service.host.shard import ForwardedRequest

    health = [ForwardedRequest("GET", "/healthz", [], b"")]
    timings: dict[str, list[float]] = {"ray_empty": [], "ray_healthz": [], "in_process_healthz": []}
    for i in range(calls):
        started = time.perf_counter()
        ray.get(shards_handle.handle.remote(f"e{i}", []))
        timings["ray_empty"].append(time.perf_counter() - started)
        started = time.perf_counter()
        ray.get(shards_handle.handle.remote(f"h{i}", health))
        timings["ray_healthz"].append(time.perf_counter() - started)
        started = time.perf_counter()
        host.handle(f"p{i}", health)
        timings["in_process_healthz"].append(time.perf_counter() - started)
    return {name: round(statistics.median(values) * 1000, 3) for name, values in timings.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--warmup-s", type=float, default=2.0)
    parser.add_argument("--measure-s", type=float, default=8.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="cluster-load-"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TBPTT_CHECKPOINT_INTERVAL_S": "0"}
    results: dict[str, Any] = {"cpus": os.cpu_count(), "batch": args.batch, "models": len(MODELS), "runs": {}}
    results["machine"] = report.machine("benchmarks.cluster_load", argv)  # the date and the command with the figures

    port = free_port()
    alone_env = {**env, "TBPTT_STATE_DIR": str(work / "alone"), "TBPTT_PORT": str(port), "TBPTT_LOG_LEVEL": "warning"}
    with ServerProcess(serve_command(), alone_env, port, work / "alone.log") as server:
        server.wait_ready()
        results["runs"]["in-process"] = phases(server, args)
    print("in-process", results["runs"]["in-process"], flush=True)

    postgres = TemporaryPostgres()
    postgres.start()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=8)
        cluster.wait_for_nodes()
        cluster.connect(namespace="tbptt")
        from tbptt_service.host.ray_shards import shard_actors
        from tbptt_service.host.shard import ShardHost
        from tbptt_service.settings import Settings

        for shards in args.shards:
            database = f"shards_{shards}"
            with psycopg.connect(postgres.url, autocommit=True) as admin:
                admin.execute(f"CREATE DATABASE {database}")
            log_url = postgres.url.rsplit("/", 1)[0] + f"/{database}"
            settings = Settings(state_dir=work / database, log_url=log_url, log_level="warning")
            pairs = shard_actors(shards, settings.model_dump(mode="json"))
            ray.get([actor.ready.remote() for pair in pairs for actor in pair])
            handles = [owner for owner, _ in pairs]
            if "call_overhead_ms" not in results:
                with psycopg.connect(postgres.url, autocommit=True) as admin:
                    admin.execute("CREATE DATABASE local_host")  # its own: a shard-0 stream of its own
                local_url = postgres.url.rsplit("/", 1)[0] + "/local_host"
                local = Settings(state_dir=work / "local", log_url=local_url, log_level="warning")
                host = ShardHost(0, 1, local.model_dump(mode="json"))
                try:
                    results["call_overhead_ms"] = call_overhead(handles[0], host)
                finally:
                    host.close()
                print("call overhead (median ms)", results["call_overhead_ms"], flush=True)
            port = free_port()
            command = serve_command("--ray", cluster.address, "--shards", str(shards), "--log", log_url)
            command += ["--state-dir", str(work / database), "--port", str(port)]
            front_env = {**env, "TBPTT_LOG_LEVEL": "warning"}
            with ServerProcess(command, front_env, port, work / f"front-{shards}.log") as front:
                front.wait_ready(timeout_s=240)
                results["runs"][f"{shards} shard(s)"] = phases(front, args)
            print(f"{shards} shard(s)", results["runs"][f"{shards} shard(s)"], flush=True)
            for actor in (a for pair in pairs for a in pair):
                ray.kill(actor, no_restart=True)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        postgres.stop()
    (args.out / "cluster_load.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "cluster_load.md").write_text(render(results))
    print(render(results))


def render(results: dict[str, Any]) -> str:
    lines = [
        *([report.machine_line(results["machine"]), ""] if "machine" in results else []),
        f"{results['cpus']} CPUs, {results['models']} models; batches of {results['batch']} observations.",
        "",
        "| server | single POST req/s | single p99 ms | batch obs/s | batch p99 ms | non-2xx |",
        "|---|---|---|---|---|---|",
    ]
    for name, run in results["runs"].items():
        single, batch = run["single"], run["batch"]
        lines.append(
            f"| {name} | {single['requests_per_s']:.0f} | {single['p99_ms_worst_model']:.0f} | "
            f"{batch['observations_per_s']:.0f} | {batch['p99_ms_worst_model']:.0f} | "
            f"{single['non_2xx'] + batch['non_2xx'] + single['failures'] + batch['failures']} |"
        )
    overhead = results.get("call_overhead_ms", {})
    lines += ["", f"Per-call overhead (median ms): {json.dumps(overhead)}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
