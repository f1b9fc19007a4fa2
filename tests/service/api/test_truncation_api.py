"""GET /v1/models/{model}/truncation, POST .../reset-learning-rate and their metrics, through the real app."""

from __future__ import annotations

import math
import random

import pytest

from tbptt_online import Forecaster

pytestmark = pytest.mark.anyio


async def test_the_advisor_flags_a_k2_shorter_than_the_echo_and_exports_its_gauges(client_for) -> None:
    config = {"hidden_size": 8, "k1": 5, "k2": 10, "n_features": 2, "hybrid": False, "probe_every": 5}
    async with client_for() as client:
        assert (await client.post("/v1/models", json={"name": "echo", "config": config})).status_code == 201
        before = (await client.get("/v1/models/echo/truncation")).json()
        assert before["probes"] == 0 and before["reach"] == [] and before["recommended_k2"] == 10
        rng = random.Random(5)
        noise = [rng.gauss(0.0, 1.0) for _ in range(340)]
        for start in range(20, 340, 40):
            body = {
                "observations": [
                    {"series": f"e{i}", "value": [noise[t - i], noise[t - i - 20]]}
                    for t in range(start, min(start + 40, 340))
                    for i in range(3)
                ]
            }
            assert (await client.post("/v1/models/echo/observations", json=body)).status_code == 200
        report = (await client.get("/v1/models/echo/truncation")).json()
        metrics = (await client.get("/metrics")).text
    assert report["probes"] > 0 and len(report["reach"]) == 20
    assert report["dependencies"] == {"e0": 20, "e1": 20, "e2": 20}
    assert report["recommended_k2"] == 25 and "too short for the dependency of 20 steps" in report["verdict"]
    assert 'tbptt_truncation_recommended_k2{model="echo"} 25.0' in metrics
    assert report["too_short"] and 'tbptt_truncation_too_short{model="echo"} 1.0' in metrics
    assert f'tbptt_truncation_biased{{model="echo"}} {float(report["biased"])!r}' in metrics
    assert 'tbptt_dependency_length{model="echo"} 20.0' in metrics
    assert 'tbptt_truncation_window{model="echo"} 10.0' in metrics
    # the bias measured on the probe's windows beside the bound, in the report and as a gauge
    assert before["measured_bias"] is None and 0.0 <= report["measured_bias"] <= 1.0
    assert f'tbptt_truncation_measured_bias{{model="echo"}} {report["measured_bias"]!r}' in metrics
    assert 'tbptt_guard_events_total{kind="rollbacks",model="echo"} 0.0' in metrics


async def test_a_failed_report_answers_503_saying_so_without_running_the_advisor_again(client_for, monkeypatch) -> None:
    # fix: the route took a snapshot without a report for one from before the advisor existed and
    # made it again on the model's worker, behind its batches: a failing advisor answered 500 with
    # its exception, and ran again at every GET
    calls = []

    def failing(self):
        calls.append(1)
        raise IndexError("simulated advisor failure")

    monkeypatch.setattr(Forecaster, "truncation", failing)
    async with client_for() as client:
        assert (await client.post("/v1/models", json={"name": "m", "config": {"hidden_size": 4}})).status_code == 201
        made = len(calls)
        for _ in range(3):
            response = await client.get("/v1/models/m/truncation")
            assert response.status_code == 503
            assert "truncation advisor's report failed" in response.json()["detail"]
        assert len(calls) == made  # the GETs ran nothing
        posted = await client.post("/v1/models/m/observations", json={"series": "a", "value": 1.0})
        assert posted.status_code == 200 and len(calls) == made  # nor did a batch without a probe


async def test_reset_learning_rate_restores_the_configured_rate(client_for) -> None:
    config = {"hidden_size": 8, "k1": 2, "k2": 8, "hybrid": False, "lr": 10.0}
    async with client_for() as client:
        assert (await client.post("/v1/models", json={"name": "hot", "config": config})).status_code == 201
        for start in range(0, 600, 50):
            body = {
                "observations": [
                    {"series": f"s{i}", "value": 5 * math.sin(2 * math.pi * t / 12 + i)}
                    for t in range(start, start + 50)
                    for i in range(4)
                ]
            }
            assert (await client.post("/v1/models/hot/observations", json=body)).status_code == 200
        backed_off = (await client.get("/v1/models/hot")).json()["updates"]
        reset = await client.post("/v1/models/hot/reset-learning-rate")
        assert (await client.post("/v1/models/nope/reset-learning-rate")).status_code == 404
    assert backed_off["rollbacks"] >= 1 and backed_off["lr"] < 10.0
    assert reset.status_code == 200 and reset.json()["updates"]["lr"] == 10.0
