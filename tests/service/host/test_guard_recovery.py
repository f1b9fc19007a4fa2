"""Recovery with the truncation advisor's and the instability guards' state (issue 12): a model whose
guards rolled it back and backed its learning rate off after the last checkpoint, then had the rate
reset by the user, is recovered after a crash bit for bit as the model that never crashed."""

from __future__ import annotations

import math

import httpx
import pytest

from tbptt_service.api.app import create_app
from tbptt_service.storage import journal

from ..state_probe import assert_same_state, crash_copy, model_state

pytestmark = pytest.mark.anyio
NO_TIMER = {"checkpoint_interval_s": 0.0, "checkpoint_every_observations": 0}  # checkpoints only when a test says
HOT = {"hidden_size": 8, "k1": 2, "k2": 8, "hybrid": False, "lr": 10.0, "probe_every": 4}  # diverges: rolled back


async def feed(client: httpx.AsyncClient, start: int, stop: int) -> None:
    for first in range(start, stop, 50):
        body = {
            "observations": [
                {"series": f"s{i}", "value": 5 * math.sin(2 * math.pi * t / 12 + i)}
                for t in range(first, min(first + 50, stop))
                for i in range(4)
            ]
        }
        assert (await client.post("/v1/models/hot/observations", json=body)).status_code == 200


async def updates(client: httpx.AsyncClient) -> dict:
    return (await client.get("/v1/models/hot")).json()["updates"]


async def test_a_crash_after_a_rollback_and_a_learning_rate_reset_recovers_both(make_settings, serve, tmp_path):
    settings = make_settings(**NO_TIMER)
    app = create_app(settings)
    async with serve(app) as client:
        assert (await client.post("/v1/models", json={"name": "hot", "config": HOT})).status_code == 201
        await feed(client, 0, 50)
        at_checkpoint = await updates(client)
        checkpoint_seq = await app.state.durability.checkpoint(app.state.registry)
        await feed(client, 50, 150)
        backed_off = await updates(client)
        reset = await client.post("/v1/models/hot/reset-learning-rate")
        assert reset.status_code == 200 and reset.json()["updates"]["lr"] == 10.0
        await feed(client, 150, 152)
        truncation = (await client.get("/v1/models/hot/truncation")).json()
        crashed = crash_copy(settings.state_dir, tmp_path / "crashed")
        expected = await model_state(client, "hot")
        kinds = [r.kind for r in app.state.durability.log.records() if r.seq > checkpoint_seq]

    # after the checkpoint: the guards rolled back and backed off, the user reset the rate
    assert at_checkpoint["rollbacks"] == 0 and at_checkpoint["lr"] == 10.0
    assert backed_off["rollbacks"] >= 1 and backed_off["divergences"] >= 1 and backed_off["lr"] < 10.0
    assert journal.RESET_LEARNING_RATE in kinds
    guard = expected["checkpoint"]["forecaster"]["engine"]["guard"]
    assert guard["lr_scale"] == 1.0 and guard["counts"]["rollbacks"] == backed_off["rollbacks"]
    assert expected["info"]["updates"]["lr"] == 10.0 and truncation["probes"] > 0

    recovered_app = create_app(settings.model_copy(update={"state_dir": crashed}))
    async with serve(recovered_app) as client:
        report = recovered_app.state.durability.report
        assert report.checkpoint_seq == checkpoint_seq and report.applied > 0
        assert_same_state(await model_state(client, "hot"), expected)  # guards and probe, bit for bit
        assert (await client.get("/v1/models/hot/truncation")).json() == truncation
