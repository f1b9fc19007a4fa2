"""TBPTT_MAX_CONNECTIONS (connection_cap.py): past the cap an idle connection gives way, else the new one is
answered 503 in JSON (probes served), and past twice the cap a connection is closed unanswered.

Nothing bounded connections before (a hostile test, session 60: F6, F7): every test here failed on
``head_limited_protocol``, which served them all.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator

import orjson
import pytest
import uvicorn

from benchmarks.server_process import free_port
from tbptt_service.api.connection_cap import ConnectionCapProtocol, connection_capped_protocol
from tests.service.api.raw_http import read_until_closed

RELEASE = threading.Event()  # the held requests (``/hold``) are answered once it is set
HELD: list[str] = []  # a path per request the app is holding
ANSWERED_BIG: list[int] = []  # a byte count per answer of /big written to its connection


BIG = 8 * 2**20  # the bytes ``/big`` answers


async def holding(scope, receive, send) -> None:
    """Answers ``{"path": ...}``; ``/hold`` once ``RELEASE`` is set; ``/big``, ``BIG`` bytes."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/big":
        headers = [(b"content-type", b"application/octet-stream"), (b"content-length", str(BIG).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"x" * BIG})
        ANSWERED_BIG.append(BIG)
        return
    if scope["path"] == "/hold":
        HELD.append(scope["path"])
        while not RELEASE.is_set():
            await asyncio.sleep(0.01)
    body = orjson.dumps({"path": scope["path"]})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Served:
    def __init__(self, server: uvicorn.Server, protocol: type[ConnectionCapProtocol], port: int) -> None:
        self.server, self.protocol, self.port = server, protocol, port
        self.held: list[socket.socket] = []  # closed at the test's end

    def open_connections(self) -> int:
        return len(self.server.server_state.connections)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port))


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.01)


