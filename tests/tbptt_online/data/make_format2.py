"""Writes format2_before_guards.pt: format-2 checkpoints made by the code before the truncation
advisor and the instability guards (commit c56a363, the parent of 43e0739), and what that code
did after them, for tests/tbptt_online/test_state_format.py. Run with the old library first on
the path (the fixture is committed; this is how it was made):

    git archive c56a363 tbptt_online | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old python tests/tbptt_online/data/make_format2.py
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from tbptt_online import Forecaster, ForecasterConfig

CONFIGS = {
    "network": dict(hidden_size=8, k1=4, k2=8, hybrid=False, seed=3),
    "hybrid": dict(hidden_size=8, k1=4, k2=8, season_length=12, max_season_length=24, calibrated_horizon=3, seed=4),
}
SERIES = ("a", "b", "c")
BEFORE, AFTER = 60, 120


def value(series: int, t: int) -> float:
    """A season of 12 with a level per series and a deterministic wobble."""
    return 10.0 * (series + 1) + 3.0 * math.sin(2 * math.pi * t / 12) + math.sin(1.7 * t * (series + 2))


def main() -> None:
    out = {}
    for name, fields in CONFIGS.items():
        forecaster = Forecaster(ForecasterConfig(**fields))
        for t in range(BEFORE):
            forecaster.observe_many([(s, value(i, t)) for i, s in enumerate(SERIES)])
        state = forecaster.state_dict()
        assert state["format"] == 2 and "probe" not in state and "guard" not in state["engine"]
        rows = []
        for t in range(BEFORE, BEFORE + AFTER):
            results = forecaster.observe_many([(s, value(i, t)) for i, s in enumerate(SERIES)])
            for r in results:
                rows.append([r.forecast_next.mean, r.forecast_next.lower, r.forecast_next.upper, float(r.updated)])
        out[name] = {
            "state": state,
            "after": torch.tensor(rows, dtype=torch.float64),
            "updates": forecaster.engine.updates,
        }
    torch.save(out, Path(__file__).with_name("format2_before_guards.pt"))


if __name__ == "__main__":
    main()
