"""The Dockerfile and docker-compose.yml agree with each other and with the app, and the exact
command the container runs serves the app (no Docker engine here: the command runs as a process)."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import tbptt_online
from tbptt_service.api.app import create_app
from tbptt_service.settings import Settings

from .conftest import console_script

ROOT = Path(__file__).resolve().parents[2]


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if not line.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in text.splitlines() if line.strip()
    ]


def instruction(name: str) -> list[str]:
    return [args for kind, args in dockerfile() if kind == name]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in instruction("ENV"):
        env.update(pair.split("=", 1) for pair in shlex.split(args))
    return env


def compose_service() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return compose["services"]["tbptt-online"] | {"_volumes": compose.get("volumes", {})}


def healthcheck_url(command: list[str]) -> str:
    found = re.search(r"http://[^'\"]+", " ".join(command))
    assert found, command
    return found.group(0)


def test_the_image_is_python_slim_with_cpu_torch_and_no_root() -> None:
    assert instruction("FROM") == ["python:3.11-slim"]
    assert any("torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in run for run in instruction("RUN"))
    users = instruction("USER")
    assert users and users[-1] not in ("root", "0")


def test_dockerfile_and_compose_agree_with_each_other_and_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    env, service = dockerfile_env(), compose_service()
    port, state_dir = env["TBPTT_PORT"], env["TBPTT_STATE_DIR"]
    assert env["TBPTT_HOST"] == "0.0.0.0"
    assert instruction("EXPOSE") == [port]
    assert json.loads(instruction("VOLUME")[0]) == [state_dir]

    cmd = json.loads(instruction("CMD")[0])
    assert cmd == ["tbptt-online", "serve"] == service["command"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[cmd[0]] == "tbptt_service.cli.main:main"

    environment = service["environment"]
    assert (environment["TBPTT_HOST"], environment["TBPTT_PORT"], environment["TBPTT_STATE_DIR"]) == (
        "0.0.0.0",
        port,
        state_dir,
    )
    assert [p.split(":")[-1] for p in service["ports"]] == [port]
    volume, target = service["volumes"][0].split(":")
    assert target == state_dir and volume in service["_volumes"]  # a named volume, declared
    assert service["restart"] in ("always", "unless-stopped", "on-failure")

    docker_check = json.loads(instruction("HEALTHCHECK")[0].split("CMD", 1)[1].strip())
    assert service["healthcheck"]["test"] == ["CMD", *docker_check]
    url = httpx.URL(healthcheck_url(docker_check))
    # readiness, not liveness: a server that is up but not serving (still loading, or failed to) is unhealthy
    assert (url.host, url.port, url.path) == ("127.0.0.1", int(port), "/readyz")
    assert "get" in create_app(Settings()).openapi()["paths"][url.path]  # the app serves that path

    for key, value in environment.items():
        monkeypatch.setenv(key, str(value))
    settings = Settings()  # the compose environment is valid settings
    assert (settings.port, str(settings.state_dir)) == (int(port), state_dir)


@pytest.mark.timeout(120)
def test_the_container_command_serves_the_app(start_server, tmp_path) -> None:
    """Run the CMD with the compose environment, but on 127.0.0.1, a free port and a temporary state dir."""
    service = compose_service()
    command = json.loads(instruction("CMD")[0])
    state_dir = tmp_path / "container-state"
    environment = {k: str(v) for k, v in service["environment"].items()}
    server = start_server([console_script(command[0]), *command[1:]], settings_env=environment, state_dir=state_dir)
    # The container's own health check, pointed at this port, passes.
    check = [sys.executable if part == "python" else part for part in service["healthcheck"]["test"][1:]]
    check = [part.replace(":8000/", f":{server.port}/") for part in check]
    assert subprocess.run(check, timeout=30).returncode == 0
    assert state_dir.is_dir()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/healthz").json() == {"status": "ok", "version": tbptt_online.__version__}
        posted = client.post("/v1/models/default/observations", json={"series": "a", "value": 1.0})
        assert posted.status_code == 200 and posted.json()["results"][0]["step"] == 1
        info = client.get("/v1/models/default").json()
        assert info["config"]["hidden_size"] == json.loads(environment["TBPTT_DEFAULT_MODEL"])["hidden_size"]
    assert server.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM once it has shut down cleanly
    assert "Application shutdown complete" in server.log_path.read_text()
