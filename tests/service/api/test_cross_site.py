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
    async with client_for(allowed_hosts="service") as client:  # (the test client's Host, a browser's name for it)
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


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_a_browsers_request_to_a_name_rebound_to_the_service_is_refused_and_changes_nothing(
    client_for, method
) -> None:
    """A hostile test (session 50): ``Host: evil.example:PORT`` with ``Origin: http://evil.example:PORT`` (what a
    page sends once its name resolves to the service, DNS rebinding) created and deleted models, and such a
    page is same-origin: it reads every answer too."""
    rebound = {"host": "evil.example:8000", "origin": "http://evil.example:8000", "sec-fetch-site": "same-origin"}
    path = f"{MODEL}/series/a" if method != "POST" else f"{MODEL}/observations"
    body = {"json": {"series": "b", "value": 1.0}} if method == "POST" else {}
    async with client_for() as client:
        await _feed(client, "a", [1.0, 2.0])
        refused = await client.request(method, path, headers=rebound, **body)
        assert refused.status_code == 403 and "DNS rebinding" in refused.json()["detail"]
        assert "TBPTT_ALLOWED_HOSTS" in refused.json()["detail"]
        assert (await client.get(f"{MODEL}/series/a")).json()["count"] == 2  # not deleted
        assert (await client.get(f"{MODEL}/series/b")).status_code == 404  # nothing applied
        for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "app.localhost", "localhost.:8000"):  # loopback
            own = {"host": host, "sec-fetch-site": "same-origin"}
            assert (await client.get(f"{MODEL}/series/a", headers=own)).status_code == 200, host
        plain = await client.get(f"{MODEL}/series/a", headers={"host": "evil.example:8000"})  # no browser's header
        assert plain.status_code == 200
    for allowed in ("forecasts.example, evil.example", "*", "EVIL.example.:8000"):  # (a port, case, a root dot)
        async with client_for(allowed_hosts=allowed) as client:
            await _feed(client, "a", [1.0, 2.0])
            answered = await client.request(method, path, headers=rebound, **body)
            assert answered.status_code in (200, 204), (allowed, answered.text)
