"""The head limits' protocol (head_limits.py) with pipelined requests: a head is counted
whenever it arrives, a body never is, and the deadline runs only while the client owes a head.

A review found each of these on the first version, which counted and timed a head only while
the deadline was armed, and armed it whenever the pipeline queue was empty: a pipelined POST's
body was counted as a head (431 for a 200 KB body), a head sent while an earlier request ran
was not counted (1 MB taken against a limit of 4,096), and a pipelined request that outlived
``header_timeout_s`` was closed unanswered (that one since the deadline's first version).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import orjson
import pytest
import uvicorn

from benchmarks.server_process import free_port
from tbptt_service.api.head_limits import head_limited_protocol
from tests.service.api.raw_http import read_until_closed

SLOW_S = 1.0


async def echo(scope, receive, send) -> None:
    """Answers ``{"path": ..., "body": <bytes received>}``; ``/slow`` after SLOW_S."""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    if scope["path"] == "/slow":
        await asyncio.sleep(SLOW_S)
    body = f'{{"path": "{scope["path"]}", "body": {size}}}'.encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def serve() -> Iterator[Callable[..., int]]:
    """``serve(timeout_s, max_bytes)``: the echo app on the protocol in a thread; its port."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(timeout_s: float = 30.0, max_bytes: int = 4096) -> int:
        port = free_port()
        protocol = head_limited_protocol(timeout_s, max_bytes)
        server = uvicorn.Server(uvicorn.Config(echo, host="127.0.0.1", port=port, log_level="error", http=protocol))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return port

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_pipelined_requests_body_is_not_counted_as_a_head(serve) -> None:
    port = serve()
    body = b"b" * 200_000
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
            + b"POST /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 200000\r\n\r\n"
            + body
        )
        data, closed = read_until_closed(sock, timeout_s=10)
    assert data.count(b"HTTP/1.1 200") == 2 and b'"body": 200000' in data, data[-300:]
    assert b"431" not in data and closed


def test_a_head_sent_while_an_earlier_request_runs_is_counted(serve) -> None:
    port = serve(max_bytes=4096)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nX-Big: ")
        with contextlib.suppress(OSError):  # the server may refuse before all of it is sent
            for _ in range(16):
                sock.sendall(b"a" * 65536)
            time.sleep(SLOW_S + 0.5)
            sock.sendall(b"\r\n\r\n")
        data, closed = read_until_closed(sock, timeout_s=10)
    assert data.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 431" in data, data[:300]
    assert b'"path": "/b"' not in data and closed


def test_a_pipelined_request_that_outlives_the_head_deadline_is_answered(serve) -> None:
    port = serve(timeout_s=SLOW_S / 2)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        data, closed = read_until_closed(sock, timeout_s=10)
    assert data.count(b"HTTP/1.1 200") == 2 and b'"path": "/slow"' in data, data
    assert closed  # then the next head's deadline ran out: closed with nothing sent


def test_empty_lines_before_a_request_line_do_not_end_its_head(serve) -> None:
    port = serve(max_bytes=4096)
    for lead in (b"", b"\r\n\r\n"):  # llhttp skips the empty lines; they are not the head's end
        with socket.create_connection(("127.0.0.1", port)) as sock:
            with contextlib.suppress(OSError):
                sock.sendall(lead + b"GET /a HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 60_000 + b"\r\n\r\n")
            data, closed = read_until_closed(sock, timeout_s=10)
        assert data.startswith(b"HTTP/1.1 431") and closed, (lead, data[:200])


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /a HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n",  # a control byte in a header value
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP AT ALL\r\n\r\n",  # after a good request, on the same connection
    ],
    ids=["control-byte", "length-and-chunked", "negative-length", "garbage-after-a-request"],
)
def test_a_request_the_parser_refuses_gets_a_400_in_json_and_the_connection_closes(serve, request_bytes) -> None:
    # fix (hostile test): uvicorn answered these "400 text/plain" with "Invalid HTTP request received."
    port = serve()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request_bytes)
        data, closed = read_until_closed(sock, timeout_s=10)
    answers = data.split(b"HTTP/1.1 ")[1:]
    refusal = answers[-1]
    assert refusal.startswith(b"400 Bad Request\r\n") and closed, data
    head, _, body = refusal.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower()
    assert orjson.loads(body) == {
        "detail": "Invalid HTTP request received: the request line, a header or the body's framing is malformed"
    }
    assert [a[:3] for a in answers[:-1]] == ([b"200"] if b"NOT HTTP" in request_bytes else [])


def test_bad_chunk_framing_in_the_middle_of_a_body_gets_the_400_at_once(serve) -> None:
    # fix (hostile test): the refusal waited for the answer to the request whose body was under way, whose
    # handler waited for the rest of that body: after body_timeout_s (30 s) a 408, and the 400 never came
    port = serve()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        time.sleep(0.3)
        sock.sendall(b"zz\r\n}\r\n0\r\n\r\n")
        data, closed = read_until_closed(sock, timeout_s=10)
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n") and closed, data
    assert time.monotonic() - started < 5
