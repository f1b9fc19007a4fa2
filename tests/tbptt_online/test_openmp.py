"""The package asks libgomp for a short busy wait (``GOMP_SPINCOUNT``) before torch loads it, and
never overrides a value of the user's or one libgomp has already read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tbptt_online import openmp

ROOT = Path(__file__).resolve().parents[2]


def spin_seen_by(code: str, **env: str) -> str:
    """``GOMP_SPINCOUNT`` as a fresh interpreter that runs ``code`` has it ("unset" where it has none)."""
    environment = {k: v for k, v in os.environ.items() if k not in (openmp.VARIABLE, openmp.POLICY)}
    environment.update(env, PYTHONPATH=str(ROOT))
    probe = f"{code}\nimport os\nprint(os.environ.get({openmp.VARIABLE!r}, 'unset'))"
    done = subprocess.run([sys.executable, "-c", probe], env=environment, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_importing_the_package_before_torch_sets_the_short_spin() -> None:
    assert spin_seen_by("import tbptt_online\nimport torch") == str(openmp.SPIN_COUNT) == "10000"


def test_a_spin_count_the_user_set_is_kept() -> None:
    assert spin_seen_by("import tbptt_online", GOMP_SPINCOUNT="300000") == "300000"


@pytest.mark.parametrize("policy", ["ACTIVE", "PASSIVE"])
def test_a_wait_policy_the_user_set_is_not_overridden(policy: str) -> None:
    # libgomp lets GOMP_SPINCOUNT win over OMP_WAIT_POLICY: setting it would undo the user's choice
    environment = {"OMP_WAIT_POLICY": policy}
    assert spin_seen_by("import tbptt_online\nimport torch", **environment) == "unset"


def test_nothing_is_set_once_torch_is_loaded_before_the_package() -> None:
    # libgomp has read the variable when torch loaded it: setting it then would claim what is not so
    assert spin_seen_by("import torch\nimport tbptt_online") == "unset"


def test_the_server_process_loads_the_package_before_torch() -> None:
    # serve sets OMP_NUM_THREADS before it imports torch; the package (and its spin) comes first
    assert spin_seen_by("import sys, tbptt_service.cli.main\nassert 'torch' not in sys.modules") == "10000"


def test_prefer_short_spin_reports_whether_it_set_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(openmp.VARIABLE, raising=False)
    monkeypatch.delenv(openmp.POLICY, raising=False)
    assert "torch" in sys.modules  # (this test process has loaded it)
    assert openmp.prefer_short_spin() is False and openmp.VARIABLE not in os.environ
    monkeypatch.delitem(sys.modules, "torch")
    assert openmp.prefer_short_spin() is True and os.environ[openmp.VARIABLE] == "10000"
    monkeypatch.setenv(openmp.VARIABLE, "5")
    assert openmp.prefer_short_spin() is False and os.environ[openmp.VARIABLE] == "5"
    monkeypatch.delenv(openmp.VARIABLE)
    monkeypatch.setenv(openmp.POLICY, "PASSIVE")
    assert openmp.prefer_short_spin() is False and openmp.VARIABLE not in os.environ
