"""A bad value is quoted short in its error: deep nesting or a huge list answers 422 naming the
field, never a 500 from a repr's recursion or a body the size of the value (issue 11, defect 4)."""

from __future__ import annotations

import pytest

from tbptt_online.values import MAX_ABS_VALUE

pytestmark = pytest.mark.anyio
URL = "/v1/models/default/observations"
JSON = {"content-type": "application/json"}


def nested(depth: int) -> str:
    return "[" * depth + "1.0" + "]" * depth


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (f'{{"series": "a", "value": {nested(1000)}}}', "value"),
        (f'{{"series": "a", "value": 1.0, "timestamp": {nested(1000)}}}', "timestamp"),
        (f'{{"observations": [{{"series": "a", "value": {nested(1000)}}}]}}', "observations[0].value"),
        (
            f'{{"observations": [{{"series": "a", "value": 1, "timestamp": {nested(1000)}}}]}}',
            "observations[0].timestamp",
        ),
    ],
    ids=["value", "timestamp", "batch-value", "batch-timestamp"],
)
async def test_deeply_nested_values_are_refused_naming_the_field(client_for, body: str, field: str) -> None:
    async with client_for() as client:
        response = await client.post(URL, content=body, headers=JSON)
    assert response.status_code == 422  # was 500: a RecursionError from the repr in the message
    assert response.json()["detail"].startswith(f"{field}: ")
    assert len(response.content) < 2000


@pytest.mark.parametrize("field", ["value", "timestamp"])
async def test_a_long_bad_value_is_quoted_short(client_for, field: str) -> None:
    bad = "[" + ",".join(["{}"] * 1_000_000) + "]"
    body = (
        f'{{"series": "a", "value": {bad}}}'
        if field == "value"
        else f'{{"series": "a", "value": 1, "timestamp": {bad}}}'
    )
    async with client_for() as client:
        response = await client.post(URL, content=body, headers=JSON)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"{field}: ")
    assert len(response.content) < 2000  # was 8 MB: the whole value repeated in the message


@pytest.mark.parametrize(
    ("body", "quoted"),
    [
        ({"series": "a", "value": 1e308}, "1e+308"),  # the fast path's shape
        ({"series": "a", "value": -1e37, "timestamp": "2024-01-01T00:00:00Z"}, "-1e+37"),  # pydantic's path
        ({"observations": [{"series": "b", "value": 1.0}, {"series": "a", "value": [2.0]}]}, None),  # control
        (
            {"observations": [{"series": "b", "value": 1.0}, {"series": "a", "value": 10**300}]},
            "observations[1].value: 1e+300",
        ),
    ],
    ids=["single", "iso-timestamp", "control", "batch-int"],
)
async def test_a_value_beyond_the_magnitude_bound_is_refused_and_the_series_keeps_serving(
    client_for, body, quoted
) -> None:
    # Fix: 1e308 then -1e308 were accepted and the series served null forever (its state held NaN),
    # and its model's exported checkpoint was refused on import (NaN in carried_h).
    async with client_for() as client:
        first = await client.post(URL, json={"series": "a", "value": 1.0})
        response = await client.post(URL, json=body)
        opposite = await client.post(URL, json={"series": "a", "value": -1e308})
        forecast = (await client.get("/v1/models/default/series/a/forecast?horizon=2")).json()
        count = (await client.get("/v1/models/default/series/a")).json()["count"]
    assert first.status_code == 200
    assert opposite.status_code == 422
    if quoted is None:
        assert response.status_code == 200, response.text
        assert count == 2
    else:
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert quoted in detail and "is out of range: a value's magnitude must be at most 1e+36" in detail, detail
        assert count == 1  # nothing of the refused request was applied
    assert all(step["mean"] is not None for step in forecast["forecast"]), forecast
    # an interval from the second value on (one value gives no scale: null bounds, not NaN in the state)
    assert all((step["upper"] is not None) == (count == 2) for step in forecast["forecast"]), forecast


async def test_a_value_at_the_magnitude_bound_is_accepted(client_for) -> None:
    async with client_for() as client:
        responses = [
            await client.post(URL, json={"series": "a", "value": v}) for v in (MAX_ABS_VALUE, -MAX_ABS_VALUE, 1.0)
        ]
        forecast = (await client.get("/v1/models/default/series/a/forecast?horizon=2")).json()
    assert [r.status_code for r in responses] == [200, 200, 200], [r.text for r in responses]
    assert all(step["mean"] is not None and step["upper"] is not None for step in forecast["forecast"]), forecast


@pytest.mark.parametrize(
    "body",
    [
        '{"series": "a", "value": %s}',
        '{"series": "a", "value": %s, "timestamp": "2024-01-01T00:00:00Z"}',  # pydantic's path
        '{"observations": [{"series": "b", "value": 1.0}, {"series": "a", "value": %s}]}',
    ],
    ids=["single", "iso-timestamp", "batch"],
)
async def test_a_value_of_more_numbers_than_any_model_has_features_is_refused_by_its_count(client_for, body) -> None:
    # fix (session 34, a hostile client): 2,000,000 numbers in one value (a 4 MB body) were checked one
    # by one on the event loop, 3-10 s in which no other request was answered, before a 422
    huge = "[" + ",".join(["1"] * 2_000_000) + ', "x"]'  # (a bad last element: the count is told first)
    async with client_for() as client:
        response = await client.post(URL, content=body % huge, headers=JSON)
        b = await client.get("/v1/models/default/series/b")
    assert response.status_code == 422
    assert "a value is a list of 2000001 numbers: at most 1024 (a model's largest n_features)" in response.text
    assert len(response.content) < 2000
    assert b.status_code == 404  # nothing of the batch applied


async def test_a_422s_elements_are_located_as_a_409s_are(client_for) -> None:
    # a hostile test (session 57): a 422 located element 1 at ["body", "batch", "observations", "1", "value"] where a
    # 409 says ["body", "observations", "1", "timestamp"], and a single body's at ["body", "single", "value"]
    async with client_for() as client:
        batch = {"observations": [{"series": "a", "value": 1.0}, {"series": "a", "value": 1e37}, {"series": "b"}]}
        two = (await client.post(URL, json=batch)).json()
        one = (await client.post(URL, json={"series": "a", "value": -1e40})).json()
    assert [e["loc"] for e in two["errors"]] == [
        ["body", "observations", "1", "value"],
        ["body", "observations", "2", "value"],
    ]
    assert two["index"] == 1 and two["error_count"] == 2 and two["detail"].startswith("observations[1].value: ")
    assert [e["loc"] for e in one["errors"]] == [["body", "observations", "0", "value"]] and one["index"] == 0
