"""Real server processes killed with SIGKILL while long batches (several values per series) are
applied a chunk of ticks at a time beside single-series requests, some kills between two chunks:
every acknowledged observation survives exactly once, a batch cut between two chunks is finished
by the next server, and the recovered model is the one the library computes from the log's
records in their order (batches, chunks, the short batches between them), bit for bit."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from typing import Any

import anyio
import httpx
import pytest

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_service.host.chunked_run import ChunkedRun
from tbptt_service.host.model_state import decode_model_checkpoint
from tbptt_service.storage.log_journal import observations_of

from ..bitwise import assert_bitwise_equal
from .test_crash_recovery import (
    FAULTY_SERVER,
    LEARNING,
    T0,
    URL,
    Link,
    fault_env,
    read_log,
    read_tap,
    stop_clients,
    stream,
    value_at,
    wait_for,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(240)]
TICKS = 4  # values of each series in one long request


async def post_long_until_acknowledged(http: httpx.AsyncClient, link: Link, body: list[dict]) -> None:
    """A long request again and again until it is known applied: 200, or (a retry after a kill, when
    the first try was applied) 409 for values older than the series' last, with every series' count
    showing the request whole."""
    while True:
        await link.up.wait()
        try:
            response = await http.post(link.url + URL, json={"observations": body})
            if response.status_code == 409:
                counts = {}
                for obs in body:
                    series = (await http.get(f"{link.url}/v1/models/default/series/{obs['series']}")).json()
                    counts[obs["series"]] = series["count"]
        except httpx.TransportError:
            link.cut.append((link.round, [(o["series"], o["timestamp"]) for o in body]))
            await asyncio.sleep(0.02)
            continue
        if response.status_code == 503:
            await asyncio.sleep(0.05)
            continue
        if response.status_code == 409:
            last = {o["series"]: o["timestamp"] - T0 + 1 for o in body}
            assert counts == last, (response.text, counts)  # the whole request is in the model, once
            return
        assert response.status_code == 200, response.text
        return


async def stream_long(link: Link, names: list[str], acked: dict[str, list], stop: asyncio.Event) -> None:
    """One client: requests of TICKS values of each of its series, timestamped, until ``stop``."""
    nxt = dict.fromkeys(names, 0)
    async with httpx.AsyncClient(timeout=60) as http:
        while not stop.is_set():
            body = [
                {"series": n, "value": value_at(n, nxt[n] + k), "timestamp": T0 + nxt[n] + k}
                for k in range(TICKS)
                for n in names
            ]
            await post_long_until_acknowledged(http, link, body)
            for n in names:
                acked[n].extend((nxt[n] + k, nxt[n] + k + 1) for k in range(TICKS))
                nxt[n] += TICKS


def replay(records: dict[int, dict], config: dict[str, Any]) -> Forecaster:
    """The library fed the log's records in their order: what the service must hold."""
    reference = Forecaster(ForecasterConfig.from_dict(config))
    runs: dict[int, ChunkedRun] = {}
    for seq in sorted(records):
        kind, payload = records[seq]["kind"], records[seq]["payload"]
        if kind == "observe":
            reference.observe_many([(o.series, o.value) for o in observations_of(payload)])
        elif kind == "observe_chunked":
            runs[seq] = ChunkedRun(observations_of(payload), seq)
        elif kind == "observe_chunk":
            run, extra = runs[payload["request"]], observations_of(payload) if "items" in payload else []
            chunk = [*run.chunk(payload["ticks"]), *extra]  # short requests applied in the same call
            run.done(reference.observe_many([(o.series, o.value) for o in chunk]), payload["ticks"])
    assert all(run.remaining == 0 for run in runs.values())  # every batch finished
    return reference


