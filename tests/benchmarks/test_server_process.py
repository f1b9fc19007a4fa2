"""The test servers' ports: outside the kernel's ephemeral range and never handed out twice.

CI saw a cluster front fail with "address already in use" on a port ``free_port`` had just
returned: the kernel's pick (bind to 0) lies in the range from which outgoing connections take
their local ports, and the Ray nodes beside the test open many.
"""

from __future__ import annotations

import socket

from benchmarks.server_process import _ephemeral_range, free_port


def test_free_ports_lie_below_the_ephemeral_range_and_are_never_repeated() -> None:
    low = _ephemeral_range()[0]
    ports = [free_port() for _ in range(300)]
    assert all(port < low for port in ports)
    assert len(set(ports)) == len(ports)


def test_a_free_port_can_be_listened_on() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
