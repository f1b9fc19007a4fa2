"""Hostile bodies are refused cheaply: the count limit before any element is validated, and an
error body that names a few problems, not one per element (issue 11, defect 2)."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.anyio
URL = "/v1/models/default/observations"
JSON = {"content-type": "application/json"}


def empty_elements(n: int) -> bytes:
    return b'{"observations":[' + b",".join([b"{}"] * n) + b"]}"


COUNT_LIMIT = (422, "observations has 1000000 elements; TBPTT_MAX_BATCH_OBSERVATIONS=5000")
NO_TYPE = (415, "the body has no Content-Type: send it as JSON with 'Content-Type: application/json'")


@pytest.mark.parametrize(("headers", "expected"), [(JSON, COUNT_LIMIT), ({}, NO_TYPE)], ids=["json", "no-content-type"])
async def test_a_million_empty_elements_are_refused_by_the_count_limit_before_any_validation(
    client_for, headers, expected
) -> None:
    body = empty_elements(1_000_000)  # 3 MB: under the 4 MiB body limit
    async with client_for() as client:
        started = time.perf_counter()
        response = await client.post(URL, content=body, headers=headers)
        elapsed = time.perf_counter() - started
        assert (await client.get("/v1/models/default")).json()["observations"] == 0
    assert len(response.content) < 1000  # was 250 MB listing 2,000,000 errors
    assert (response.status_code, response.json()["detail"]) == expected  # without a type: 415 before any parsing
    assert elapsed < 5  # loose: it took about 40 s when every element was validated first


async def test_an_invalid_batch_names_at_most_a_few_of_its_errors(client_for) -> None:
    async with client_for() as client:
        response = await client.post(URL, content=empty_elements(5000), headers=JSON)
    assert response.status_code == 422
    body = response.json()
    assert body["detail"] == "observations[0].series: Field required"
    assert body["index"] == 0
    assert len(body["errors"]) == 5
    assert body["error_count"] == 10_000  # two missing fields per element
    assert len(response.content) < 2000
