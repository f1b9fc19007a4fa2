"""Series names a hostile client may send: every name that is accepted reads back by its own routes.

A name holding a newline was accepted and then answered 404 on every route that names it
(Starlette's path regex stopped at the newline; fixed, and since session 61 such a name is refused when
written, while one a state already holds is served); a name that is a URL dot segment ('.' or '..'), or holds
one between its slashes ('zz/../hr'), is changed in the URL by clients, so it is refused when written.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

pytestmark = pytest.mark.anyio
URL = "/v1/models/default/observations"


UNSHOWABLE_NAMES = [
    "a\nb",
    "line\n",
    "\n",
    "cr\r\nlf",
    "tab\tnul\x00",
    "del\x7f",
    "c1\x85",
    "\u202eevil",
    "\u2066x\u2069",
    "ls\u2028",
]


def _first_unshowable(name: str) -> tuple[int, str]:
    return next((i, f"U+{ord(c):04X}") for i, c in enumerate(name) if c in "\n\r\t\x00\x7f\x85\u202e\u2066\u2028")


@pytest.mark.parametrize("name", UNSHOWABLE_NAMES)
@pytest.mark.parametrize("shape", ["single", "batch", "iso timestamp"])
async def test_a_name_holding_a_control_or_bidi_character_is_refused_naming_it(client_for, name, shape) -> None:
    # a hostile test (session 60, F9): each was taken, stored and served; feed's table printed a name holding a
    # newline across two lines, and U+202E reverses what a terminal or the dashboard shows after it
    element = {"series": name, "value": 1.0}
    body, where = {
        "single": (element, "series"),
        "batch": ({"observations": [{"series": "ok", "value": 1.0}, element]}, "observations[1].series"),
        "iso timestamp": ({**element, "timestamp": "2024-01-01T00:00:00Z"}, "series"),  # pydantic's path
    }[shape]
    async with client_for() as client:
        response = await client.post(URL, json=body)
        listed = (await client.get("/v1/models/default/series")).json()
    at, code = _first_unshowable(name)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith(f"{where}: ") and f"holds {code} at {at}: a series name must hold no control" in detail
    assert name not in detail  # shown escaped: the answer itself carries no such character
    assert listed["total"] == 0


@pytest.mark.parametrize("name", ["café", "名前", "a b", "emoji \U0001f600", "nbsp\u00a0x", "zwj\u200dx", "é"])
async def test_names_past_ascii_that_show_as_text_are_accepted(client_for, name) -> None:
    async with client_for() as client:
        posted = await client.post(URL, json={"observations": [{"series": name, "value": 1.0}]})
    assert posted.status_code == 200, posted.text


async def test_a_state_journaled_with_such_names_is_recovered_and_served_but_takes_no_value(
    client_for, monkeypatch
) -> None:
    # the rule is checked when a name is written; a state journaled before it (session 60 and earlier) is
    # recovered as it was: its names read, forecast and delete as before, and a new value for one is refused
    with monkeypatch.context() as before_the_rule:
        before_the_rule.setattr("tbptt_service.api.series_names.UNSHOWABLE", re.compile("(?!)"))
        before_the_rule.setattr("tbptt_service.api.observation_body.showable", lambda names: True)
        async with client_for() as client:
            body = {"observations": [{"series": n, "value": v} for v in (1.0, 2.0) for n in UNSHOWABLE_NAMES]}
            assert (await client.post(URL, json=body)).status_code == 200
    async with client_for() as client:  # the same state directory: recovered from the log
        listed = (await client.get("/v1/models/default/series")).json()
        assert sorted(listed["series"]) == sorted(UNSHOWABLE_NAMES)
        for name in UNSHOWABLE_NAMES:
            path = f"/v1/models/default/series/{quote(name, safe='')}"
            stats = await client.get(path)
            forecast = await client.get(f"{path}/forecast?horizon=2")
            recent = await client.get(f"{path}/recent")
            refused = await client.post(URL, json={"series": name, "value": 3.0})
            deleted = await client.delete(path)
            assert (stats.status_code, stats.json()["series"], stats.json()["count"]) == (200, name, 2), stats.text
            assert (forecast.status_code, forecast.json()["series"]) == (200, name), forecast.text
            assert (recent.status_code, [p["value"] for p in recent.json()["observations"]]) == (200, [1.0, 2.0])
            assert refused.status_code == 422 and "a series name must hold no control" in refused.json()["detail"]
            assert deleted.status_code == 204, deleted.text
        assert (await client.get("/v1/models/default/series")).json()["total"] == 0


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
