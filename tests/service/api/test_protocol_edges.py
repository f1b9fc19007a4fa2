"""Issue 11 defect 9 and a new user's first POST: the HTTP edges.

A body that stops arriving gets 408 (not a connection held forever), a 500 says
``Connection: close``, ``OPTIONS`` and 405 name every method of a path, the OpenAPI of a
keyed service declares its bearer scheme and 401s, a series name that its routes could not
read back is refused, and a body declared as something else than JSON gets 415 naming it.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from benchmarks.server_process import ServerProcess
from tbptt_service.api.app import create_app
from tests.service.api.raw_http import read_until_closed
from tests.service.conftest import start_ready_server

pytestmark = pytest.mark.anyio
URL = "/v1/models/default/observations"


@pytest.fixture(scope="module")
def body_timeout_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server with a 1 s body deadline for both paths of the test below (each started its own, with the
    same settings: 3-5 s a start on 2 cores); a connection the first closed leaves nothing for the second."""
    started: list[ServerProcess] = []
    try:
        yield start_ready_server(
            tmp_path_factory.mktemp("body-timeout"), started, settings_env={"TBPTT_BODY_TIMEOUT_S": "1"}
        )
    finally:
        for server in started:
            server.stop()


@pytest.mark.parametrize("path", [URL, "/v1/models"])
def test_a_body_that_stops_arriving_gets_408_and_the_connection_closes(body_timeout_server, path) -> None:
    server = body_timeout_server
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        sock.sendall(head.encode() + b'{"series":')  # 10 of the 100 bytes declared, then nothing
        started = time.monotonic()
        data, closed = read_until_closed(sock, timeout_s=20)
        waited = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert b"connection: close" in data.lower() and b"body_timeout_s=1" in data
    assert closed and 0.9 < waited < 10, waited
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def _drip(sock: socket.socket, data: bytes, every_s: float) -> None:
    """Send ``data`` a byte at a time (a slowloris), stopping quietly once the server has closed."""
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return
        time.sleep(every_s)


def test_a_connection_whose_head_does_not_arrive_is_closed(start_server) -> None:
    """A connection that sent nothing, a head that stopped, or a head sent a byte every 0.2 s was
    kept open forever (still open after 70 s: uvicorn's keep-alive clock stops at the first byte
    and runs only after a response); each holds a file descriptor until enough refuse everyone."""
    server = start_server(settings_env={"TBPTT_HEADER_TIMEOUT_S": "1"})
    with socket.create_connection(("127.0.0.1", server.port)) as idle:  # nothing sent: closed, no answer
        started = time.monotonic()
        data, closed = read_until_closed(idle, timeout_s=20)
        assert closed and data == b"" and 0.9 < time.monotonic() - started < 10
    with socket.create_connection(("127.0.0.1", server.port)) as stopped:  # half a head: 408, closed
        stopped.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        data, closed = read_until_closed(stopped, timeout_s=20)
        assert closed and 0.9 < time.monotonic() - started < 10
    assert data.startswith(b"HTTP/1.1 408") and b"header_timeout_s=1" in data, data[:200]
    with socket.create_connection(("127.0.0.1", server.port)) as slow:  # a complete request, then a drip
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while not first.endswith(b'"}'):  # the whole first answer (head and body: {"status":"ok","version":...})
            first += slow.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")  # keep-alive: the next head has a deadline too
        started = time.monotonic()
        _drip(slow, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40, every_s=0.2)
        data, closed = read_until_closed(slow, timeout_s=20)
        assert closed and 0.9 < time.monotonic() - started < 10
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    with socket.create_connection(("127.0.0.1", server.port)) as prompt:  # a head in time is served as before
        prompt.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data, closed = read_until_closed(prompt, timeout_s=20)
    assert closed and data.startswith(b"HTTP/1.1 200")


