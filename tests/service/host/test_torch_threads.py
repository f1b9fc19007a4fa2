"""TBPTT_TORCH_THREADS: torch's thread count while the app runs, and what it was afterwards."""

from __future__ import annotations

import pytest
import torch

from tbptt_service.api.app import create_app
from tbptt_service.settings import Settings

pytestmark = pytest.mark.anyio


def test_the_setting_is_read_from_the_environment_with_default_one(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().torch_threads == 1
    monkeypatch.setenv("TBPTT_TORCH_THREADS", "2")
    assert Settings().torch_threads == 2
    monkeypatch.setenv("TBPTT_TORCH_THREADS", "0")
    with pytest.raises(ValueError, match="torch_threads"):
        Settings()


async def test_the_app_runs_with_the_setting_and_restores_the_count_at_shutdown(make_settings, serve) -> None:
    before = torch.get_num_threads()
    wanted = 2 if before == 1 else 1
    app = create_app(make_settings(torch_threads=wanted))
    async with serve(app) as client:
        assert torch.get_num_threads() == wanted
        response = await client.post("/v1/models/default/observations", json={"series": "a", "value": 1.0})
        assert response.status_code == 200
    assert torch.get_num_threads() == before
