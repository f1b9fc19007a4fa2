"""Fixtures for the service tests: settings, an in-process app with its lifespan, real server processes."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from benchmarks.postgres_server import TemporaryPostgres, postgres_bin_dir
from benchmarks.server_process import ServerProcess, free_port
from tbptt_service.api.app import create_app
from tbptt_service.settings import Settings

# A small model that learns (k1 = 4) and runs fast.
SMALL_MODEL: dict[str, Any] = {"hidden_size": 8, "k1": 4, "k2": 8, "dtype": "float64", "seed": 3, "warmup_updates": 0}


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


def console_script(name: str) -> str:
    """The installed console script, found next to this interpreter first."""
    found = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    assert found is not None, f"console script {name!r} is not installed (pip install -e .)"
    return found


def start_ready_server(
    folder: Path,
    started: list[ServerProcess],
    command: list[str] | None = None,
    settings_env: dict[str, str] | None = None,
    state_dir: Path | None = None,
) -> ServerProcess:
    """A server on 127.0.0.1 and a free port (``tbptt-online serve`` unless ``command``), whatever
    ``settings_env`` says about host, port and (unless given) state dir (else ``folder``/state), its log in
    ``folder``; added to ``started`` before it is waited for, so that whoever holds the list stops it (by its PID)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TBPTT_")}
    env.update(settings_env or {})
    env.update(
        {
            "TBPTT_HOST": "127.0.0.1",
            "TBPTT_PORT": str(port),
            "TBPTT_STATE_DIR": str(state_dir or folder / "state"),
        }
    )
    command = command or [console_script("tbptt-online"), "serve"]
    server = ServerProcess(command, env, port, folder / f"server-{port}.log")
    server.start()
    started.append(server)
    server.wait_ready()
    return server


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """``start_server(command, settings_env, state_dir)``: a server on 127.0.0.1 and a free port,
    whatever ``settings_env`` says about host, port and (unless given) state dir."""
    started: list[ServerProcess] = []

    def start(
        command: list[str] | None = None, settings_env: dict[str, str] | None = None, state_dir: Path | None = None
    ) -> ServerProcess:
        return start_ready_server(tmp_path, started, command, settings_env, state_dir)

    yield start
    for server in started:
        server.stop()


def require_postgres() -> None:
    """Skip where PostgreSQL is not installed, except in CI (``CI`` set), which must install it."""
    if postgres_bin_dir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: CI must install it (apt-get install -y postgresql)")
        pytest.skip("no PostgreSQL on this machine (apt-get install -y postgresql); CI requires it")


@pytest.fixture(scope="session")
def postgres() -> Iterator[TemporaryPostgres]:
    """One throwaway PostgreSQL server for the session (127.0.0.1, a free port, stopped by its PID)."""
    require_postgres()
    with TemporaryPostgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres: TemporaryPostgres, request: pytest.FixtureRequest) -> Iterator[str]:
    """The session's server, with a database of this test's own (dropped after it)."""
    import psycopg

    name = "t_" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
    with psycopg.connect(postgres.url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield postgres.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres.url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
