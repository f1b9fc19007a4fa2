"""``after=<name>``: the paged listings (series, series-stats, forecasts) walked by a cursor read each series once
while others are added or deleted between two pages.

By offset, a walk over 200 series while 50 that sort earlier arrived between pages repeated 7,950 rows (a
hostile test, session 60: F8). ``after`` did not exist before: every test here failed (422, no parameter).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio
MODEL = "/v1/models/default"
ROUTES = {  # the route, and the names of one page's rows
    "series": ("/series", lambda page: page["series"]),
    "series-stats": ("/series-stats", lambda page: [s["series"] for s in page["series"]]),
    "forecasts": ("/forecasts", lambda page: [f["series"] for f in page["forecasts"]]),
}


async def add(client, names: list[str]) -> None:
    body = {"observations": [{"series": name, "value": 1.0} for name in names]}
    assert (await client.post(f"{MODEL}/observations", json=body)).status_code == 200


@pytest.mark.parametrize("route", ROUTES)
async def test_a_walk_by_the_cursor_reads_each_series_once_while_earlier_names_arrive(client_for, route) -> None:
    path, names_of = ROUTES[route]
    first = [f"m{i:03d}" for i in range(40)]
    async with client_for() as client:
        await add(client, first)
        seen, query, pages = [], {"limit": 7}, 0
        while True:
            page = (await client.get(MODEL + path, params=query)).json()
            listed = names_of(page)
            seen += listed
            pages += 1
            # between two pages: 3 series that sort before every name read, and 1 deleted ahead of the cursor
            await add(client, [f"a{pages:02d}-{k}" for k in range(3)])
            ahead = [n for n in first if n > listed[-1] and n not in seen]
            if len(ahead) > 1:
                assert (await client.delete(f"{MODEL}/series/{ahead[-1]}")).status_code == 204
                first.remove(ahead[-1])
            if page["next_after"] is None:
                assert page["next_offset"] is None
                break
            assert page["next_after"] == listed[-1]
            query = {"limit": 7, "after": page["next_after"]}
    assert seen == first  # each series there from the walk's start to its end, once, in order
    assert (len(seen), pages) == (36, 6)  # 40 names, 4 deleted ahead of the cursor: 36 in pages of 7


@pytest.mark.parametrize("route", ROUTES)
async def test_the_cursor_starts_after_a_name_that_is_gone_or_past_the_end(client_for, route) -> None:
    path, names_of = ROUTES[route]
    async with client_for() as client:
        await add(client, ["a", "b", "d"])
        after_gone = (await client.get(MODEL + path, params={"after": "c"})).json()  # no series "c"
        past_end = (await client.get(MODEL + path, params={"after": "z"})).json()
        first = (await client.get(MODEL + path, params={"after": "a", "limit": 1})).json()
    assert (names_of(after_gone), after_gone["next_after"], after_gone["next_offset"]) == (["d"], None, None)
    assert (names_of(past_end), past_end["total"], past_end["next_after"]) == ([], 3, None)
    assert (names_of(first), first["next_after"], first["next_offset"]) == (["b"], "b", 2)


@pytest.mark.parametrize("route", ROUTES)
async def test_offset_and_after_together_are_refused_naming_both(client_for, route) -> None:
    path, _ = ROUTES[route]
    async with client_for() as client:
        await add(client, ["a"])
        both = await client.get(MODEL + path, params={"offset": 1, "after": "a"})
        empty = await client.get(MODEL + path, params={"after": ""})
        too_long = await client.get(MODEL + path, params={"after": "x" * 201})
    assert both.status_code == 422 and both.json()["detail"].startswith("offset=1 and after='a': give one"), both.text
    assert empty.status_code == 422 and empty.json()["detail"].startswith("after: "), empty.text
    assert too_long.status_code == 422 and too_long.json()["detail"].startswith("after: "), too_long.text
