"""Load (or, the first time on a machine, compile) every compiled kernel before it is needed.

numba compiles a kernel at its first call for the argument types it sees, and loads it
from the cache (``compiled.py``) in later processes. ``warm_kernels`` makes those first
calls through the library's own wrappers (so with the types a tick passes) on blank rows
of one series: no forecaster, no network, no random numbers, so it may run beside other
work (the service runs it beside its recovery) and a service's first request does not
wait for it (tens of seconds on a clean checkout, under a second from the cache).
"""

from __future__ import annotations

import time


def warm_kernels() -> float:
    """Run every kernel once on blank rows; returns the seconds it took."""
    import torch

    from tbptt_online import experts, gru_window, hybrid, hybrid_tick

    started = time.perf_counter()
    horizons, d = 2, 1
    store = hybrid.fields(1, d, ring=8, max_season=4, horizons=horizons)  # a store of one series
    rows = {k: v if k in experts.SHARED else v.clone() for k, v in store.items() if k.startswith(hybrid.PREFIXES)}
    rows["slot"] = torch.zeros(1, dtype=torch.int64)
    y, mask, step = (
        torch.ones(1, d, dtype=torch.float64),
        torch.ones(1, d, dtype=torch.bool),
        torch.ones(1, dtype=torch.int64),
    )
    origin = (store["c_origin"], store["c_origin_ref"])
    target, _ = hybrid_tick.score_and_advance(rows, y.numpy(), mask.numpy(), None, step, 0.9, origin)
    _, tick_paths, tick_base = hybrid_tick.base_and_input(rows, y.numpy(), step, target, horizons)
    pred = torch.zeros(1, d)  # the network's output (float32: the default dtype)
    hybrid_tick.remember_and_serve(rows, step, pred, tick_paths, tick_base, origin)
    paths = experts.paths(rows, step, horizons)  # a forecast's (``hybrid.members``)
    base = hybrid.base_path(rows, paths)
    hybrid.members(rows, step, horizons, paths, base)
    hybrid.half_widths(rows, horizons)
    hybrid.served_weights(rows)  # a series' stats
    gru_window.warm(torch.float32)  # a one-series update's replay (the default dtype)
    return time.perf_counter() - started
