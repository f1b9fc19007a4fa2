"""Bodies over max_body_bytes are refused with 413, declared or streamed, and nothing is applied."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

pytestmark = pytest.mark.anyio
URL = "/v1/models/default/observations"
LIMIT = 2048


def big_body(n: int = 200) -> bytes:
    return orjson.dumps({"observations": [{"series": "big", "value": float(i)} for i in range(n)]})


async def test_declared_length_over_the_limit_is_413(client_for) -> None:
    body = big_body()
    assert len(body) > LIMIT
    async with client_for(max_body_bytes=LIMIT) as client:
        response = await client.post(URL, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert response.json() == {"detail": f"request body exceeds max_body_bytes={LIMIT}"}
        assert (await client.get("/v1/models/default")).json()["observations"] == 0


async def test_streamed_body_without_length_is_counted_and_refused(client_for) -> None:
    body = big_body()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 500):
            yield body[start : start + 500]

    async with client_for(max_body_bytes=LIMIT) as client:
        request = client.build_request("POST", URL, content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in request.headers  # chunked: only counting can catch it
        response = await client.send(request)
        assert response.status_code == 413
        assert response.json() == {"detail": f"request body exceeds max_body_bytes={LIMIT}"}
        assert (await client.get("/v1/models/default")).json()["observations"] == 0
        # A body within the limit, streamed the same way, goes through.
        small = orjson.dumps({"series": "small", "value": 1.0})

        async def one_chunk() -> AsyncIterator[bytes]:
            yield small

        request = client.build_request("POST", URL, content=one_chunk(), headers={"content-type": "application/json"})
        assert (await client.send(request)).status_code == 200
