"""GET /v1/models/{model}/forecasts: a page of series' forecasts, each the library's, in sorted order, paged as
series-stats; its limits refused with 422s naming them."""

from __future__ import annotations

import pytest

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_service.api.routes.forecast_pages import MAX_PAGE_STEPS

from ..conftest import SMALL_MODEL

pytestmark = pytest.mark.anyio
URL = "/v1/models/default/observations"
NAMES = ["e", "b", "d", "a", "c"]
T0 = 1_714_521_600  # 2024-05-01T00:00:00Z


def rows(step: int) -> list[dict]:
    """One minute's values of the five series, in NAMES' order (not sorted), timestamped."""
    return [
        {"series": n, "value": float(i + (step * (i + 1)) % 5), "timestamp": T0 + 60 * step}
        for i, n in enumerate(NAMES)
    ]


async def test_a_page_of_forecasts_is_each_series_library_forecast_in_sorted_order(client_for) -> None:
    # a new user (session 56): 300 series' day-ahead forecasts took 300 GETs
    reference = Forecaster(ForecasterConfig.from_dict(SMALL_MODEL))
    async with client_for() as client:
        for step in range(9):
            body = {"observations": rows(step)}
            assert (await client.post(URL, json=body)).status_code == 200
            reference.observe_many([(o["series"], o["value"]) for o in body["observations"]])
        pages, offset = [], 0
        while offset is not None:
            query = {"horizon": 3, "level": 0.8, "offset": offset, "limit": 2}
            answer = await client.get("/v1/models/default/forecasts", params=query)
            assert answer.status_code == 200, answer.text
            page = answer.json()
            assert page["total"] == 5
            pages.append(page["forecasts"])
            offset = page["next_offset"]
        single = (await client.get("/v1/models/default/series/c/forecast", params={"horizon": 3, "level": 0.8})).json()
    assert [[f["series"] for f in page] for page in pages] == [["a", "b"], ["c", "d"], ["e"]]
    view = reference.view()
    for page in pages:  # each page one batch of the library's forecasts: the same numbers, bit for bit
        expected = view.forecast_many([(f["series"], 3, 0.8) for f in page])
        for answer, forecast in zip(page, expected, strict=True):
            assert (answer["model"], answer["horizon"], answer["level"]) == ("default", 3, 0.8)
            assert (answer["step"], answer["update_count"]) == (forecast.step, forecast.update_count) == (9, 2)
            assert [s["mean"] for s in answer["forecast"]] == forecast.mean
            assert [(s["lower"], s["upper"]) for s in answer["forecast"]] == list(
                zip(forecast.lower, forecast.upper, strict=True)
            )
            # due one, two and three minutes after the series' last value (its cadence, 60 s, once known)
            assert [s["timestamp"] for s in answer["forecast"]] == [T0 + 60 * (8 + k) for k in (1, 2, 3)]
    by_page = pages[1][0]
    assert {k: v for k, v in by_page.items() if k != "forecast"} == {k: v for k, v in single.items() if k != "forecast"}
    for mine, its in zip(by_page["forecast"], single["forecast"], strict=True):  # to rounding, as batched ones
        assert mine["step"] == its["step"] and mine["timestamp"] == its["timestamp"]
        assert mine["mean"] == pytest.approx(its["mean"], rel=1e-12)


async def test_an_empty_model_has_an_empty_page_and_a_page_past_the_end_is_empty(client_for) -> None:
    async with client_for() as client:
        empty = await client.get("/v1/models/default/forecasts")
        assert empty.status_code == 200 and empty.json() == {
            "forecasts": [],
            "total": 0,
            "next_offset": None,
            "next_after": None,
        }
        await client.post(URL, json={"observations": rows(0)})
        past = await client.get("/v1/models/default/forecasts", params={"offset": 5})
        assert past.json() == {"forecasts": [], "total": 5, "next_offset": None, "next_after": None}
        first = (await client.get("/v1/models/default/forecasts")).json()  # horizon 1, 100 a page: all five
        assert [f["series"] for f in first["forecasts"]] == sorted(NAMES) and first["next_offset"] is None
        assert all(len(f["forecast"]) == 1 and f["level"] == 0.9 for f in first["forecasts"])


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"horizon": 6}, "horizon=6 is over TBPTT_MAX_HORIZON=5"),
        ({"horizon": 0}, "horizon"),
        ({"limit": 1001}, "limit"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"level": 1.5}, "level"),
        ({"level": "nan"}, "level"),
        ({"horizon": 5, "limit": 1000, "offset": 0}, None),  # 5,000 steps: taken
    ],
)
async def test_a_page_refuses_a_bad_query_naming_it(client_for, query: dict, message: str | None) -> None:
    async with client_for(max_horizon=5) as client:
        await client.post(URL, json={"observations": rows(0)})
        answer = await client.get("/v1/models/default/forecasts", params=query)
    if message is None:
        assert answer.status_code == 200 and len(answer.json()["forecasts"]) == 5
    else:
        assert answer.status_code == 422 and message in answer.text


async def test_a_page_over_its_steps_is_refused_saying_how_many_series_fit(client_for) -> None:
    async with client_for(max_horizon=1000) as client:
        await client.post(URL, json={"observations": rows(0)})
        over = await client.get("/v1/models/default/forecasts", params={"horizon": 1000, "limit": 101})
        fits = await client.get("/v1/models/default/forecasts", params={"horizon": 1000, "limit": 100})
        missing = await client.get("/v1/models/nothing/forecasts")
    assert MAX_PAGE_STEPS == 100_000
    assert over.status_code == 422
    assert "limit=101 series x horizon=1000 is 101,000 forecast steps, over 100,000 a page" in over.json()["detail"]
    assert "(limit <= 100)" in over.json()["detail"]
    assert fits.status_code == 200 and len(fits.json()["forecasts"][0]["forecast"]) == 1000
    assert missing.status_code == 404 and "nothing" in missing.json()["detail"]


async def test_a_horizon_over_a_pages_steps_for_one_series_is_refused_saying_so(client_for) -> None:
    # The review of session 60: the refusal asked for "limit <= 1" where one series' horizon alone was over the
    # page's steps, so the page it asked for was refused again
    async with client_for(max_horizon=200_000) as client:
        await client.post(URL, json={"observations": rows(0)})
        over = await client.get("/v1/models/default/forecasts", params={"horizon": 100_001, "limit": 1})
    assert over.status_code == 422
    detail = over.json()["detail"]
    assert "limit=1 series x horizon=100001 is 100,001 forecast steps, over 100,000 a page" in detail
    assert "one series is over it already: ask for horizon <= 100,000 a page" in detail
    assert "limit <=" not in detail
