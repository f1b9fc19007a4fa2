"""With TBPTT_API_KEY set, every route but /healthz and /readyz needs 'Authorization: Bearer <key>'."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio
KEY = "s3cret-key"
PROTECTED = [
    ("GET", "/v1/models"),
    ("GET", "/v1/models/default"),
    ("POST", "/v1/models/default/observations"),
    ("GET", "/v1/models/default/series"),
    ("GET", "/metrics"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
    ("GET", "/no/such/path"),
]


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {KEY}", "Bearer", f"Bearer {KEY}x"])
async def test_requests_without_the_right_key_get_401(client_for, authorization) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with client_for(api_key=KEY) as client:
        for method, path in PROTECTED:
            response = await client.request(method, path, headers=headers, json={"series": "a", "value": 1.0})
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"
            assert "Authorization: Bearer <key>" in response.json()["detail"]
        info = await client.get("/v1/models/default", headers={"Authorization": f"Bearer {KEY}"})
        assert info.json()["observations"] == 0  # the refused POSTs applied nothing


async def test_the_right_key_opens_every_route_and_probes_need_none(client_for) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    async with client_for(api_key=KEY) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        response = await client.post(
            "/v1/models/default/observations", json={"series": "a", "value": 1.0}, headers=auth
        )
        assert response.status_code == 200
        assert (await client.get("/metrics", headers=auth)).status_code == 200
        assert (await client.get("/openapi.json", headers=auth)).status_code == 200


async def test_without_a_key_configured_no_header_is_needed(client_for) -> None:
    async with client_for() as client:
        assert (await client.get("/v1/models")).status_code == 200
