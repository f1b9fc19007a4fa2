"""What the durability tests compare: a model's complete state as the API shows it, and a
state directory as a crash would leave it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx

from tbptt_service.host.model_state import decode_model_checkpoint, to_plain

from .bitwise import assert_bitwise_equal


async def model_state(client: httpx.AsyncClient, model: str = "default") -> dict[str, Any]:
    """Everything of one model: its downloaded checkpoint (forecaster state and per-series marks), its
    info, and each series' statistics and 3-step forecast; where it is (seq) and its name left out."""
    response = await client.get(f"/v1/models/{model}/checkpoint")
    assert response.status_code == 200, response.text
    plain = to_plain(decode_model_checkpoint(response.content))
    del plain["seq"], plain["name"]  # where in the log it was taken, and under which name: not the state
    info = (await client.get(f"/v1/models/{model}")).json()
    del info["name"]
    series = {}
    for name in sorted(n for n in plain["forecaster"]["store"]["names"] if n is not None):
        stats = (await client.get(f"/v1/models/{model}/series/{name}")).json()
        forecast = (await client.get(f"/v1/models/{model}/series/{name}/forecast", params={"horizon": 3})).json()
        del forecast["model"]
        series[name] = {"stats": stats, "forecast": forecast}
    return {"checkpoint": plain, "info": info, "series": series}


def assert_same_state(got: dict[str, Any], expected: dict[str, Any]) -> None:
    """Two ``model_state`` results equal: every tensor bit for bit, every other value exactly."""
    assert_bitwise_equal(got["checkpoint"], expected["checkpoint"])
    assert got["info"] == expected["info"]
    assert got["series"] == expected["series"]


def crash_copy(state_dir: Path, to: Path) -> Path:
    """``state_dir`` copied as a ``kill -9`` would leave it now (call it while the app is idle):
    the log's database and its write-ahead file, the checkpoints; not SQLite's shared-memory index,
    which a process rebuilds when it opens the log."""
    shutil.copytree(state_dir, to, ignore=shutil.ignore_patterns("*-shm"))
    return to
