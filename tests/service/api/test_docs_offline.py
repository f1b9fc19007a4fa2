"""``/docs`` and ``/redoc`` render without internet: Swagger UI's and ReDoc's files are served by
the service (from the fastapi-offline package), and in headless Chromium, with every request to
another host refused, the Swagger page shows the API's operations."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest

from tbptt_service.api.routes.docs import ASSETS_DIR

from ..conftest import ServerProcess
from .test_dashboard import browser, server  # noqa: F401 - the fixtures (chromium, a real server)


@pytest.mark.anyio
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_pages_reference_only_files_the_service_serves(client_for, page) -> None:
    async with client_for() as client:
        html = (await client.get(page)).text
        referenced = re.findall(r"""(?:src|href|url)\s*[=:(]\s*['"]([^'"]+\.(?:js|css|png))['"]""", html)
        files = {path: await client.get(path) for path in referenced}
    assert referenced and all(path.startswith("/docs-assets/") for path in referenced), referenced
    assert "https://" not in html and "http://" not in html
    for path, response in files.items():
        assert response.status_code == 200, path
        assert response.content == (ASSETS_DIR / path.rsplit("/", 1)[1]).read_bytes()


@pytest.mark.anyio
async def test_the_assets_open_without_the_key_the_pages_do_not(client_for) -> None:
    async with client_for(api_key="k") as client:
        asset = await client.get("/docs-assets/swagger-ui.css")
        docs = await client.get("/docs")
        missing = await client.get("/docs-assets/nope.js", headers={"authorization": "Bearer k"})
    assert (asset.status_code, docs.status_code) == (200, 401)
    assert missing.status_code == 404


def test_swagger_ui_renders_the_operations_with_no_internet(browser, server: ServerProcess) -> None:  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    elsewhere: list[str] = []

    def only_this_server(route) -> None:
        if urlparse(route.request.url).netloc == urlparse(server.url).netloc:
            route.continue_()
        else:  # the internet is not there
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    try:
        page.goto(f"{server.url}/docs")
        page.wait_for_selector(".swagger-ui .information-container .title", timeout=20_000)
        title = page.locator(".swagger-ui .information-container .title").inner_text()
        page.wait_for_selector(".opblock", timeout=20_000)
        operations = page.locator(".opblock").count()
        paths = page.locator(".opblock-summary-path").all_inner_texts()
    finally:
        page.close()
    assert title.startswith("tbptt-online")
    assert operations >= 10, operations
    assert any("/v1/models/{model}/observations" in p.replace("\u200b", "") for p in paths), paths
    assert elsewhere == [] and problems == []
