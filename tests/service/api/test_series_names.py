"""Series names a hostile client may send: every name that is accepted reads back by its own routes.

A name holding a newline was accepted and then answered 404 on every route that names it
(Starlette's path regex stopped at the newline); a name that is a URL dot segment ('.' or '..'), or holds
one between its slashes ('zz/../hr'), is changed in the URL by clients, so it is refused when written.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

pytestmark = pytest.mark.anyio
URL = "/v1/models/default/observations"


@pytest.mark.parametrize("name", ["a\nb", "line\n", "\n", "cr\r\nlf", "tab\tnul\x00"])
async def test_a_name_with_control_characters_reads_back_on_every_route(client_for, name) -> None:
    path = f"/v1/models/default/series/{quote(name, safe='')}"
    async with client_for() as client:
        posted = await client.post(URL, json={"observations": [{"series": name, "value": v} for v in (1.0, 2.0)]})
        stats = await client.get(path)
        forecast = await client.get(f"{path}/forecast?horizon=2")
        recent = await client.get(f"{path}/recent")
        deleted = await client.delete(path)
        listed = (await client.get("/v1/models/default/series")).json()
    assert posted.status_code == 200, posted.text
    assert (stats.status_code, stats.json()["series"], stats.json()["count"]) == (200, name, 2), stats.text
    assert (forecast.status_code, forecast.json()["series"]) == (200, name), forecast.text
    assert (recent.status_code, [p["value"] for p in recent.json()["observations"]]) == (200, [1.0, 2.0])
    assert deleted.status_code == 204, deleted.text
    assert listed["total"] == 0


DOT_SEGMENT, ROUTE_SUFFIX = "must not be '.' or '..'", "must not end in '/forecast' or '/recent'"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"series": ".", "value": 1.0}, DOT_SEGMENT),  # the fast path's shape
        ({"observations": [{"series": "ok", "value": 1.0}, {"series": "..", "value": 2.0}]}, DOT_SEGMENT),
        ({"series": "..", "value": 1.0, "timestamp": "2024-01-01T00:00:00Z"}, DOT_SEGMENT),  # pydantic's path
        # a hostile test (session 47): curl read '.../series/zz/../hr/forecast' as the forecast of 'hr'
        ({"series": "zz/../hr", "value": 1.0}, DOT_SEGMENT),
        ({"observations": [{"series": "ok", "value": 1.0}, {"series": "a/./b", "value": 2.0}]}, DOT_SEGMENT),
        ({"series": "x/..", "value": 1.0, "timestamp": "2024-01-01T00:00:00Z"}, DOT_SEGMENT),
        ({"series": "./x", "value": 1.0}, DOT_SEGMENT),
        ({"series": "cpu/forecast", "value": 1.0}, ROUTE_SUFFIX),  # the fast path's shape
        ({"observations": [{"series": "ok", "value": 1.0}, {"series": "a/b/recent", "value": 2.0}]}, ROUTE_SUFFIX),
        ({"series": "cpu/forecast", "value": 1.0, "timestamp": "2024-01-01T00:00:00Z"}, ROUTE_SUFFIX),  # pydantic
    ],
)
async def test_a_series_name_no_route_could_read_is_refused_and_nothing_is_written(client_for, body, detail) -> None:
    # a dot segment (normalised away by clients) or a route suffix ("x/forecast" reads as x's forecast)
    async with client_for() as client:
        response = await client.post(URL, json=body)
        listed = (await client.get("/v1/models/default/series")).json()
    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]
    assert listed["total"] == 0


@pytest.mark.parametrize("name", ["...", "a.", ".b", "a./b", "x/.y", "x/...", ".../x", "a/b.c/d"])
async def test_names_with_dots_that_are_not_a_whole_segment_are_accepted(client_for, name) -> None:
    async with client_for() as client:
        posted = await client.post(URL, json={"series": name, "value": 1.0})
        stats = await client.get(f"/v1/models/default/series/{quote(name, safe='')}")
    assert posted.status_code == 200, posted.text
    assert (stats.status_code, stats.json()["series"]) == (200, name)
