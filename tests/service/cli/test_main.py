"""``tbptt-online serve``: options override the TBPTT_* settings and reach uvicorn."""

from __future__ import annotations

import gc
import os
from typing import Any

import pytest
import uvicorn

from service.cli.main import build_parser, main


def test_serve_options_override_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append({"app": app, **kwargs}))
    monkeypatch.setenv("TBPTT_PORT", "9000")
    monkeypatch.setenv("TBPTT_HOST", "0.0.0.0")
    monkeypatch.setenv("TBPTT_TORCH_THREADS", "2")
    monkeypatch.setenv("OMP_NUM_THREADS", "8")  # what serve sets is undone after the test
    try:
        assert main(["serve", "--port", "9001", "--state-dir", str(tmp_path), "--log-level", "warning"]) == 0
    finally:
        gc.unfreeze()  # serve froze the objects of this (test) process for the collector
    (call,) = calls
    assert (call["host"], call["port"], call["log_level"]) == ("0.0.0.0", 9001, "warning")
    settings = call["app"].state.settings
    assert (settings.port, settings.state_dir, settings.torch_threads) == (9001, tmp_path, 2)
    assert os.environ["OMP_NUM_THREADS"] == "2"  # for the threads that never call torch.set_num_threads


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([])
    assert exit_info.value.code == 2
    assert "serve" in capsys.readouterr().err
