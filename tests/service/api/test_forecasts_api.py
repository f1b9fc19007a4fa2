"""GET .../series/{series}/forecast: the library's forecast, with the step and update counter it came from."""

from __future__ import annotations

import pytest

from tbptt_online import Forecaster, ForecasterConfig

from ..conftest import SMALL_MODEL
from .encoding_threads import record_encoding_threads

pytestmark = pytest.mark.anyio
URL = "/v1/models/default/observations"


async def test_forecast_equals_the_library_forecast(client_for) -> None:
    values = [0.5, 1.0, 0.0, 1.5, 1.0, 2.0, 1.0, 2.5, 2.0]
    reference = Forecaster(ForecasterConfig.from_dict(SMALL_MODEL))
    reference.observe_many([("s", v) for v in values])
    expected = reference.forecast("s", horizon=4, level=0.8)
    async with client_for() as client:
        await client.post(URL, json={"observations": [{"series": "s", "value": v} for v in values]})
        response = await client.get("/v1/models/default/series/s/forecast", params={"horizon": 4, "level": 0.8})
    assert response.status_code == 200
    assert response.json() == {
        "model": "default",
        "series": "s",
        "horizon": 4,
        "level": 0.8,
        "step": 9,
        "update_count": 2,
        "forecast": [
            {
                "step": k + 1,
                "timestamp": None,  # untimestamped values: no cadence
                "mean": expected.mean[k],
                "lower": expected.lower[k],
                "upper": expected.upper[k],
            }
            for k in range(4)
        ],
    }


async def test_no_interval_before_a_scale_is_null(client_for) -> None:
    # one value seen: a mean but no scale, so no interval (was mean +- 1e-9: a certainty nobody has);
    # nothing seen: no forecast at all. JSON has no NaN: the library's None is null
    async with client_for() as client:
        posted = await client.post(
            URL, json={"observations": [{"series": "s", "value": 2.5}, {"series": "e", "value": None}]}
        )
        one = await client.get("/v1/models/default/series/s/forecast", params={"horizon": 2})
        empty = await client.get("/v1/models/default/series/e/forecast")
        await client.post(URL, json={"series": "s", "value": 3.5})
        recent = await client.get("/v1/models/default/series/s/recent")  # what the dashboard draws
    first, missing = posted.json()["results"]
    assert first["forecast_next"]["lower"] is None and first["forecast_next"]["upper"] is None
    assert first["forecast_next"]["mean"] == pytest.approx(2.5)
    assert missing["forecast_next"] == {"mean": None, "lower": None, "upper": None}
    assert [(step["lower"], step["upper"]) for step in one.json()["forecast"]] == [(None, None)] * 2
    assert empty.json()["forecast"] == [{"step": 1, "timestamp": None, "mean": None, "lower": None, "upper": None}]
    made = [point["forecast_made"] for point in recent.json()["observations"]]
    assert made[0] == {"mean": None, "lower": None, "upper": None}  # the first value: nothing forecast
    assert made[1]["mean"] == pytest.approx(2.5) and (made[1]["lower"], made[1]["upper"]) == (None, None)


async def test_level_defaults_to_the_models_interval_level(client_for) -> None:
    async with client_for() as client:
        await client.post(URL, json={"series": "s", "value": 1.0})
        response = await client.get("/v1/models/default/series/s/forecast")
    assert (response.json()["level"], response.json()["horizon"], len(response.json()["forecast"])) == (0.9, 1, 1)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"horizon": 6}, "horizon=6 is over TBPTT_MAX_HORIZON=5"),
        ({"horizon": 0}, "horizon: Input should be greater than or equal to 1"),
        ({"horizon": "two"}, "horizon: 'two' is not an integer written in digits"),
        ({"level": 1.0}, "level: Input should be less than or equal to 0.999999999"),
        ({"level": "nan"}, "level: Input should be"),
    ],
)
async def test_bad_forecast_parameters_are_422(client_for, params, fragment) -> None:
    async with client_for(max_horizon=5) as client:
        await client.post(URL, json={"series": "s", "value": 1.0})
        response = await client.get("/v1/models/default/series/s/forecast", params=params)
    assert response.status_code == 422
    assert fragment in response.json()["detail"]


async def test_forecast_of_an_unknown_series_is_404(client_for) -> None:
    async with client_for() as client:
        response = await client.get("/v1/models/default/series/ghost/forecast")
    assert response.status_code == 404
    assert response.json() == {"detail": "series 'ghost' is unknown in model 'default'"}


