"""Query parameters: a route answers 422 for one it does not read, or one sent twice (both were
silently ignored or read as the last: ``?h=5`` served the default horizon of 1, a new user's report;
``?horizon=3&horizon=5`` served 5, a hostile test's)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio
SERIES = "/v1/models/default/series"


@pytest.mark.parametrize(
    ("path", "query", "detail"),
    [
        (f"{SERIES}/a/forecast", "h=5", "h: 'h' is no parameter of this route: it reads horizon, level"),
        (f"{SERIES}/a/forecast", "level=0.9&x=1", "x: 'x' is no parameter of this route: it reads horizon, level"),
        (f"{SERIES}/a/forecast", "horizon=3&horizon=5", "horizon: sent more than once: send each parameter once"),
        (f"{SERIES}/a/forecast", "level=0.9&level=0.5", "level: sent more than once: send each parameter once"),
        (SERIES, "limt=5", "limt: 'limt' is no parameter of this route: it reads limit, offset"),
        (f"{SERIES}/a/recent", "limit=5&limit=6", "limit: sent more than once: send each parameter once"),
    ],
)  # fmt: skip
async def test_an_unknown_or_repeated_query_parameter_is_422_naming_it(client_for, path, query, detail) -> None:
    async with client_for() as client:
        await client.post(f"{SERIES[:-7]}/observations", json={"series": "a", "value": 1.0})
        response = await client.get(f"{path}?{query}")
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == detail


async def test_the_parameters_a_route_reads_are_taken_once_each(client_for) -> None:
    async with client_for() as client:
        await client.post(f"{SERIES[:-7]}/observations", json={"series": "a", "value": 1.0})
        forecast = await client.get(f"{SERIES}/a/forecast?horizon=3&level=0.8")
        listed = await client.get(f"{SERIES}?limit=5&offset=0")
        recent = await client.get(f"{SERIES}/a/recent?limit=5")
    assert [r.status_code for r in (forecast, listed, recent)] == [200, 200, 200]
    assert (forecast.json()["horizon"], forecast.json()["level"]) == (3, 0.8)
