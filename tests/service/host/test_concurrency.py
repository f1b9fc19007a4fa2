"""Concurrency through the real app: exactly once and in order, the same ticks as the library,
micro-batches that merge requests, and forecasts that never wait for an update."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Sequence
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_service.api.app import create_app
from tbptt_service.storage.observation import Observation

from ..api.test_observations_api import as_json
from ..conftest import SMALL_MODEL

pytestmark = pytest.mark.anyio
URL = "/v1/models/default/observations"
FROZEN = {**SMALL_MODEL, "lr": 0.0}  # updates run but leave the weights: series do not influence each other
LEARNING = {**SMALL_MODEL, "lr": 0.01}


def make_streams(seed: int, clients: int, series_per_client: int, length: int) -> list[dict[str, list[float]]]:
    rng = random.Random(seed)
    return [
        {f"c{c}-s{s}": [round(rng.gauss(0, 1), 6) for _ in range(length)] for s in range(series_per_client)}
        for c in range(clients)
    ]


async def run_client(client: httpx.AsyncClient, streams: dict[str, list[float]], seed: int) -> dict[str, list]:
    """Post one client's series in order, in requests of 1-4 observations mixing its series,
    sometimes retrying a request (same timestamps and values: it must get the same answer).
    Only the last timestamp of a series is remembered, so only requests holding each series
    once are retried (an earlier element of a series would be older than its last: 409)."""
    rng = random.Random(seed)
    position = dict.fromkeys(streams, 0)
    results: dict[str, list] = {name: [] for name in streams}
    while any(position[n] < len(v) for n, v in streams.items()):
        body = []
        for _ in range(rng.randint(1, 4)):
            open_series = [n for n, v in streams.items() if position[n] < len(v)]
            if not open_series:
                break
            name = rng.choice(open_series)
            t = position[name]
            body.append({"series": name, "value": streams[name][t], "timestamp": 1_700_000_000 + t})
            position[name] = t + 1
        response = await client.post(URL, json={"observations": body})
        assert response.status_code == 200, response.text
        for result in response.json()["results"]:
            results[result["series"]].append(result)
        if rng.random() < 0.3 and len({o["series"] for o in body}) == len(body):
            retry = await client.post(URL, json={"observations": body})
            assert retry.status_code == 200
            assert retry.json()["results"] == response.json()["results"]
    return results


def assert_close_results(got: dict[str, Any], expected: dict[str, Any], tolerance: float) -> None:
    assert (got["series"], got["step"], got["value"], got["updated"]) == (
        expected["series"],
        expected["step"],
        expected["value"],
        expected["updated"],
    )
    for key in ("forecast_made", "forecast_next"):
        for part in ("mean", "lower", "upper"):
            if expected[key][part] is None:  # no forecast (a hybrid series' first value)
                assert got[key][part] is None, (got, expected)
                continue
            assert abs(got[key][part] - expected[key][part]) <= tolerance, (got, expected)


async def test_concurrent_clients_get_every_observation_applied_once_and_in_order(make_settings, serve) -> None:
    all_streams = make_streams(seed=1, clients=8, series_per_client=3, length=20)
    app = create_app(make_settings(default_model=FROZEN, microbatch_max_wait_ms=5))
    async with serve(app) as client:
        per_client = await asyncio.gather(*(run_client(client, s, seed=i) for i, s in enumerate(all_streams)))
        counts = {}
        forecasts = {}
        for streams in all_streams:
            for name in streams:
                counts[name] = (await client.get(f"/v1/models/default/series/{name}")).json()["count"]
                forecasts[name] = (await client.get(f"/v1/models/default/series/{name}/forecast?horizon=3")).json()
        info = (await client.get("/v1/models/default")).json()

    reference = Forecaster(ForecasterConfig.from_dict(FROZEN))
    for streams, results in zip(all_streams, per_client, strict=True):
        for name, values in streams.items():
            expected = [as_json(reference.observe(name, v), 1_700_000_000 + t) for t, v in enumerate(values)]
            assert [r["step"] for r in results[name]] == list(range(1, len(values) + 1))  # in order, none twice
            for got, want in zip(results[name], expected, strict=True):
                assert_close_results(got, want, tolerance=1e-12)
            assert counts[name] == len(values)
            want = reference.forecast(name, horizon=3)
            assert forecasts[name]["step"] == len(values)
            for k, step in enumerate(forecasts[name]["forecast"]):
                assert abs(step["mean"] - want.mean[k]) <= 1e-12 and abs(step["upper"] - want.upper[k]) <= 1e-12
    assert info["observations"] == 8 * 3 * 20  # retries learned nothing


class RecordingJournal:
    def __init__(self) -> None:
        self.batches: list[list[Observation]] = []

    def append(self, model: str, observations: Sequence[Observation]) -> None:
        self.batches.append(list(observations))


async def test_the_service_runs_exactly_the_ticks_of_its_batches(make_settings, serve) -> None:
    """With learning on, the results equal the library's fed the same batches, bit for bit."""
    journal = RecordingJournal()
    all_streams = make_streams(seed=2, clients=6, series_per_client=2, length=16)
    app = create_app(make_settings(default_model=LEARNING, microbatch_max_wait_ms=5), journal=journal)
    async with serve(app) as client:
        per_client = await asyncio.gather(*(run_client(client, s, seed=10 + i) for i, s in enumerate(all_streams)))
        name = next(iter(all_streams[0]))
        forecast = (await client.get(f"/v1/models/default/series/{name}/forecast?horizon=5")).json()

    reference = Forecaster(ForecasterConfig.from_dict(LEARNING))
    expected = {}
    for batch in journal.batches:
        for obs, result in zip(batch, reference.observe_many([(o.series, o.value) for o in batch]), strict=True):
            expected[(result.series, result.step)] = as_json(result, obs.timestamp)
    got = {(r["series"], r["step"]): r for results in per_client for rs in results.values() for r in rs}
    assert got == expected
    assert reference.update_stats().updates > 10
    want = reference.forecast(name, horizon=5)
    assert [s["mean"] for s in forecast["forecast"]] == want.mean
    assert forecast["update_count"] == reference.update_stats().updates


