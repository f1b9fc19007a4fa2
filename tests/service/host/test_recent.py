"""GET /v1/models/{model}/series/{series}/recent: the last values with the forecasts made for them."""

from __future__ import annotations

import threading

import httpx
import pytest

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_service.api.app import create_app
from tbptt_service.host.recent_results import RecentResults
from tbptt_service.storage.observation import Observation

from ..conftest import SMALL_MODEL
from ..state_probe import crash_copy

pytestmark = pytest.mark.anyio
T0 = 1_700_000_000.0


async def post(client: httpx.AsyncClient, observations: list[dict]) -> list[dict]:
    response = await client.post("/v1/models/default/observations", json={"observations": observations})
    assert response.status_code == 200, response.text
    return response.json()["results"]


async def test_recent_gives_each_value_with_the_forecast_made_for_it(client_for) -> None:
    async with client_for() as client:
        sent = [{"series": "a", "value": v, "timestamp": T0 + 60 * i} for i, v in enumerate([1.0, 2.5, None, 3.5])]
        results = await post(client, sent)
        results += await post(client, [{"series": "a", "value": 4.0}, {"series": "b", "value": 9.0}])
        response = await client.get("/v1/models/default/series/a/recent")
    assert response.status_code == 200
    body = response.json()
    assert (body["model"], body["series"]) == ("default", "a")
    expected = [
        {k: r[k] for k in ("step", "timestamp", "value", "forecast_made", "outlier", "held")}
        for r in results
        if r["series"] == "a"
    ]
    assert body["observations"] == expected
    assert [o["step"] for o in expected] == [1, 2, 3, 4, 5] and expected[-1]["timestamp"] is None


async def test_recent_returns_the_last_limit_values_oldest_first(client_for) -> None:
    async with client_for() as client:
        await post(client, [{"series": "s", "value": float(i)} for i in range(12)])
        body = (await client.get("/v1/models/default/series/s/recent", params={"limit": 3})).json()
        too_many = await client.get("/v1/models/default/series/s/recent", params={"limit": 100_000})
    assert [(o["step"], o["value"]) for o in body["observations"]] == [(10, 9.0), (11, 10.0), (12, 11.0)]
    assert too_many.status_code == 422


async def test_recent_of_a_deleted_or_unknown_series_is_404(client_for) -> None:
    async with client_for() as client:
        await post(client, [{"series": "gone", "value": 1.0}, {"series": "gone", "value": 2.0}])
        assert (await client.delete("/v1/models/default/series/gone")).status_code == 204
        deleted = await client.get("/v1/models/default/series/gone/recent")
        unknown_model = await client.get("/v1/models/nope/series/gone/recent")
        await post(client, [{"series": "gone", "value": 5.0}])  # the name again: a new series, a new history
        fresh = (await client.get("/v1/models/default/series/gone/recent")).json()["observations"]
    assert deleted.status_code == 404 and "gone" in deleted.json()["detail"]
    assert unknown_model.status_code == 404 and "nope" in unknown_model.json()["detail"]
    assert [(o["step"], o["value"]) for o in fresh] == [(1, 5.0)]


def test_recent_results_keep_at_most_capacity_per_series() -> None:
    forecaster = Forecaster(ForecasterConfig(hidden_size=4))
    recent = RecentResults(capacity=4)
    for i in range(10):
        batch = [Observation("x", float(i)), Observation("y", float(-i))]
        recent.record(batch, forecaster.observe_many([(o.series, o.value) for o in batch]))
    assert [p.value for p in recent.read("x", limit=100)] == [6.0, 7.0, 8.0, 9.0]
    assert [p.step for p in recent.read("y", limit=2)] == [9, 10]
    with pytest.raises(ValueError, match="capacity=0 is invalid"):
        RecentResults(capacity=0)