async def test_a_slow_models_forecast_does_not_hold_another_models_forecast(client_for, monkeypatch) -> None:
    # a hostile test (session 48): every model's forecasts ran on one thread, and a large network's forecasts
    # at h = 1,000 (12.6 s each) held another model's 12-step forecast for up to 25.3 s
    import asyncio
    import time

    from tbptt_online.view import ForecasterView

    forecast_many = ForecasterView.forecast_many

    def slow_for_series_slow(self, requests):
        if any(request[0] == "slow" for request in requests):
            time.sleep(1.5)
        return forecast_many(self, requests)

    monkeypatch.setattr(ForecasterView, "forecast_many", slow_for_series_slow)
    async with client_for() as client:
        await client.post("/v1/models", json={"name": "other", "config": SMALL_MODEL})
        await client.post(URL, json={"series": "slow", "value": 1.0})
        await client.post("/v1/models/other/observations", json={"series": "fast", "value": 1.0})
        started = time.perf_counter()

        async def timed(path: str) -> tuple[int, float]:
            response = await client.get(path, params={"horizon": 12})
            return response.status_code, time.perf_counter() - started

        slow = asyncio.create_task(timed("/v1/models/default/series/slow/forecast"))
        await asyncio.sleep(0.2)  # the slow forecast is being computed
        fast = await timed("/v1/models/other/series/fast/forecast")
        slow_done = await slow
        assert fast[0] == slow_done[0] == 200
        assert fast[1] < 1.0 <= 1.5 <= slow_done[1], (fast, slow_done)
        lanes = client._transport.app.state.forecasts  # each model's lane; a deleted model's is stopped
        assert lanes.names() == ["default", "other"]
        assert (await client.delete("/v1/models/other")).status_code == 204
        assert lanes.names() == ["default"]


async def test_deleting_a_model_does_not_wait_for_its_forecasts(client_for, monkeypatch) -> None:
    # a review (session 48): the DELETE waited for the model's forecast thread, 2.7 s behind forecasts of 1.5 s
    import asyncio
    import time

    from tbptt_online.view import ForecasterView

    forecast_many = ForecasterView.forecast_many

    def slow(self, requests):
        time.sleep(1.5)
        return forecast_many(self, requests)

    monkeypatch.setattr(ForecasterView, "forecast_many", slow)
    async with client_for() as client:
        await client.post("/v1/models", json={"name": "other", "config": SMALL_MODEL})
        await client.post("/v1/models/other/observations", json={"series": "s", "value": 1.0})
        pending = asyncio.create_task(client.get("/v1/models/other/series/s/forecast"))
        await asyncio.sleep(0.2)  # its forecast is being computed
        started = time.perf_counter()
        deleted = await client.delete("/v1/models/other")
        took = time.perf_counter() - started
        answered = await pending
    assert deleted.status_code == 204 and took < 1.0, took
    assert answered.status_code == 200  # from the snapshot it read, answered all the same


async def test_a_wide_models_long_forecast_is_encoded_from_a_worker_thread(client_for, monkeypatch) -> None:
    # a hostile test (session 48): 8 forecasts of 43.7 MB each (1,024 features, h = 1,000) were encoded on the event
    # loop, /healthz waiting up to 0.79 s; an answer of OFF_LOOP_NUMBERS numbers or more is now made off it
    import threading

    from tbptt_service.api.json_answers import OFF_LOOP_NUMBERS
    from tbptt_service.api.routes import forecasts as route

    encoded_on = record_encoding_threads(monkeypatch, route)
    wide, long = 64, 400  # 25,600 numbers
    async with client_for() as client:
        await client.post("/v1/models", json={"name": "wide", "config": {**SMALL_MODEL, "n_features": wide}})
        await client.post("/v1/models/wide/observations", json={"series": "s", "value": [1.0] * wide})
        big = await client.get("/v1/models/wide/series/s/forecast", params={"horizon": long})
        small = await client.get("/v1/models/wide/series/s/forecast", params={"horizon": 2})
    loop_thread = threading.current_thread().name
    assert big.status_code == small.status_code == 200 and len(big.json()["forecast"]) == long
    assert encoded_on[0] != loop_thread and encoded_on[1] == loop_thread, encoded_on
    assert long * wide >= OFF_LOOP_NUMBERS > 2 * wide