class GatedUpdates:
    """A forecaster factory whose first TBPTT update waits, mid-update, until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()
        self.calls = 0

    def factory(self, config: ForecasterConfig) -> Forecaster:
        forecaster = Forecaster(config)
        run_update = forecaster.engine.replay_update

        def gated_update(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls > 1:
                return run_update(*args, **kwargs)
            self.entered.set()
            self.release.wait()
            record = run_update(*args, **kwargs)
            self.finished.set()
            return record

        forecaster.engine.replay_update = gated_update
        return forecaster


async def test_a_forecast_returns_while_an_update_is_running(make_settings, serve) -> None:
    gate = GatedUpdates()
    app = create_app(make_settings(), forecaster_factory=gate.factory)  # k1 = 4: the 4th value updates
    async with serve(app) as client:
        try:
            for value in (1.0, 2.0, 3.0):
                await client.post(URL, json={"series": "a", "value": value})
            posting = asyncio.ensure_future(client.post(URL, json={"series": "a", "value": 4.0}))
            await anyio.to_thread.run_sync(gate.entered.wait)  # the update is running now, held mid-way

            forecast = await client.get("/v1/models/default/series/a/forecast", params={"horizon": 2})
            info = await client.get("/v1/models/default")
            assert not gate.finished.is_set() and not posting.done()  # answered while the update runs
            assert forecast.status_code == 200
            assert (forecast.json()["step"], forecast.json()["update_count"]) == (3, 0)  # the pre-update snapshot
            assert info.json()["updates"]["updates"] == 0
        finally:
            gate.release.set()
        posted = (await posting).json()["results"][0]
        assert (posted["step"], posted["updated"], posted["update_count"]) == (4, True, 1)
        after = (await client.get("/v1/models/default/series/a/forecast")).json()
        assert (after["step"], after["update_count"]) == (4, 1)


async def test_requests_that_arrive_together_are_merged_into_one_batch(make_settings, serve) -> None:
    gate = GatedUpdates()
    app = create_app(make_settings(), forecaster_factory=gate.factory)
    async with serve(app) as client:
        worker = app.state.registry.get("default")
        try:
            for value in (1.0, 2.0, 3.0):
                await client.post(URL, json={"series": "w", "value": value})
            held = asyncio.ensure_future(client.post(URL, json={"series": "w", "value": 4.0}))
            await anyio.to_thread.run_sync(gate.entered.wait)
            posts = [asyncio.ensure_future(client.post(URL, json={"series": f"s{i}", "value": 1.0})) for i in range(20)]
            while worker.queued_jobs < 20:
                await asyncio.sleep(0.001)
        finally:
            gate.release.set()
        await held
        responses = await asyncio.gather(*posts)
        text = (await client.get("/metrics")).text
    assert [r.json()["results"][0]["series"] for r in responses] == [f"s{i}" for i in range(20)]
    values = {
        (s.name, s.labels.get("le")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("model") == "default"
    }
    assert values[("tbptt_batches_total", None)] == 5  # 24 requests: 3 + 1 alone, then 20 in one batch
    assert values[("tbptt_batch_requests_sum", None)] == 24
    assert values[("tbptt_batch_requests_bucket", "16.0")] == 4  # one batch held more than 16 requests
