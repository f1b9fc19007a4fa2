"""A bad value is quoted short in its error: deep nesting or a huge list answers 422 naming the
field, never a 500 from a repr's recursion or a body the size of the value (issue 11, defect 4)."""

from __future__ import annotations

import pytest

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