def test_a_head_past_max_header_bytes_gets_431_and_the_connection_closes(start_server) -> None:
    """A hostile test: one header of 100 MB was parsed for 14 s and answered 200 (another client's
    /healthz waited up to 3.9 s meanwhile), and 200,000 headers were taken; nothing bounded a head."""
    server = start_server(settings_env={"TBPTT_MAX_HEADER_BYTES": "4096"})
    with socket.create_connection(("127.0.0.1", server.port)) as big:
        with contextlib.suppress(OSError):  # the server may close before all of it is sent
            big.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2**20 + b"\r\n\r\n")
        data, closed = read_until_closed(big, timeout_s=20)
    assert data.startswith(b"HTTP/1.1 431") and b"max_header_bytes=4096" in data, data[:200]
    assert closed
    with socket.create_connection(("127.0.0.1", server.port)) as many:  # many small headers count alike
        with contextlib.suppress(OSError):
            many.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 2000 + b"\r\n")
        data, closed = read_until_closed(many, timeout_s=20)
    assert data.startswith(b"HTTP/1.1 431") and closed, data[:200]
    fits = httpx.get(f"{server.url}/healthz", headers={"x-fits": "a" * 3000})  # under the limit: served
    assert fits.status_code == 200
    body = b'{"series": "a", "value": 1.0, "pad": "' + b"b" * 200_000 + b'"}'  # a body's bytes are not the head's
    posted = httpx.post(f"{server.url}{URL}", content=body, headers={"content-type": "application/json"})
    assert posted.status_code != 431, posted.text[:200]
    with socket.create_connection(("127.0.0.1", server.port)) as twice:  # keep-alive: each head counts anew
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Fits: " + b"a" * 3000 + b"\r\n\r\n"
        twice.sendall(head)
        first = b""
        while not first.endswith(b'"}'):
            first += twice.recv(65536)
        twice.sendall(head.replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n"))
        data, closed = read_until_closed(twice, timeout_s=20)
    assert first.startswith(b"HTTP/1.1 200") and data.startswith(b"HTTP/1.1 200"), (first[:100], data[:100])


async def test_an_unexpected_error_answers_500_with_connection_close(make_settings) -> None:
    app = create_app(make_settings())

    async def broken() -> None:
        raise RuntimeError("a bug")

    app.router.add_api_route("/broken", broken, methods=["GET"])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # a server logs it and goes on
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            response = await client.get("/broken")
    assert response.status_code == 500
    assert response.headers["connection"] == "close"
    assert response.json() == {"detail": "internal error (RuntimeError); the server's log has the details"}


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/v1/models", "GET, HEAD, OPTIONS, POST"),
        ("/v1/models/default", "DELETE, GET, HEAD, OPTIONS"),
        ("/v1/models/default/checkpoint", "GET, HEAD, OPTIONS, POST"),
        ("/v1/models/default/series/s", "DELETE, GET, HEAD, OPTIONS"),
        ("/v1/models/default/observations", "OPTIONS, POST"),
        ("/healthz", "GET, HEAD, OPTIONS"),  # was 405: the probes' routes were behind an included router
        ("/docs", "GET, HEAD, OPTIONS"),
    ],
)
async def test_options_and_405_name_every_method_of_a_path(client_for, path, allowed) -> None:
    async with client_for() as client:
        options = await client.options(path)
        put = await client.put(path, json={})
        get = await client.get("/v1/models")  # other requests pass unchanged
    assert (options.status_code, options.headers["allow"], options.content) == (204, allowed, b"")
    assert (put.status_code, put.headers["allow"]) == (405, allowed)
    assert get.status_code == 200 and "allow" not in get.headers


async def test_options_of_an_unknown_path_is_404(client_for) -> None:
    async with client_for() as client:
        response = await client.options("/nowhere")
    assert response.status_code == 404


async def test_a_keyed_service_declares_its_bearer_scheme_and_401s(client_for) -> None:
    async with client_for(api_key="k3y") as client:
        spec = (await client.get("/openapi.json", headers={"authorization": "Bearer k3y"})).json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The service's API key (TBPTT_API_KEY).",
    }
    protected = [(p, m) for p, ops in spec["paths"].items() for m in ops if p not in ("/healthz", "/readyz", "/")]
    assert ("/v1/models", "post") in protected and ("/metrics", "get") in protected
    for path, method in protected:
        operation = spec["paths"][path][method]
        assert operation["security"] == [{"bearer": []}], (path, method)
        assert "401" in operation["responses"], (path, method)
    assert "security" not in spec["paths"]["/healthz"]["get"]


async def test_a_service_without_a_key_declares_no_scheme(client_for) -> None:
    async with client_for() as client:
        spec = (await client.get("/openapi.json")).json()
    assert "securitySchemes" not in spec.get("components", {})
    assert "security" not in spec["paths"]["/v1/models"]["post"]


