"""``benchmarks.openmp_spin`` at its smoke size: every libgomp wait measured in a process of its own,
under the wait it names, its parts inside its tick."""

from __future__ import annotations

import pytest

from benchmarks.openmp_spin import PARTS, WAITS
from tests.benchmarks.smoke import run_smoke


def test_openmp_spin_smoke_runs_each_wait_in_its_own_process(tmp_path):
    payload = run_smoke("openmp_spin", tmp_path)
    assert [r["wait"] for r in payload["rows"]] == list(WAITS)
    for wait, runs in payload["runs"].items():
        # libgomp's default is the variable unset (the package does not set it: torch is loaded first)
        assert [r["gomp_spincount"] for r in runs] == [None if wait == WAITS[0] else wait] * payload["rounds"]
        for r in runs:
            parts = sum(r[f"{p}_us_per_series"] for p in PARTS)
            assert 0 < parts < r["tick_us_per_series"]  # timed inside the tick
            assert r["obs_per_s"] == pytest.approx(1e6 / r["tick_us_per_series"], rel=1e-12)
