"""A model quarantined while serving (a journaled batch failed to apply) is deleted as one quarantined at
recovery is: DELETE lifts it, the name is free again, and a restart recovers the new model, not the old one.

A hostile test (session 60): an imported checkpoint whose guard losses held 1e300 (finite, so the import's checks
took it then; refused since) made a later batch fail to apply (OverflowError in the guards' block statistics); the
model was quarantined, and its DELETE answered 503 "delete it to start it afresh" for good, a create of its name
409, while /readyz listed nothing. Here a batch fails to apply as a bug would make it."""

from __future__ import annotations

import pytest

from tbptt_service.api.app import create_app

from ..state_probe import crash_copy
from .test_durability_recovery import NO_TIMER, feed

pytestmark = pytest.mark.anyio


async def test_a_model_quarantined_while_serving_is_deleted_and_its_name_taken_again(
    make_settings, serve, tmp_path, monkeypatch
) -> None:
    settings = make_settings(**NO_TIMER)
    app = create_app(settings)
    async with serve(app) as client:
        await feed(client, 0, 10)
        config = (await client.get("/v1/models/default")).json()["config"]
        forecaster = app.state.registry.get("default").forecaster

        def failing(items):
            raise OverflowError(34, "Numerical result out of range")

        monkeypatch.setattr(forecaster, "observe_many", failing)  # a bug: the batch is journaled, then fails
        failed = await client.post("/v1/models/default/observations", json={"series": "a", "value": 1.0})
        monkeypatch.undo()
        assert failed.status_code == 500 and "OverflowError" in failed.json()["detail"], failed.text
        refused = await client.post("/v1/models/default/observations", json={"series": "a", "value": 1.0})
        assert refused.status_code == 503 and "is quarantined" in refused.json()["detail"]
        ready = (await client.get("/readyz")).json()
        assert list(ready["quarantined"]) == ["default"] and "OverflowError" in ready["quarantined"]["default"]

        deleted = await client.delete("/v1/models/default")
        assert deleted.status_code == 204, deleted.text
        assert (await client.get("/v1/models/default")).status_code == 404
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        created = await client.post("/v1/models", json={"name": "default", "config": config})
        assert created.status_code == 201, created.text
        fresh = await client.post("/v1/models/default/observations", json={"series": "z", "value": 2.5})
        assert fresh.status_code == 200 and fresh.json()["results"][0]["step"] == 1
        crashed = crash_copy(settings.state_dir, tmp_path / "crashed")

    async with serve(create_app(settings.model_copy(update={"state_dir": crashed}))) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
        series = (await client.get("/v1/models/default/series")).json()
        assert series == {"series": ["z"], "total": 1, "next_offset": None, "next_after": None}