async def test_a_series_name_with_a_suffix_inside_reads_back(client_for) -> None:
    async with client_for() as client:
        posted = await client.post(URL, json={"series": "host/forecast/cpu", "value": 1.0})
        stats = await client.get("/v1/models/default/series/host/forecast/cpu")
        forecast = await client.get("/v1/models/default/series/host/forecast/cpu/forecast")
        recent = await client.get("/v1/models/default/series/host/forecast/cpu/recent")
    assert posted.status_code == 200
    assert (stats.status_code, stats.json()["series"]) == (200, "host/forecast/cpu")
    assert (forecast.status_code, forecast.json()["series"]) == (200, "host/forecast/cpu")
    assert recent.status_code == 200


@pytest.mark.parametrize(
    ("path", "content"),
    [
        (URL, b'{"series": "a", "value": 1.0}'),
        (URL, b"series=a&value=1.0"),
        ("/v1/models", b'{"name": "m"}'),
    ],
)
async def test_a_body_declared_as_a_form_gets_415_naming_the_content_type(client_for, path, content) -> None:
    async with client_for() as client:  # what `curl -d` sends
        response = await client.post(
            path, content=content, headers={"content-type": "application/x-www-form-urlencoded"}
        )
    assert response.status_code == 415, response.text
    assert response.json() == {
        "detail": "Content-Type 'application/x-www-form-urlencoded' is not JSON: send the body as JSON with "
        "'Content-Type: application/json'"
    }


async def test_a_body_without_a_content_type_gets_415_saying_it_is_missing(client_for) -> None:
    async with client_for() as client:
        response = await client.post(URL, content=b'{"series": "a", "value": 1.0}')
        charset = await client.post(
            URL, content=b'{"series": "a", "value": 1.0}', headers={"content-type": "application/json; charset=utf-8"}
        )
    assert (response.status_code, response.json()) == (
        415,
        {"detail": "the body has no Content-Type: send it as JSON with 'Content-Type: application/json'"},
    )
    assert charset.status_code == 200, charset.text


@pytest.mark.parametrize(
    ("path", "body"),
    [(URL, {"series": "a", "value": 1.0}), (URL, {"observations": [{"series": "a", "value": 1.0}] * 3}),
     ("/v1/models", {"name": "m"})],
)  # fmt: skip
@pytest.mark.parametrize("coding", ["gzip", "identity, gzip", "br"])
async def test_a_compressed_body_gets_415_naming_its_coding_and_nothing_is_stored(
    client_for, path, body, coding
) -> None:
    # fix (hostile test): Content-Encoding was ignored, and gzip was read as JSON text ("the body is not
    # UTF-8: byte 0x8b at byte 1", 422)
    content = gzip.compress(orjson.dumps(body))
    async with client_for() as client:
        response = await client.post(
            path, content=content, headers={"content-type": "application/json", "content-encoding": coding}
        )
        plain = await client.post(
            path,
            content=orjson.dumps(body),
            headers={"content-type": "application/json", "content-encoding": "identity"},
        )
        listed = (await client.get("/v1/models/default/series")).json()["series"]
        count = (await client.get("/v1/models/default/series/a")).json().get("count")
        models = [m["name"] for m in (await client.get("/v1/models")).json()["models"]]
    name = coding.split(",")[-1].strip()
    assert response.status_code == 415, response.text
    assert response.json() == {
        "detail": f"Content-Encoding '{name}' is not supported: send the body uncompressed (identity)"
    }
    assert plain.status_code in (200, 201), plain.text
    if path == URL:  # what the plain request sent, once
        assert (listed, count) == (["a"], len(body.get("observations", [0])))
    else:
        assert models == ["default", "m"]


@pytest.mark.parametrize(
    "path",
    ["/healthz", "/readyz", "/metrics", "/", "/docs", "/v1/models", "/v1/models/default", "/v1/models/default/series",
     "/v1/models/default/series/a", "/v1/models/default/series/a/forecast?horizon=2", "/v1/models/nope"],
)  # fmt: skip
async def test_head_answers_as_get_without_the_body(client_for, path) -> None:
    # Fix: HEAD answered 405 on every GET route (HTTP asks that it be served where GET is)
    async with client_for(api_key="k3y") as client:
        key = {"authorization": "Bearer k3y"}
        assert (await client.post(URL, json={"series": "a", "value": 1.0}, headers=key)).status_code == 200
        get = await client.get(path, headers=key)
        head = await client.head(path, headers=key)
        unauthorized = await client.head("/v1/models")
    assert head.status_code == get.status_code in (200, 404), get.text
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    if path != "/metrics":  # its counters moved between the two requests
        assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.content))
    assert unauthorized.status_code == 401 and unauthorized.content == b""


