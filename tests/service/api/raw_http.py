"""Reading a raw HTTP connection in the protocol tests (a socket, no client library)."""

from __future__ import annotations

import socket


def read_until_closed(sock: socket.socket, timeout_s: float) -> tuple[bytes, bool]:
    """What the server sent until it closed the connection (True) or ``timeout_s`` passed (False)."""
    sock.settimeout(timeout_s)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        return data, False
    return data, True
