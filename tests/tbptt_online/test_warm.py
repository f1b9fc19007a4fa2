"""``warm_kernels`` compiles (or loads) every kernel a default forecaster's ticks and forecasts
call, with the types and array layouts they pass: after it, ticks of one, two and three series,
forecasts (at the model's level and at others) and series stats compile nothing more (the
service runs it at start so that no request waits for a compilation). In a fresh process: this
one has compiled more by now."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import importlib, json, math
from numba.core.registry import CPUDispatcher
from tbptt_online.compiled import KERNEL_MODULES
from tbptt_online.warm import warm_kernels

def signatures():
    out = {}
    for name in KERNEL_MODULES:
        module = importlib.import_module(f"tbptt_online.{name}")
        for attr, obj in vars(module).items():
            if isinstance(obj, CPUDispatcher) and obj.__module__ == module.__name__:
                out[f"{name}.{attr}"] = [str(s) for s in obj.signatures]
    return out

warm_kernels()
before = signatures()
from tbptt_online import Forecaster, ForecasterConfig
f = Forecaster(ForecasterConfig(seed=0))
for t in range(60):  # updates, season detections, an outlier now and then
    f.observe_many([(s, 10 + math.sin(t / 3 + i) + (t % 7 == 0) * 50) for i, s in enumerate(("a", "b"))])
    f.observe_many([("c", 5.0 + t % 3)])
    f.observe_many([(s, 1.0 + t % 5) for s in ("d", "e", "f")][: 1 + t % 3])
    f.forecast("a", horizon=12)
    f.forecast_many([("b", 6), ("c", 12)])
f.forecast("a", horizon=12, level=0.8)  # another level than the model's (its ratios' kernels)
f.forecast_many([("b", 6, 0.5), ("c", 3, 0.99)])
f.series_stats("a")
after = signatures()
new = {k: sorted(set(v) - set(before.get(k, []))) for k, v in after.items()}
print(json.dumps({k: v for k, v in new.items() if v}))
"""


def test_after_warm_kernels_a_default_forecasters_ticks_and_forecasts_compile_nothing() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=True
    )
    compiled_later = json.loads(run.stdout.strip().splitlines()[-1])
    assert compiled_later == {}
