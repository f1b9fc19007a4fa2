"""Load (or, the first time on a machine, compile) every compiled kernel before it is needed.

numba compiles a kernel at its first call for the argument types it sees, and loads it
from the cache (``compiled.py``) in later processes. ``warm_kernels`` makes those first
calls on a throwaway forecaster, through every kernel entry point with the types the
library passes (a tick, a forecast past the calibrated horizon, a series' stats), so a
service is ready only once its first request would not wait for them (tens of seconds
on a clean checkout, about a second from the cache).
"""

from __future__ import annotations

import time


def warm_kernels() -> float:
    """Run every kernel once; returns the seconds it took."""
    from tbptt_online import Forecaster, ForecasterConfig  # (torch is imported only here)

    started = time.perf_counter()
    forecaster = Forecaster(ForecasterConfig(hidden_size=4, season_length=[4], calibrated_horizon=4))
    for step in range(12):
        forecaster.observe("a", 10.0 + step % 4 if step != 5 else None)
    forecaster.forecast("a", horizon=8)  # past the calibrated horizon: the members again
    forecaster.series_stats("a")  # the members' weights
    return time.perf_counter() - started
