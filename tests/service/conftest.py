"""Fixtures for the service tests: settings, an in-process app with its lifespan, real server processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.settings import Settings

# A small model that learns (k1 = 4) and runs fast.
SMALL_MODEL: dict[str, Any] = {"hidden_size": 8, "k1": 4, "k2": 8, "dtype": "float64", "seed": 3}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_service_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from each test, never from the environment the suite runs in."""
    for key in list(os.environ):
        if key.startswith("TBPTT_"):
            monkeypatch.delenv(key)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"state_dir": tmp_path / "state", "default_model": SMALL_MODEL}
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def serve() -> Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]]:
    """Run an app's lifespan, wait for its state to load, and talk to it in-process."""

    @asynccontextmanager
    async def running(app: FastAPI, wait_ready: bool = True) -> AsyncIterator[httpx.AsyncClient]:
        async with app.router.lifespan_context(app):
            if wait_ready:
                await app.state.loading
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://service", timeout=60) as client:
                yield client

    return running


@pytest.fixture
def client_for(
    make_settings: Callable[..., Settings], serve: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
) -> Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]:
    """``async with client_for(max_horizon=5) as client``: a fresh app with those settings."""

    def build(**overrides: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return serve(create_app(make_settings(**overrides)))

    return build


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A real ``tbptt-online serve`` (or any command) on 127.0.0.1:port; stopped by the fixture."""

    def __init__(self, command: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(command, env=env, stdout=self._log_file, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(0.1)
        raise AssertionError(f"server not ready after {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> int:
        """SIGTERM (graceful), then the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_file.close()
        return self.process.returncode


def console_script(name: str) -> str:
    """The installed console script, found next to this interpreter first."""
    found = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    assert found is not None, f"console script {name!r} is not installed (pip install -e .)"
    return found


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """``start_server(command, settings_env, state_dir)``: a server on 127.0.0.1 and a free port,
    whatever ``settings_env`` says about host, port and (unless given) state dir."""
    started: list[ServerProcess] = []

    def start(
        command: list[str] | None = None, settings_env: dict[str, str] | None = None, state_dir: Path | None = None
    ) -> ServerProcess:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TBPTT_")}
        env.update(settings_env or {})
        env.update(
            {
                "TBPTT_HOST": "127.0.0.1",
                "TBPTT_PORT": str(port),
                "TBPTT_STATE_DIR": str(state_dir or tmp_path / "state"),
            }
        )
        server = ServerProcess(
            command or [console_script("tbptt-online"), "serve"], env, port, tmp_path / f"server-{port}.log"
        )
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()
