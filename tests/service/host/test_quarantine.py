"""A log record that cannot apply quarantines its model alone (issue 11, defect 1): the other models
recover and serve; the quarantined one says why and refuses requests with 503 until it is deleted."""

from __future__ import annotations

import pytest

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_service.api.app import create_app
from tbptt_service.storage.event_log import EventLog
from tbptt_service.storage.log_journal import LogJournal
from tbptt_service.storage.observation import Observation

from ..conftest import SMALL_MODEL

pytestmark = pytest.mark.anyio
NO_TIMER = {"checkpoint_interval_s": 0.0, "checkpoint_every_observations": 0}


def poisoned_log(state_dir) -> None:
    """Two models; a batch of 'bad' that cannot apply (3 features for n_features=1) between good ones."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with EventLog(state_dir / "events.sqlite3") as log:
        journal = LogJournal(log)
        journal.record("good", "create_model", {"config": SMALL_MODEL})
        journal.record("bad", "create_model", {"config": SMALL_MODEL})
        journal.append("good", [Observation("a", 1.0, 1.0), Observation("a", 2.0, 2.0)])
        journal.append("bad", [Observation("x", 1.0, 1.0)])
        journal.append("bad", [Observation("x", [1.0, 2.0, 3.0], 2.0)])  # seq 5: fails to apply
        journal.append("bad", [Observation("x", 3.0, 3.0)])  # after it: skipped with its model
        journal.append("good", [Observation("a", 3.0, 3.0)])


async def test_a_record_that_cannot_apply_quarantines_its_model_and_the_others_serve(make_settings, serve) -> None:
    settings = make_settings(**NO_TIMER)
    poisoned_log(settings.state_dir)
    reference = Forecaster(ForecasterConfig.from_dict(SMALL_MODEL))
    reference.observe_many([("a", 1.0), ("a", 2.0)])
    reference.observe_many([("a", 3.0)])
    async with serve(create_app(settings)) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200  # was 503 for every model
        reason = ready.json()["quarantined"]["bad"]
        assert reason.startswith("log record seq 5 (observe) failed to apply: ")
        assert "n_features=1" in reason

        good = await client.get("/v1/models/good/series/a/forecast", params={"horizon": 2})
        assert good.status_code == 200
        assert good.json()["forecast"][0]["mean"] == reference.forecast("a", 2).mean[0]
        post = await client.post("/v1/models/good/observations", json={"series": "a", "value": 4.0, "timestamp": 4})
        assert post.status_code == 200

        info = await client.get("/v1/models/bad")
        assert info.status_code == 503
        assert info.json()["detail"] == f"model 'bad' is quarantined: {reason}; delete it to start it afresh"
        refused = await client.post("/v1/models/bad/observations", json={"series": "x", "value": 4.0})
        assert refused.status_code == 503 and reason in refused.json()["detail"]
        listed = (await client.get("/v1/models")).json()
        assert [m["name"] for m in listed["models"]] == ["good"]
        assert listed["quarantined"] == [{"name": "bad", "reason": reason}]
        taken = await client.post("/v1/models", json={"name": "bad", "config": SMALL_MODEL})
        assert taken.status_code == 409

    # Nothing was checkpointed over it: a restart quarantines it again, for the same reason
    async with serve(create_app(settings)) as client:
        assert (await client.get("/readyz")).json()["quarantined"] == {"bad": reason}
        assert (await client.get("/v1/models/good/series/a")).json()["count"] == 4
        assert (await client.delete("/v1/models/bad")).status_code == 204  # journaled: the way out
        assert "quarantined" not in (await client.get("/readyz")).json()
        created = await client.post("/v1/models", json={"name": "bad", "config": SMALL_MODEL})
        assert created.status_code == 201

    async with serve(create_app(settings)) as client:
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        assert (await client.get("/v1/models/bad")).json()["series_count"] == 0
        assert (await client.get("/v1/models/good/series/a")).json()["count"] == 4


class FailingForecaster(Forecaster):
    """A forecaster that cannot apply a batch holding the series 'boom' (as an out-of-memory would)."""

    def observe_many(self, items, *args, **kwargs):
        if any(series == "boom" for series, _ in items):
            raise MemoryError("simulated: cannot allocate")
        return super().observe_many(items, *args, **kwargs)


async def test_a_journaled_batch_that_fails_to_apply_quarantines_its_model_live_and_after_a_restart(
    make_settings, serve
) -> None:
    settings = make_settings(**NO_TIMER)
    url = "/v1/models/default/observations"
    async with serve(create_app(settings, forecaster_factory=FailingForecaster)) as client:
        assert (await client.post("/v1/models", json={"name": "other", "config": SMALL_MODEL})).status_code == 201
        assert (await client.post(url, json={"series": "a", "value": 1.0})).status_code == 200
        failed = await client.post(url, json={"series": "boom", "value": 1.0})
        assert failed.status_code == 500
        refused = await client.post(url, json={"series": "a", "value": 2.0})
        assert refused.status_code == 503
        assert (
            "model 'default' is quarantined: a journaled batch (log seq 4) failed to apply" in refused.json()["detail"]
        )
        other = await client.post("/v1/models/other/observations", json={"series": "a", "value": 1.0})
        assert other.status_code == 200
    # no checkpoint took the broken state in: the restart applies the record and quarantines the model
    async with serve(create_app(settings, forecaster_factory=FailingForecaster)) as client:
        ready = (await client.get("/readyz")).json()
        assert ready["quarantined"]["default"].startswith("log record seq 4 (observe) failed to apply: ")
        assert (await client.get("/v1/models/other/series/a")).json()["count"] == 1


async def test_a_value_beyond_the_bound_in_an_old_log_quarantines_its_model_and_the_others_serve(
    make_settings, serve
) -> None:
    # The library refuses a value beyond MAX_ABS_VALUE since the bound moved into it: a log journaled
    # before the service's bound existed cannot replay such a record, and its model alone is quarantined.
    settings = make_settings(**NO_TIMER)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with EventLog(settings.state_dir / "events.sqlite3") as log:
        journal = LogJournal(log)
        journal.record("good", "create_model", {"config": SMALL_MODEL})
        journal.record("old", "create_model", {"config": SMALL_MODEL})
        journal.append("good", [Observation("a", 1.0, 1.0)])
        journal.append("old", [Observation("x", 1.0, 1.0), Observation("y", 1e308, 1.0)])  # seq 4
    async with serve(create_app(settings)) as client:
        reason = (await client.get("/readyz")).json()["quarantined"]["old"]
        assert reason.startswith("log record seq 4 (observe) failed to apply: ")
        assert "observation 1: series 'y': value 1e+308 is out of range" in reason
        assert (await client.get("/v1/models/good/series/a")).json()["count"] == 1


async def test_readyz_gives_a_quarantine_reason_only_to_a_request_with_the_api_key(make_settings, serve) -> None:
    settings = make_settings(api_key="s3cret", **NO_TIMER)
    poisoned_log(settings.state_dir)
    async with serve(create_app(settings)) as client:
        anonymous = await client.get("/readyz")
        keyed = await client.get("/readyz", headers={"Authorization": "Bearer s3cret"})
        wrong = await client.get("/readyz", headers={"Authorization": "Bearer guess"})
    assert anonymous.status_code == keyed.status_code == wrong.status_code == 200  # a probe needs no key
    assert (
        anonymous.json()
        == wrong.json()
        == {
            "status": "ready",
            "quarantined_models": 1,
            "detail": "send the API key (Authorization: Bearer <key>) for the reasons",
        }
    )
    assert keyed.json()["quarantined"]["bad"].startswith("log record seq 5 (observe) failed to apply: ")


async def test_a_model_journaled_with_a_bound_since_tightened_serves_with_the_value_moved_to_it(
    make_settings, serve
) -> None:
    # interval_level=1e-9 and truncation_bias=2 were taken before their ranges became [0.5, 0.999] and
    # (0, 1]: such a model in an old log is made again with the values at the nearest ends, not quarantined
    # (a hostile test: an upgrade quarantined them, and only a delete, losing their state, lifted it)
    settings = make_settings(**NO_TIMER)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    old = {**SMALL_MODEL, "interval_level": 1e-9, "truncation_bias": 2.0}
    with EventLog(settings.state_dir / "events.sqlite3") as log:
        journal = LogJournal(log)
        journal.record("good", "create_model", {"config": SMALL_MODEL})
        journal.record("old", "create_model", {"config": old})
        journal.append("good", [Observation("a", 1.0, 1.0)])
        journal.append("old", [Observation("x", 1.0, 1.0), Observation("x", 2.0, 2.0)])
    async with serve(create_app(settings)) as client:
        ready = (await client.get("/readyz")).json()
        config = (await client.get("/v1/models/old")).json()["config"]
        forecast = await client.get("/v1/models/old/series/x/forecast")
        assert (await client.get("/v1/models/good/series/a")).json()["count"] == 1
    assert not ready.get("quarantined"), ready
    assert (config["interval_level"], config["truncation_bias"]) == (0.5, 1.0)
    assert forecast.status_code == 200 and forecast.json()["level"] == 0.5
