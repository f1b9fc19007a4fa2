"""The compose file's cluster profile: Ray's token authentication on for every Ray process, no Ray or
PostgreSQL port published (only the front's), and the front runs the cluster's serve command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tbptt_service.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ("postgres", "ray-head", "ray-worker", "front")


def services() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_the_cluster_is_a_profile_apart_from_the_single_process_service() -> None:
    found = services()
    assert "profiles" not in found["tbptt-online"]
    assert all(found[name]["profiles"] == ["cluster"] for name in CLUSTER)


def test_ray_runs_with_token_authentication_and_no_port_but_the_front_is_published() -> None:
    found = services()
    for name in ("ray-head", "ray-worker", "front"):
        environment = found[name]["environment"]
        assert environment["RAY_AUTH_MODE"] == "token"
        assert environment["RAY_AUTH_TOKEN"].startswith("${RAY_AUTH_TOKEN:?")  # required, never a default
    assert [name for name in CLUSTER if "ports" in found[name]] == ["front"]
    assert found["front"]["ports"] == ["8001:8000"]


def test_the_front_serves_the_cluster_with_the_shared_log_and_checkpoints() -> None:
    front = services()["front"]
    script = front["command"][-1]
    serve = script.split("exec ", 1)[1].replace("$${POSTGRES_PASSWORD}", "secret").split()
    assert serve[:2] == ["tbptt-online", "serve"]
    args = build_parser().parse_args(serve[1:])
    assert (args.ray, args.shards, args.state_dir) == ("auto", 4, "/shared/checkpoints")
    assert args.log_url == "postgresql://tbptt:secret@postgres:5432/tbptt"
    assert all("tbptt-shared:/shared" in services()[name]["volumes"] for name in ("ray-head", "ray-worker", "front"))


def test_every_volume_the_cluster_writes_is_a_directory_the_image_gives_its_user() -> None:
    # an operator's hostile test (session 58, by reading): the image made no /shared, so Docker would make the named
    # volume root's and the shards, running as tbptt, could not write their checkpoints in it
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    user = next(line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER "))
    run = next(line for line in dockerfile.splitlines() if line.startswith("RUN useradd"))
    made = {path for part in run.split("&&") if "mkdir" in part for path in part.split() if path.startswith("/")}
    owned = {
        path for part in run.split("&&") if f"chown {user}:{user}" in part for path in part.split() if path[0] == "/"
    }
    for name in ("ray-head", "ray-worker", "front"):
        for volume in services()[name]["volumes"]:
            target = volume.split(":")[1]
            if not volume.startswith("/"):  # (a named volume: its first mount copies the image's directory)
                assert target in made and target in owned, (name, volume)