async def test_head_of_a_path_without_get_is_405_naming_its_methods(client_for) -> None:
    async with client_for() as client:
        response = await client.head(URL)
        listed = (await client.get("/v1/models/default")).json()
    assert (response.status_code, response.headers["allow"]) == (405, "OPTIONS, POST")
    assert listed["observations"] == 0  # nothing was applied


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        (URL, b'{"series": "a", "value": 1.5}', 200),  # the fast path
        (URL, b'{"series": "a", "value": 1.5, "timestamp": "2024-01-01T00:00:00Z"}', 200),  # pydantic's path
        (URL, b'{"observations": [{"series": "a", "value": 1.5}]}', 200),
        ("/v1/models", b'{"name": "m"}', 201),
    ],
)
async def test_a_json_body_starting_with_a_utf8_bom_is_read(client_for, path, body, status) -> None:
    # Fix: a leading byte order mark (PowerShell's Out-File writes one) was a 422; RFC 8259 lets a parser ignore it
    async with client_for() as client:
        bom = await client.post(path, content=b"\xef\xbb\xbf" + body, headers={"content-type": "application/json"})
        series = (await client.get("/v1/models/default/series/a")).json() if path == URL else None
        models = [m["name"] for m in (await client.get("/v1/models")).json()["models"]]
    assert bom.status_code == status, bom.text
    if path == URL:
        assert bom.json()["results"][0]["value"] == 1.5 and series["count"] == 1
    else:
        assert models == ["default", "m"]


async def test_a_bom_alone_or_inside_the_json_is_still_malformed(client_for) -> None:
    async with client_for() as client:
        alone = await client.post(URL, content=b"\xef\xbb\xbf", headers={"content-type": "application/json"})
        twice = await client.post(
            URL, content=b"\xef\xbb\xbf\xef\xbb\xbf{}", headers={"content-type": "application/json"}
        )
    assert alone.status_code == twice.status_code == 422
    assert twice.json()["detail"].startswith("malformed JSON body at character 0"), twice.text


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"series":"\xe9","value":1}', "byte 0xe9 at byte 11"),  # Latin-1, not UTF-8
        ('{"series": "a", "value": 1}'.encode("utf-16"), "byte 0xff at byte 0"),
        (b'\xef\xbb\xbf{"series":"\xe9","value":1}', "byte 0xe9 at byte 14"),  # the offset counts the BOM
    ],
)
async def test_a_body_that_is_not_utf8_gets_422_naming_the_first_bad_byte(client_for, content, expected) -> None:
    # fix (a review): such a body was "malformed JSON body at character 0: str is not valid UTF-8:
    # surrogates not allowed", whatever the byte and wherever it was
    async with client_for() as client:
        answer = await client.post(URL, content=content, headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail.startswith("malformed JSON body at character") and expected in detail, detail
    assert "the body is not UTF-8" in detail and "surrogates" not in detail, detail


@pytest.mark.parametrize("body_start", [b'{"series": "a", ', b"series=a"])
async def test_a_client_gone_in_the_middle_of_its_body_raises_nothing_out_of_the_app(client_for, body_start) -> None:
    """A body cut off by the client's disconnect: on the observations route the fast path's read let
    starlette's ClientDisconnect out of the app, which the server logged as a 65-line ASGI error
    (a hostile test: anyone could flood the log); other routes, FastAPI's, end quietly. Nothing is applied."""
    async with client_for() as client:
        app = client._transport.app  # the ASGI app behind the test client
        messages = [{"type": "http.request", "body": body_start, "more_body": True}, {"type": "http.disconnect"}]

        async def receive() -> dict:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            pass

        headers = [(b"host", b"test"), (b"content-type", b"application/json"), (b"content-length", b"100")]
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": URL, "raw_path": URL.encode(), "query_string": b"", "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 50000), "server": ("test", 80),
        }  # fmt: skip
        await app(scope, receive, send)
        assert (await client.get("/v1/models/default/series/a")).status_code == 404