def test_recent_results_keep_every_field_exactly_with_several_features_and_wrap_around() -> None:
    forecaster = Forecaster(ForecasterConfig(hidden_size=4, n_features=2))
    recent, plain = RecentResults(capacity=3), RecentResults(capacity=3)
    expected: dict[str, list[tuple]] = {"x": [], "y": []}
    for i in range(7):
        batch = [
            Observation("x", [float(i), None if i % 2 else -float(i)], T0 + i if i % 3 else None),
            Observation("y", None),
            Observation("x", [0.5, 0.25]),  # a second value of x in the same batch: a second tick
        ]
        results = forecaster.observe_many([(o.series, o.value) for o in batch])
        recent.record(batch, results)
        plain.record(batch, list(results))  # plain StepResults, not the lazy columns
        for obs, result in zip(batch, results, strict=True):
            expected[obs.series].append((result.step, obs.timestamp, result.value, result.forecast_made))
    for series in ("x", "y"):
        want = expected[series][-3:]
        for store in (recent, plain):
            got = [(p.step, p.timestamp, p.value, p.forecast_made) for p in store.read(series, limit=10)]
            assert got == want
            assert [p.step for p in store.read(series, limit=2)] == [w[0] for w in want[-2:]]
    assert want[-1][2] == [None, None]  # y: a missing value of two features


@pytest.mark.parametrize("features", [1, 2])
async def test_recent_marks_the_values_taken_as_outliers(client_for, features) -> None:
    """A spike after 40 seasonal values: its point says ``outlier``, as its result did, the
    others do not (one feature and several: the rings' two row layouts)."""
    model = {**SMALL_MODEL, "season_length": 12, "n_features": features}

    def value(v: float) -> float | list[float]:
        return v if features == 1 else [v, 2.0 * v]

    async with client_for(default_model=model) as client:
        await post(client, [{"series": "s", "value": value(10.0 + (i % 12) / 4)} for i in range(40)])
        spike = await post(client, [{"series": "s", "value": value(1e6)}, {"series": "t", "value": value(1.0)}])
        points = (await client.get("/v1/models/default/series/s/recent", params={"limit": 41})).json()
    assert spike[0]["outlier"] is True and spike[1]["outlier"] is False
    assert [p["outlier"] for p in points["observations"]] == [False] * 40 + [True]


@pytest.mark.parametrize("features", [1, 2])
async def test_recent_marks_the_values_held_back_as_a_stuck_reading(client_for, features) -> None:
    """A stuck reading after 60 values: its points say ``held`` where its results did (one feature and several:
    the rings' two row layouts; a held value is no outlier)."""
    model = {**SMALL_MODEL, "n_features": features}
    values = [round(10.0 + (i % 12) / 4 + 0.01 * (i % 7), 2) for i in range(60)] + [12.34] * 25

    def value(v: float) -> float | list[float]:
        return v if features == 1 else [v, 2.0 * v]

    async with client_for(default_model=model) as client:
        results = await post(client, [{"series": "s", "value": value(v)} for v in values])
        points = (await client.get("/v1/models/default/series/s/recent", params={"limit": 85})).json()
    flags = [(p["held"], p["outlier"]) for p in points["observations"]]
    assert flags == [(r["held"], r["outlier"]) for r in results]
    assert any(held for held, _ in flags) and not any(held and outlier for held, outlier in flags)


def test_saved_rings_restore_every_series_read_as_before_wrapped_or_not() -> None:
    """``saved`` then ``restored``: each series reads the same points, a wrapped ring's too, and a
    ring restored with a smaller capacity keeps its newest rows."""
    forecaster = Forecaster(ForecasterConfig(hidden_size=4, n_features=2))
    recent = RecentResults(capacity=4)
    for i in range(7):  # x wraps (7 rows in 4), y holds 3
        batch = [Observation("x", [float(i), -float(i)], T0 + i)]
        batch += [Observation("y", [0.5 * i, None])] if i >= 4 else []
        recent.record(batch, forecaster.observe_many([(o.series, o.value) for o in batch]))
    saved = recent.saved()
    assert saved is not None and saved.series == ("x", "y") and saved.counts == (4, 3)
    again = RecentResults.restored(saved, capacity=4)
    for series in ("x", "y"):
        assert again.read(series, limit=10) == recent.read(series, limit=10)
    smaller = RecentResults.restored(saved, capacity=2)
    assert [p.step for p in smaller.read("x", limit=10)] == [6, 7]
    batch = [Observation("x", [9.0, 9.0])]  # the restored ring goes on as the original would
    results = forecaster.observe_many([(o.series, o.value) for o in batch])
    again.record(batch, results)
    recent.record(batch, results)
    assert again.read("x", limit=10) == recent.read("x", limit=10)
    assert RecentResults().saved() is None and RecentResults.restored(None).read("x", limit=1) == []


