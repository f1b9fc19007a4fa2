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
        assert response.json() == {"detail": f"request body exceeds TBPTT_MAX_BODY_BYTES={LIMIT}"}
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
        assert response.json() == {"detail": f"request body exceeds TBPTT_MAX_BODY_BYTES={LIMIT}"}
        assert (await client.get("/v1/models/default")).json()["observations"] == 0
        # A body within the limit, streamed the same way, goes through.
        small = orjson.dumps({"series": "small", "value": 1.0})

        async def one_chunk() -> AsyncIterator[bytes]:
            yield small

        request = client.build_request("POST", URL, content=one_chunk(), headers={"content-type": "application/json"})
        assert (await client.send(request)).status_code == 200


async def test_a_checkpoint_import_has_its_own_limit_so_a_model_takes_back_its_export(client_for) -> None:
    # fix: a model's export is its whole state; under max_body_bytes a model of 120 default series
    # (a 6 MB file) could not take back its own export (413)
    batch = {"observations": [{"series": f"s{i}", "value": float(i)} for i in range(3)]}
    async with client_for(max_body_bytes=LIMIT) as client:
        assert (await client.post(URL, json=batch)).status_code == 200
        exported = (await client.get("/v1/models/default/checkpoint")).content
        assert len(exported) > 50 * LIMIT
        restored = await client.post("/v1/models/default/checkpoint", content=exported)
        json_too_big = await client.post(URL, content=big_body(), headers={"content-type": "application/json"})
    assert restored.status_code == 200, restored.text
    assert restored.json()["series_count"] == 3
    assert json_too_big.status_code == 413  # the JSON routes keep max_body_bytes


async def test_a_checkpoint_over_its_limit_is_413_naming_the_setting(client_for) -> None:
    async with client_for(max_checkpoint_bytes=LIMIT) as client:
        exported = (await client.get("/v1/models/default/checkpoint")).content
        response = await client.post("/v1/models/default/checkpoint", content=exported)
    assert len(exported) > LIMIT
    assert response.status_code == 413
    assert response.json() == {"detail": f"request body exceeds TBPTT_MAX_CHECKPOINT_BYTES={LIMIT}"}
