"""A page of forecasts goes out in parts (streamed_pages.py): the client's reading paces the encoding, and the
bytes are those the whole page's ``orjson.dumps`` made.

Before, a page was built whole and handed to the connection at once: 60 clients that asked for pages of
100 series 1,000 steps ahead and never read held 2.4 GB (a hostile test, session 60: F6).
"""

from __future__ import annotations

import orjson
import pytest

from tbptt_online.results import Forecast
from tbptt_service.api.app import create_app
from tbptt_service.api.streamed_pages import PART_NUMBERS, pack

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "forecast",
    [
        Forecast("a", 3, 0.9, [1.5, None, -0.0], [1.0, None, -1e300], [2.0, None, 5e-324], 7, 3),
        Forecast("b", 2, 0.8, [[1.0, None], [2.5, 3.0]], [[0.5, None], [2.0, 2.0]], [[1.5, None], [3.0, 4.0]], 1, 0),
        Forecast("c", 2, 0.9, [1.0, 2.0], [0.5, 1.5], [1.5, 2.5], 4, 2),
        Forecast("d", 1, 0.9, [[1.0, -0.0]], [[0.5, -1.0]], [[1.5, 1e36]], 4, 2),
    ],
    ids=["one feature", "two features", "no missing number", "two features, no missing number"],
)
def test_a_packed_forecast_unpacks_to_the_same_lists(forecast) -> None:
    packed = pack(forecast, None)
    assert packed.unpacked() == forecast
    assert orjson.dumps(packed.unpacked()) == orjson.dumps(forecast)  # -0.0 as -0.0, 5e-324 as itself


@pytest.mark.parametrize("http_version", ["1.1", "1.0"])
async def test_a_page_goes_out_in_parts_whose_bytes_are_the_whole_pages(make_settings, serve, http_version) -> None:
    app = create_app(make_settings())
    names = [f"s{i:02d}" for i in range(40)]
    async with serve(app) as client:
        body = {
            "observations": [{"series": n, "value": float(i % 5 + j)} for j in range(6) for i, n in enumerate(names)]
        }
        assert (await client.post("/v1/models/default/observations", json=body)).status_code == 200
        parts: list[bytes] = []
        heads: list[dict[bytes, bytes]] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                assert message["status"] == 200
                heads.append(dict(message["headers"]))
            elif message["body"]:
                parts.append(message["body"])

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": http_version,
            "method": "GET",
            "scheme": "http",
            "path": "/v1/models/default/forecasts",
            "raw_path": b"/v1/models/default/forecasts",
            "query_string": b"horizon=1000&limit=40",
            "headers": [(b"host", b"service")],
            "client": ("127.0.0.1", 1),
            "server": ("service", 80),
            "root_path": "",
        }
        await app(scope, receive, send)
        whole = (await client.get("/v1/models/default/forecasts", params={"horizon": 1000, "limit": 40})).content
    page = b"".join(parts)
    assert page == whole == orjson.dumps(orjson.loads(page))  # the bytes one orjson.dumps of the page made
    assert [f["series"] for f in orjson.loads(page)["forecasts"]] == names
    if http_version == "1.0":  # a client of HTTP/1.0 knows no chunked answer: the page whole, with its length
        assert heads[0][b"content-length"] == str(len(page)).encode() and len(parts) == 1
        return
    # 40 series x 1,000 steps x 3 numbers: parts of about PART_NUMBERS numbers (4 series), not one of 120,000
    assert len(parts) >= 40 * 1000 * 3 // PART_NUMBERS
    assert max(len(part) for part in parts) < len(page) / 4
