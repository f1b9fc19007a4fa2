"""A server process on 127.0.0.1, ready when its /readyz says 200 (the HTTP benchmark's, and the
tests' real servers).

Its output goes to a log file (shown when it fails); ``stop`` sends SIGTERM and waits
(SIGKILL only after ``grace_s``), so no server outlives the benchmark. ``cpu_seconds``
reads the process's user + system time from /proc (None where there is no /proc).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx


def serve_command(*options: str) -> list[str]:
    """``python -m tbptt_service.cli serve OPTIONS`` with this interpreter."""
    return [sys.executable, "-m", "tbptt_service.cli", "serve", *options]


def server_env(port: int, state_dir: Path | str, **settings: str) -> dict[str, str]:
    """This process's environment without its own ``TBPTT_*`` settings, with ``settings`` (``TBPTT_*`` names)
    and a server on 127.0.0.1:``port`` over ``state_dir``: what a benchmark's server process runs with.

    >>> env = server_env(20001, "/tmp/s", TBPTT_LOG_LEVEL="warning")
    >>> [env[k] for k in ("TBPTT_HOST", "TBPTT_PORT", "TBPTT_STATE_DIR", "TBPTT_LOG_LEVEL")]
    ['127.0.0.1', '20001', '/tmp/s', 'warning']
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TBPTT_")}
    env.update(settings)
    env.update({"TBPTT_HOST": "127.0.0.1", "TBPTT_PORT": str(port), "TBPTT_STATE_DIR": str(state_dir)})
    return env


# Ports handed out by this process: a server started on one may not be listening yet when the
# next is asked for, so none is handed out twice.
_HANDED_OUT: set[int] = set()
# Below the kernel's ephemeral range and above Ray's worker ports (10002-19999 by default).
_LOWEST = 20000


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux's default where unknown)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, outside the kernel's ephemeral
    range, and not handed out before by this process.

    A port the kernel picks (bind to 0) lies in the ephemeral range, where any outgoing
    connection (a Ray worker's, a client's) may take it as its local port between this call and
    the server's bind: CI saw "address already in use" that way. A port below the range is taken
    only by a process that binds it by number.

    >>> port = free_port()
    >>> port < _ephemeral_range()[0] and port != free_port()
    True
    """
    lowest, low = _worker_slice(_LOWEST, _ephemeral_range()[0])
    rng = random.Random()  # seeded from the OS: concurrent processes draw different ports
    if low - lowest >= 1000:
        for _ in range(200):
            port = rng.randrange(lowest, low)
            if port in _HANDED_OUT:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _HANDED_OUT.add(port)
            return port
    while True:  # no room below the range (or all taken): the kernel's pick
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def _worker_slice(lowest: int, highest: int) -> tuple[int, int]:
    """[lowest, highest) cut in as many slices as the test run has worker processes (pytest-xdist's
    ``PYTEST_XDIST_WORKER`` gwN of ``PYTEST_XDIST_WORKER_COUNT``), this worker's slice; the whole range
    elsewhere. Two workers drawing ports at random from one range could hand out the same one before
    either server listened on it: from their own slices they never do."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not (worker.startswith("gw") and worker[2:].isdigit() and count.isdigit() and int(count) > 1):
        return lowest, highest
    index, width = int(worker[2:]), (highest - lowest) // int(count)
    return lowest + index * width, lowest + (index + 1) * width


class ServerProcess:
    def __init__(self, command: list[str], env: dict[str, str], port: int, log_path: Path) -> None:
        self.command, self.env, self.port, self.log_path = command, env, port, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None
        self.stop_seconds: float | None = None

    def start(self) -> None:
        """Start the command (its output to ``log_path``); ``stop()`` must follow."""
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"the server exited while starting:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(0.1)
        raise TimeoutError(f"the server was not ready within {timeout_s} s:\n{self.log_tail()}")

    def cpu_seconds(self) -> float | None:
        if self.process is None:
            return None
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime, in ticks

    def stop(self, grace_s: float = 60.0) -> int | None:
        """SIGTERM, then wait up to ``grace_s`` (SIGKILL after); the exit code."""
        if self.process is None or self.exit_code is not None:
            return self.exit_code
        started = time.perf_counter()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.exit_code = self.process.wait(timeout=10.0)
        self.stop_seconds = time.perf_counter() - started
        return self.exit_code

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""
