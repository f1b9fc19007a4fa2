"""/v1/models/{model}/series: paged listing, statistics as the library computes them, forgetting."""

from __future__ import annotations

import pytest

from tbptt_online import Forecaster, ForecasterConfig

from ..conftest import SMALL_MODEL
from .encoding_threads import record_encoding_threads

pytestmark = pytest.mark.anyio
URL = "/v1/models/default/observations"


async def test_listing_is_sorted_and_paged(client_for) -> None:
    names = ["e", "b", "d", "a", "c"]
    async with client_for() as client:
        await client.post(URL, json={"observations": [{"series": n, "value": 1.0} for n in names]})
        pages, offset = [], 0
        while offset is not None:
            page = (await client.get("/v1/models/default/series", params={"offset": offset, "limit": 2})).json()
            assert page["total"] == 5
            pages.append(page["series"])
            offset = page["next_offset"]
        assert pages == [["a", "b"], ["c", "d"], ["e"]]
        assert (await client.get("/v1/models/default/series", params={"limit": 0})).status_code == 422


async def test_a_page_of_statistics_is_each_series_own_in_sorted_order(client_for) -> None:
    # (a new user, session 55: finding the series a model serves poorly took one GET per series)
    names = ["e", "b", "d", "a", "c"]
    async with client_for() as client:
        for step in range(6):
            body = {"observations": [{"series": n, "value": float(i + step % 3)} for i, n in enumerate(names)]}
            await client.post(URL, json=body)
        pages, offset = [], 0
        while offset is not None:
            answer = await client.get("/v1/models/default/series-stats", params={"offset": offset, "limit": 2})
            assert answer.status_code == 200
            page = answer.json()
            assert page["total"] == 5
            pages.append(page["series"])
            offset = page["next_offset"]
        assert [[s["series"] for s in page] for page in pages] == [["a", "b"], ["c", "d"], ["e"]]
        for page in pages:
            for stats in page:  # each one what the series' own statistics answer says
                assert stats == (await client.get(f"/v1/models/default/series/{stats['series']}")).json()
        assert all(s["count"] == 6 and s["mae"] is not None for page in pages for s in page)  # scored, not blank
        assert (await client.get("/v1/models/default/series-stats", params={"limit": 1001})).status_code == 422
        missing = await client.get("/v1/models/nothing/series-stats")
        assert missing.status_code == 404 and "nothing" in missing.json()["detail"]


async def test_statistics_equal_the_library_and_carry_the_last_timestamp(client_for) -> None:
    values = [1.0, 2.0, 1.5, 3.0, 2.5, 2.0, 4.0]
    reference = Forecaster(ForecasterConfig.from_dict(SMALL_MODEL))
    for v in values:
        reference.observe("site/1", v)
    expected = reference.series_stats("site/1")
    async with client_for() as client:
        for i, v in enumerate(values):
            await client.post(URL, json={"series": "site/1", "value": v, "timestamp": f"2024-05-01T00:0{i}:00Z"})
        response = await client.get("/v1/models/default/series/site/1")
    assert response.status_code == 200
    assert response.json() == {
        "series": "site/1",
        "count": 7,
        "last_timestamp": 1714521960.0,  # 2024-05-01T00:06:00Z
        "mae": expected.mae,
        "rmse": expected.rmse,
        "naive_mae": expected.naive_mae,
        "naive_rmse": expected.naive_rmse,
        "coverage": expected.coverage,
        "interval_level": 0.9,
        "recent_mae": expected.recent_mae,
        "recent_naive_mae": expected.recent_naive_mae,
        "flat_run": expected.flat_run,
        "held": expected.held,
        "seasons": expected.seasons,
        "multiplicative": expected.multiplicative,
        "never_negative": expected.never_negative,
        "members": [{"name": m.name, "mae": m.mae, "weight": m.weight} for m in expected.members],
        "outliers": expected.outliers,
        "restarts": 0,
        "cadence": None,  # 6 steps of 60 s: not known before 8 in a row
        "coverage_by_horizon": [
            {"horizon": c.horizon, "coverage": c.coverage, "scored": c.scored, "recent": c.recent}
            for c in expected.coverage_by_horizon
        ],
    }
    # horizon h's width is its own from origin h + 1 (its first error scored at step h + 1): values 2h + 1 .. 7
    assert [c["scored"] for c in response.json()["coverage_by_horizon"]][:4] == [5, 3, 1, 0]
    assert expected.never_negative is True and expected.multiplicative is True  # every value > 0
    assert len(expected.members) == 24 and abs(sum(m.weight for m in expected.members) - 1.0) < 1e-12


async def test_deleting_a_series_forgets_it_and_its_timestamps(client_for) -> None:
    async with client_for() as client:
        await client.post(URL, json={"series": "a", "value": 1.0, "timestamp": 50})
        await client.post(URL, json={"series": "b", "value": 1.0})
        assert (await client.delete("/v1/models/default/series/a")).status_code == 204
        assert (await client.get("/v1/models/default/series/a")).status_code == 404
        assert (await client.get("/v1/models/default/series/a/forecast")).status_code == 404
        assert (await client.get("/v1/models/default/series")).json()["series"] == ["b"]
        missing = await client.delete("/v1/models/default/series/a")
        assert missing.status_code == 404
        assert missing.json() == {"detail": "series 'a' is unknown in model 'default'"}
        # A new series under the old name starts from scratch: step 1, and an earlier timestamp is fine.
        again = await client.post(URL, json={"series": "a", "value": 2.0, "timestamp": 10})
        assert again.status_code == 200 and again.json()["results"][0]["step"] == 1
        assert (await client.get("/v1/models/default/series/b")).json()["count"] == 1


async def test_unknown_series_is_404(client_for) -> None:
    async with client_for() as client:
        response = await client.get("/v1/models/default/series/ghost")
    assert response.status_code == 404
    assert response.json() == {"detail": "series 'ghost' is unknown in model 'default'"}


async def test_a_page_of_statistics_is_made_and_encoded_on_a_worker_thread(client_for, monkeypatch) -> None:
    # a hostile test (session 57): FastAPI validated the page's dict against its response model on the event loop,
    # 0.5 s for a page of 1,000 series, and 8 readers of pages held every other request for up to 4.8 s
    import threading

    from tbptt_service.api.routes import series as route

    encoded_on = record_encoding_threads(monkeypatch, route)
    async with client_for() as client:
        await client.post(URL, json={"observations": [{"series": n, "value": 1.0} for n in "abc"]})
        page = await client.get("/v1/models/default/series-stats")
        one = await client.get("/v1/models/default/series/b")
    assert page.status_code == one.status_code == 200
    assert [s["series"] for s in page.json()["series"]] == ["a", "b", "c"] and page.json()["series"][1] == one.json()
    loop_thread = threading.current_thread().name
    assert len(encoded_on) == 2 and loop_thread not in encoded_on, encoded_on
