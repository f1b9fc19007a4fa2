"""A change sent from another site's page is refused (403) and changes nothing; the service's own
pages, clients outside a browser and every read pass as before (cross_site.py)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio
MODEL = "/v1/models/default"
EVIL = "https://evil.example"


async def _feed(client, series: str, values: list[float]) -> None:
    body = {"observations": [{"series": series, "value": v} for v in values]}
    assert (await client.post(f"{MODEL}/observations", json=body)).status_code == 200


async def test_a_checkpoint_import_from_another_sites_page_is_refused_and_changes_nothing(client_for) -> None:
    # A hostile test: a page's fetch(..., {mode: "no-cors"}) of a text/plain import replaced the
    # model's state (its forecast of cpu went from 0.42 to 999,999.99) with a 200
    async with client_for() as other:
        await _feed(other, "cpu", [1e6] * 30)
        planted = (await other.get(f"{MODEL}/checkpoint")).content
    async with client_for() as client:
        await _feed(client, "cpu", [0.4, 0.45, 0.42] * 10)
        before = (await client.get(f"{MODEL}/series/cpu/forecast")).json()
        for headers in (
            {"origin": EVIL, "content-type": "text/plain"},
            {"origin": "null", "content-type": "text/plain"},  # a sandboxed page, or a file
            {"sec-fetch-site": "cross-site", "content-type": "text/plain"},
            {"sec-fetch-site": "same-site", "origin": "https://other.service"},
            {"origin": "http://service.evil.example"},  # this host's name as a prefix only
        ):
            response = await client.post(f"{MODEL}/checkpoint", content=planted, headers=headers)
            assert response.status_code == 403, (headers, response.text)
            assert "another site's page" in response.json()["detail"]
        assert (await client.get(f"{MODEL}/series/cpu/forecast")).json() == before
        reset = await client.post(f"{MODEL}/reset-learning-rate", headers={"origin": EVIL})
        assert reset.status_code == 403
        one = {"series": "x", "value": 1.0}
        observed = await client.post(f"{MODEL}/observations", json=one, headers={"origin": EVIL})
        assert observed.status_code == 403
        assert (await client.get(f"{MODEL}/series/x")).status_code == 404  # nothing applied


async def test_the_services_own_pages_clients_without_origin_and_reads_pass(client_for) -> None:
    async with client_for() as client:
        own = {"origin": "http://service", "sec-fetch-site": "same-origin"}  # the dashboard (Host: service)
        response = await client.post(f"{MODEL}/observations", json={"series": "a", "value": 1.0}, headers=own)
        assert response.status_code == 200
        proxied = {"origin": "https://forecasts.example.com", "x-forwarded-host": "forecasts.example.com"}
        response = await client.post(f"{MODEL}/observations", json={"series": "a", "value": 2.0}, headers=proxied)
        assert response.status_code == 200  # behind a proxy that rewrites Host
        for proxy in (
            {"x-forwarded-host": "inner:8000, forecasts.example.com"},
            {"forwarded": "host=forecasts.example.com"},
        ):
            chained = {"origin": "https://forecasts.example.com", **proxy}  # (refused before a review)
            response = await client.post(f"{MODEL}/observations", json={"series": "a", "value": 2.5}, headers=chained)
            assert response.status_code == 200, proxy
        typed = {"sec-fetch-site": "none"}  # a request the user made themselves
        response = await client.post(f"{MODEL}/observations", json={"series": "a", "value": 3.0}, headers=typed)
        assert response.status_code == 200
        response = await client.post(f"{MODEL}/observations", json={"series": "a", "value": 4.0})  # no browser
        assert response.status_code == 200
        exported = (await client.get(f"{MODEL}/checkpoint", headers={"origin": EVIL})).content  # reads: as before
        assert (await client.get(f"{MODEL}/series/a", headers={"origin": EVIL})).json()["count"] == 6
        restored = await client.post(f"{MODEL}/checkpoint", content=exported)
        assert restored.status_code == 200
