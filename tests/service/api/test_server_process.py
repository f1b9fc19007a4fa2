"""A real ``tbptt-online serve`` process on 127.0.0.1: concurrent clients over sockets, limits, clean stop."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from tbptt_online import Forecaster, ForecasterConfig

from ..host.test_concurrency import FROZEN, assert_close_results, make_streams, run_client
from .test_observations_api import as_json

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


async def test_a_real_server_applies_concurrent_clients_once_and_in_order(start_server) -> None:
    server = start_server(settings_env={"TBPTT_DEFAULT_MODEL": json.dumps(FROZEN), "TBPTT_MICROBATCH_MAX_WAIT_MS": "5"})
    all_streams = make_streams(seed=5, clients=6, series_per_client=2, length=16)
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        per_client = await asyncio.gather(*(run_client(client, s, seed=20 + i) for i, s in enumerate(all_streams)))
        counts = {
            name: (await client.get(f"/v1/models/default/series/{name}")).json()["count"]
            for streams in all_streams
            for name in streams
        }
        metrics = (await client.get("/metrics")).text

    reference = Forecaster(ForecasterConfig.from_dict(FROZEN))
    for streams, results in zip(all_streams, per_client, strict=True):
        for name, values in streams.items():
            expected = [as_json(reference.observe(name, v), 1_700_000_000 + t) for t, v in enumerate(values)]
            assert [r["step"] for r in results[name]] == list(range(1, len(values) + 1))
            for got, want in zip(results[name], expected, strict=True):
                assert_close_results(got, want, tolerance=1e-12)
            assert counts[name] == len(values)
    assert 'tbptt_observations_total{model="default"} 192.0' in metrics  # 6 x 2 x 16, retries excluded
    assert server.stop() in (0, -signal.SIGTERM)
    log = server.log_path.read_text()
    assert "Application shutdown complete" in log
    # a new user's first start was silent for 46 s (the kernels compiling before the port opens): it is said
    preparing, ready = log.find("preparing the model code"), log.find("model code ready in ")
    assert 0 <= preparing < ready < log.find("Started server process"), log[:2000]


async def test_a_real_server_refuses_a_streamed_body_over_the_limit(start_server) -> None:
    server = start_server(settings_env={"TBPTT_MAX_BODY_BYTES": "4096"})
    body = orjson.dumps({"observations": [{"series": "s", "value": float(i)} for i in range(400)]})

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1024):
            yield body[start : start + 1024]

    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        response = await client.post(
            "/v1/models/default/observations", content=chunks(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json() == {"detail": "request body exceeds TBPTT_MAX_BODY_BYTES=4096"}
        assert (await client.get("/v1/models/default")).json()["observations"] == 0