async def recent_of(client: httpx.AsyncClient, series: tuple[str, ...]) -> dict[str, list[dict]]:
    answers = {s: await client.get(f"/v1/models/default/series/{s}/recent", params={"limit": 500}) for s in series}
    assert all(a.status_code == 200 for a in answers.values())
    return {s: a.json()["observations"] for s, a in answers.items()}


async def test_a_clean_restart_gives_back_the_recent_results(make_settings, serve) -> None:
    """Until session 50 the rings were memory only, and the checkpoint of a clean stop left the
    log nothing to refill them from: the dashboard drew nothing after a restart."""
    settings = make_settings(checkpoint_interval_s=0.0, checkpoint_every_observations=0)
    async with serve(create_app(settings)) as client:
        for i in range(30):
            await post(
                client,
                [{"series": "a", "value": float(i % 5), "timestamp": T0 + 60 * i}, {"series": "b", "value": 1.0 + i}],
            )
        before = await recent_of(client, ("a", "b"))
    assert [len(before[s]) for s in ("a", "b")] == [30, 30]
    app = create_app(settings)
    async with serve(app) as client:
        assert app.state.durability.report.applied == 0  # all from the shutdown's checkpoint
        assert await recent_of(client, ("a", "b")) == before
        after = await post(client, [{"series": "a", "value": 3.0, "timestamp": T0 + 60 * 30}])
        assert (await recent_of(client, ("a",)))["a"][-1]["step"] == after[0]["step"] == 31


async def test_a_crash_gives_back_the_recent_results_from_the_checkpoint_and_the_log(
    make_settings, serve, tmp_path
) -> None:
    """Rings saved with the checkpoint, then the values logged after it replayed into them."""
    settings = make_settings(checkpoint_interval_s=0.0, checkpoint_every_observations=0)
    app = create_app(settings)
    async with serve(app) as client:
        await post(client, [{"series": "s", "value": float(i % 7)} for i in range(20)])
        await app.state.durability.checkpoint(app.state.registry)
        await post(client, [{"series": "s", "value": float(i % 7)} for i in range(20, 26)])
        crashed = crash_copy(settings.state_dir, tmp_path / "crashed")
        before = await recent_of(client, ("s",))
    recovered = create_app(settings.model_copy(update={"state_dir": crashed}))
    async with serve(recovered) as client:
        assert recovered.state.durability.report.applied > 0
        assert await recent_of(client, ("s",)) == before
    assert [p["step"] for p in before["s"]] == list(range(1, 27))


async def test_a_wide_series_recent_values_are_read_and_encoded_off_the_event_loop(make_settings, serve) -> None:
    """A hostile test (session 50): 500 values of a 1,024-feature series, a 35.5 MB answer, were read and encoded
    on the event loop, and /healthz waited up to 0.47 s; a narrow one's stay on it (a thread costs more)."""
    app = create_app(make_settings(default_model={**SMALL_MODEL, "n_features": 64}))
    async with serve(app) as client:
        await post(client, [{"series": "w", "value": [float(i + k) for k in range(64)]} for i in range(5)])
        worker = app.state.registry.get("default")
        threads: list[int] = []
        read = worker.recent.read
        worker.recent.read = lambda *args: threads.append(threading.get_ident()) or read(*args)
        loop_thread = threading.get_ident()
        wide = await client.get("/v1/models/default/series/w/recent", params={"limit": 500})
        narrow = await client.get("/v1/models/default/series/w/recent", params={"limit": 1})
    assert wide.status_code == narrow.status_code == 200
    assert [p["value"][63] for p in wide.json()["observations"]] == [63.0, 64.0, 65.0, 66.0, 67.0]
    assert threads[0] != loop_thread and threads[1] == loop_thread  # 500 x (3 + 4 x 64) numbers; 1 x 259
