"""A throwaway PostgreSQL server on 127.0.0.1 (the cluster tests' and benchmarks' log store).

``initdb`` makes a new cluster in a fresh temporary directory, ``postgres`` serves it on a free
port (a child process: its PID is ours, and ``stop`` ends it by that PID with a fast shutdown,
SIGINT, then SIGKILL after ``grace_s``), and the directory goes with it. Never a system service.

The binaries are found on ``PATH`` first, then under ``/usr/lib/postgresql/*/bin`` (where Debian's
``postgresql`` package puts them), newest version first. PostgreSQL refuses to run as root: as
root, the server runs as the user ``nobody``, in a directory that user owns.

    with TemporaryPostgres() as pg:
        print(pg.url)  # postgresql://tbptt@127.0.0.1:PORT/postgres
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from benchmarks.server_process import free_port

UNPRIVILEGED_USER = "nobody"


def _version(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.parent.parent.name)) or (0,)


def postgres_bin_dir() -> Path | None:
    """The directory of ``initdb`` and ``postgres``, or None when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found is not None:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=_version, reverse=True)
    return candidates[0].parent if candidates else None


class TemporaryPostgres:
    """A new PostgreSQL cluster, served on 127.0.0.1 until ``stop`` (trust authentication: the
    port is bound to the loopback interface only, for tests and local benchmarks)."""

    def __init__(self, user: str = "tbptt", port: int | None = None) -> None:
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise FileNotFoundError("PostgreSQL is not installed: no initdb on PATH or under /usr/lib/postgresql/*/bin")
        self.bin_dir = bin_dir
        self.user = user
        self.port = port if port is not None else free_port()
        self.url = f"postgresql://{user}@127.0.0.1:{self.port}/postgres"
        self.directory: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._as_user: dict[str, str] = {}

    @property
    def log_path(self) -> Path:
        assert self.directory is not None, "start() first"
        return self.directory / "postgres.log"

    def start(self, timeout_s: float = 60.0) -> None:
        """initdb, start the server, wait until it accepts connections; ``stop()`` must follow."""
        self.directory = Path(tempfile.mkdtemp(prefix="tbptt-postgres-"))
        as_user: dict[str, str] = {}
        if os.geteuid() == 0:  # initdb and postgres refuse root
            entry = pwd.getpwnam(UNPRIVILEGED_USER)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
            as_user = {"user": UNPRIVILEGED_USER}
        data = self.directory / "data"
        subprocess.run(
            [str(self.bin_dir / "initdb"), "-D", str(data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            **as_user,
        )
        self._as_user = as_user
        self._launch(timeout_s)

    def _launch(self, timeout_s: float) -> None:
        assert self.directory is not None
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(self.bin_dir / "postgres"),
                    "-D",
                    str(self.directory / "data"),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={self.directory}",
                    "-c",
                    "max_connections=200",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                **self._as_user,
            )
        self._wait_ready(timeout_s)

    def halt(self, grace_s: float = 30.0) -> None:
        """Stop the server (fast shutdown) and keep its data: ``resume`` serves it again, same port."""
        self._shut_down(grace_s)

    def resume(self, timeout_s: float = 60.0) -> None:
        """Serve the data a ``halt`` kept, on the same port."""
        self._launch(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        import psycopg  # the cluster's dependency; only needed once a server runs

        deadline = time.monotonic() + timeout_s
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited while starting:\n{self.log_tail()}")
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"postgres was not ready within {timeout_s} s:\n{self.log_tail()}") from None
                time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace_s: float = 30.0) -> None:
        """Fast shutdown (SIGINT to our postgres PID), SIGKILL after ``grace_s``; the directory removed."""
        self._shut_down(grace_s)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def _shut_down(self, grace_s: float) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> TemporaryPostgres:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