@pytest.fixture
def serve() -> Iterator[Callable[[int], Served]]:
    """``serve(max_connections, send_timeout_s)``: the holding app on the capped protocol in a thread."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []
    started: list[Served] = []
    RELEASE.clear()
    HELD.clear()
    ANSWERED_BIG.clear()

    def start(max_connections: int, send_timeout_s: float = 30.0) -> Served:
        port = free_port()
        protocol = connection_capped_protocol(30.0, 65536, max_connections, send_timeout_s)
        config = uvicorn.Config(holding, host="127.0.0.1", port=port, log_level="error", http=protocol)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        wait_for(lambda: server.started, "the server started")
        started.append(Served(server, protocol, port))
        return started[-1]

    yield start
    RELEASE.set()
    for served in started:
        for sock in served.held:
            sock.close()
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


def holding_connections(served: Served, count: int) -> list[socket.socket]:
    """``count`` connections, each with a request the app holds."""
    socks = []
    for _ in range(count):
        sock = served.connect()
        sock.sendall(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(sock)
        served.held.append(sock)
    wait_for(lambda: len(HELD) == count, f"{count} requests held")
    return socks


def answer_of(sock: socket.socket) -> tuple[bytes, bytes, bool]:
    """The head and body the server sent, and whether it closed the connection (or reset it)."""
    try:
        data, closed = read_until_closed(sock, timeout_s=10)
    except ConnectionResetError:
        data, closed = b"", True
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body, closed


def test_past_the_cap_a_request_is_answered_503_in_json_with_retry_after(serve) -> None:
    served = serve(2)
    held = holding_connections(served, 2)
    with served.connect() as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body, closed = answer_of(sock)
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") and closed, head
    assert b"retry-after: 1" in head.lower() and b"content-type: application/json" in head.lower()
    assert orjson.loads(body)["detail"] == (
        "the server holds max_connections=2 connections (TBPTT_MAX_CONNECTIONS): try again shortly, or reuse a "
        "connection"
    )
    RELEASE.set()  # the connections within the cap were served all along
    for sock in held:
        sock.sendall(b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data, _ = read_until_closed(sock, timeout_s=10)
        assert data.count(b"HTTP/1.1 200 OK") == 2 and b'{"path":"/after"}' in data, data


@pytest.mark.parametrize("probe", [b"/healthz", b"/readyz?x=1"])
def test_a_probe_is_served_past_the_cap(serve, probe) -> None:
    served = serve(1)
    holding_connections(served, 1)
    with served.connect() as sock:
        sock.sendall(b"GET " + probe + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, body, closed = answer_of(sock)
    assert head.startswith(b"HTTP/1.1 200 OK") and closed, head
    assert orjson.loads(body) == {"path": probe.partition(b"?")[0].decode()}


def test_a_connection_that_sent_nothing_gives_way_to_one_with_a_request(serve) -> None:
    served = serve(2)
    idle = [served.connect(), served.connect()]  # they never send anything
    wait_for(lambda: len(served.protocol.waiting) == 2, "two connections waiting for a request")
    with served.connect() as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, body, _ = answer_of(sock)
    assert head.startswith(b"HTTP/1.1 200 OK") and orjson.loads(body) == {"path": "/a"}, head
    data, closed = read_until_closed(idle[0], timeout_s=10)  # the oldest was closed to make room
    assert (data, closed) == (b"", True)
    for sock in idle:
        sock.close()


def test_a_connection_sending_its_head_a_byte_at_a_time_gives_way_too(serve) -> None:
    # a hostile test (session 61): heads begun and never ended held every place for TBPTT_HEADER_TIMEOUT_S
    served = serve(2)
    slow = [served.connect(), served.connect()]
    for sock in slow:
        sock.sendall(b"GET /a HTTP/1.1\r\nX-Slow: ")
    begun = lambda: sum(p._head_bytes > 0 for p in list(served.server.server_state.connections))  # noqa: E731
    wait_for(lambda: begun() == 2, "two heads begun")
    with served.connect() as sock:
        sock.sendall(b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, body, _ = answer_of(sock)
    assert head.startswith(b"HTTP/1.1 200 OK") and orjson.loads(body) == {"path": "/b"}, head
    assert read_until_closed(slow[0], timeout_s=10) == (b"", True)  # the longest waiting, closed
    for sock in slow:
        sock.close()


def test_a_client_that_takes_none_of_its_answer_is_cut_off_after_send_timeout_s(serve) -> None:
    # a hostile test (session 61): a client that asked and never read held its place and the answer's bytes
    served = serve(4, send_timeout_s=0.5)
    reader = served.connect()
    reader.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data, closed = read_until_closed(reader, timeout_s=30)  # one that reads takes it all
    reader.close()
    assert closed and len(data.partition(b"\r\n\r\n")[2]) == BIG
    idle_reader = socket.socket()
    idle_reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    idle_reader.connect(("127.0.0.1", served.port))
    served.held.append(idle_reader)
    idle_reader.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")  # and never reads
    wait_for(lambda: len(ANSWERED_BIG) == 2 and served.open_connections() == 1, "the answer written, unread")
    wait_for(lambda: served.open_connections() == 0, "the connection that takes nothing closed")


def test_a_flood_of_idle_connections_leaves_room_for_a_request(serve) -> None:
    served = serve(4)
    flood = [served.connect() for _ in range(40)]
    wait_for(lambda: served.open_connections() <= 4, "the flood's connections closed but the cap's")
    with served.connect() as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, _, _ = answer_of(sock)
    assert head.startswith(b"HTTP/1.1 200 OK"), head
    for sock in flood:
        sock.close()


def test_past_twice_the_cap_a_connection_is_closed_unanswered(serve) -> None:
    served = serve(1)
    served.protocol.over_cap_head_s = 60.0  # (1 s: a loaded machine could let it pass before the test goes on)
    holding_connections(served, 1)
    waiting = served.connect()  # past the cap: it has OVER_CAP_HEAD_S to send its request line
    wait_for(lambda: served.open_connections() == 2, "the second connection accepted")
    with served.connect() as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body, closed = answer_of(sock)
    assert (head, body, closed) == (b"", b"", True)
    waiting.sendall(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")  # within its time: answered 503
    head, _, closed = answer_of(waiting)
    assert head.startswith(b"HTTP/1.1 503") and closed, head
    waiting.close()
