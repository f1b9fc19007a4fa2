"""The test servers' ports: outside the kernel's ephemeral range and never handed out twice.

CI saw a cluster front fail with "address already in use" on a port ``free_port`` had just
returned: the kernel's pick (bind to 0) lies in the range from which outgoing connections take
their local ports, and the Ray nodes beside the test open many.
"""

from __future__ import annotations

import socket

import pytest

from benchmarks.server_process import _LOWEST, _ephemeral_range, free_port


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


@pytest.mark.parametrize(("worker", "half"), [("gw0", 0), ("gw1", 1)])
def test_each_test_worker_draws_its_ports_from_its_own_slice(monkeypatch, worker, half) -> None:
    # the suite runs on 2 worker processes (pytest-xdist): drawn at random from one range, two workers could
    # hand out the same port before either server listened on it
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    width = (_ephemeral_range()[0] - _LOWEST) // 2
    ports = [free_port() for _ in range(100)]
    assert all(_LOWEST + half * width <= port < _LOWEST + (half + 1) * width for port in ports)
    monkeypatch.delenv("PYTEST_XDIST_WORKER")  # (not a worker: the whole range)
    assert _LOWEST <= free_port() < _ephemeral_range()[0]