async def test_sigkill_between_chunks_of_long_batches_loses_nothing_and_recovers_bit_for_bit(
    start_server, tmp_path
) -> None:
    state_dir, fault_dir = tmp_path / "state", tmp_path / "faults"
    fault_dir.mkdir()
    env = fault_env(fault_dir, checkpoint_every_observations="150", checkpoint_interval_s="0.5", checkpoints_kept="2")
    rng = random.Random(11)
    link, stop = Link(), asyncio.Event()
    acked: dict[str, list] = defaultdict(list)
    long_clients = [[f"L{c}-s{s}" for s in range(3)] for c in range(2)]
    short_clients = [[f"c{c}-s{s}" for s in range(3)] for c in range(3)]
    tasks = [asyncio.ensure_future(stream_long(link, names, acked, stop)) for names in long_clients]
    tasks += [asyncio.ensure_future(stream(link, names, seed, acked, stop)) for seed, names in enumerate(short_clients)]
    records: dict[int, dict] = {}
    last_seq_at_kill = []
    try:
        for round_, window in enumerate(["between chunks", "random", "between chunks"]):
            round_env = {**env, "TBPTT_LOG_SYNC": "interval" if round_ % 2 else "batch"}
            server = await anyio.to_thread.run_sync(lambda e=round_env: start_server(FAULTY_SERVER, e, state_dir))
            link.url = server.url
            link.up.set()
            if window == "between chunks":
                await asyncio.sleep(rng.uniform(0.2, 0.6))
                (fault_dir / "slow-chunks").touch()
                await wait_for((fault_dir / "chunking").exists)
            else:
                await asyncio.sleep(rng.uniform(0.3, 1.2))
            link.up.clear()
            server.process.kill()
            link.round = round_
            server.process.wait()
            if window == "between chunks":
                assert (fault_dir / "chunking").exists()  # the kill did land between two chunks
            for switch in ("slow-chunks", "chunking"):
                (fault_dir / switch).unlink(missing_ok=True)
            read_log(state_dir / "events.sqlite3", records)
            last_seq_at_kill.append(max(records, default=0))

        server = await anyio.to_thread.run_sync(lambda: start_server(FAULTY_SERVER, env, state_dir))
        link.url = server.url
        link.up.set()
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*tasks)
        names = [n for group in long_clients + short_clients for n in group]
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            counts = {n: (await http.get(f"/v1/models/default/series/{n}")).json()["count"] for n in names}
            state = decode_model_checkpoint((await http.get("/v1/models/default/checkpoint")).content)
        server.stop()
    finally:
        await stop_clients(stop, link, tasks)
    read_tap(fault_dir / "tap.jsonl", records)
    read_log(state_dir / "events.sqlite3", records)

    for name in names:  # every acknowledged observation in the state, once, in order
        assert acked[name] == [(t, t + 1) for t in range(len(acked[name]))], name
        assert counts[name] == len(acked[name]) > 0, name
    assert sorted(records) == list(range(1, len(records) + 1))
    batches = [r for r in records.values() if "items" in r["payload"]]  # observe, observe_chunked
    journaled = [(s, ts) for r in batches for s, _, ts in r["payload"]["items"]]
    assert len(journaled) == len(set(journaled)) == sum(counts.values())  # none twice, none lost
    # A batch whose chunks straddle a kill: the next server finished it.
    chunks = defaultdict(list)
    for seq, r in records.items():
        if r["kind"] == "observe_chunk":
            chunks[r["payload"]["request"]].append(seq)
    straddling = [b for b, seqs in chunks.items() if any(b <= k < max(seqs) for k in last_seq_at_kill)]
    assert straddling, "no kill landed inside a long batch"
    # Single POSTs went between two chunks of a long batch, each as a batch of its own.
    assert not any("items" in r["payload"] for r in records.values() if r["kind"] == "observe_chunk")
    spans = [(b, max(seqs)) for b, seqs in chunks.items()]
    between = [s for s, r in records.items() if r["kind"] == "observe" and any(b < s < e for b, e in spans)]
    assert between, "no short batch went between two chunks"

    reference = replay(records, LEARNING)
    assert reference.update_stats().updates > 10
    assert_bitwise_equal(state.forecaster, reference.state_dict())
