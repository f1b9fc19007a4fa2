"""Load (or, the first time on a machine, compile) every compiled kernel before it is needed.

numba compiles a kernel at its first call for the argument types it sees, and loads it
from the cache (``compiled.py``) in later processes. ``warm_kernels`` makes those first
calls through the library's own wrappers (so with the types a tick passes) on blank rows
of one series: no forecaster, no network, no random numbers, so it may run beside other
work (the service runs it beside its recovery) and a service's first request does not
wait for it (tens of seconds on a clean checkout, under a second from the cache). It runs
under ``compile.lock`` in the cache folder (``cache_lock.one_compiler``): of two processes
starting at once on a clean cache, one compiles and the other then loads.
"""

from __future__ import annotations

import time


def warm_kernels() -> float:
    """Run every kernel once on blank rows, one process at a time; returns the seconds it took (a wait
    for another process's compilation included)."""
    from tbptt_online.cache_lock import one_compiler
    from tbptt_online.compiled import cache_dir

    started = time.perf_counter()
    with one_compiler(cache_dir()):
        _run_every_kernel()
    return time.perf_counter() - started


def _run_every_kernel() -> None:
    import numpy as np
    import torch

    from tbptt_online import (
        calibration,
        experts,
        flat_runs,
        gru_rows,
        gru_window,
        hybrid,
        hybrid_tick,
        outliers,
        scoring,
        tick_kernels,
    )
    from tbptt_online.compiled import readable
    from tbptt_online.config import ForecasterConfig
    from tbptt_online.probe import TruncationProbe
    from tbptt_online.young_season import young_seasons

    horizons, d = 2, 1
    level = ForecasterConfig.interval_level
    store = hybrid.fields(1, d, ring=8, max_season=4, horizons=horizons, level=level)  # a store of one series
    rows = {k: v if k in experts.SHARED else v.clone() for k, v in store.items() if k.startswith(hybrid.PREFIXES)}
    rows["slot"] = torch.zeros(1, dtype=torch.int64)
    y, mask, step = (
        torch.ones(1, d, dtype=torch.float64),
        torch.ones(1, d, dtype=torch.bool),
        torch.ones(1, dtype=torch.int64),
    )
    stats = scoring.blank_stats(1, d)  # the tick's scoring, with the layouts it passes (views of the served rows)
    flat_runs.hold_flat_runs(stats.clone(), y, ForecasterConfig.flat_improbable)  # (its flat runs' counts: a copy)
    new_stats = scoring.observed_stats(stats, y, mask, True)
    served = torch.zeros(1, 4, d, dtype=torch.float64).unbind(1)  # mean, mean, lower, upper [1, d] each
    scoring.add_scores(new_stats, stats, y, mask, *served[1:], y)
    for rows_of_tick in (1, 2):  # a one-row view is C-contiguous, a longer one is not: two compiled layouts
        blank = scoring.blank_stats(rows_of_tick, d).numpy()
        view = torch.zeros(rows_of_tick, 4, d, dtype=torch.float64)[:, 1][:, None]  # the next mean (no hybrid)
        path = torch.zeros(rows_of_tick, horizons, d, dtype=torch.float64)  # the hybrid's served path
        for mean in (view, path):
            scoring.any_blown_up(mean.numpy(), blank, np.ones((rows_of_tick, d), dtype=bool), 1e6, True, 12)
    made = (served[1].numpy(), served[3].numpy())
    bound = outliers.Bound(1.6, 5.0, 2)
    outliers.cleaned(rows, step, y.numpy().copy(), mask.numpy(), made, stats[:, 0].numpy(), bound)
    origin = tuple(store[name] for name in hybrid.ORIGIN_RING)
    target, _ = hybrid_tick.score_and_advance(rows, y.numpy(), mask.numpy(), None, step, 0.9, origin, y.numpy())
    _, tick_paths, tick_base = hybrid_tick.base_and_input(rows, y.numpy(), step, target, horizons)
    pred = torch.zeros(1, d)  # the network's output (float32: the default dtype)
    hybrid_tick.remember_and_serve(rows, step, pred, tick_paths, tick_base, origin)
    paths = experts.paths(rows, step, horizons)  # a forecast's (``hybrid.members``)
    base = hybrid.base_path(rows, paths)
    hybrid.members(rows, step, horizons, paths, base)
    hybrid.half_widths(rows, horizons)
    q, far, seen, nonneg = (
        rows["c_q"].numpy(),
        rows["c_far_q"].numpy(),
        rows["x_seen"].numpy(),
        rows["x_nonneg"].numpy(),
    )
    missing = rows["x_missing"].numpy()
    roots, out = calibration.horizon_roots(horizons, horizons), np.empty((1, 3, horizons, d))
    zeros, ones = np.zeros((1, horizons, d)), np.ones((1, 1, d))
    far_at = calibration.far_array(horizons)
    phased = tuple(readable(rows["c_phase"], rows["c_phase_of"], rows["c_phase_fit"], rows["x_season_length"], step))
    # (c_phase [1, P, 3, d], c_phase_of [1, d], c_phase_fit [1, Hc, 5, d], x_season_length [1, d, 2], step [1])
    tick_kernels.forecast_rows(zeros, q, far, far_at, ones, roots, seen, nonneg, missing, out, phased)  # a view's
    calibration.level_ratios(rows["c_shape"].numpy(), [0.8], 0.9)  # a forecast at another level (2.5 s cold)
    hybrid.served_weights(rows)  # a series' stats
    config = ForecasterConfig()  # the truncation probe's record, at the defaults' shapes and dtypes
    probe = TruncationProbe(config, torch.float32)
    probe.follow(rows["slot"])
    before = torch.zeros(1, config.num_layers, config.hidden_size)
    probe.record(rows["slot"], torch.zeros(1, config.input_size), y, mask, before)
    gru_window.warm(torch.float32)  # a one-series update's replay (the default dtype)
    gru_rows.warm(torch.float32)  # a replay of many series'
    steps = torch.arange(24, dtype=torch.float64)  # a young season's tests (a detection's): a row that
    young_seasons(torch.stack([steps.sin(), (steps // 5).clamp(max=1.0)]), 336)  # moves, one with flat stretches
