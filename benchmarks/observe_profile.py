"""Where the time of ``Forecaster.observe_many`` goes: cProfile, one thread.

Own time is the time spent in a function itself; the share "inside torch calls" adds
up the own time of torch's C functions and torch's Python modules. cProfile slows
Python code more than C code, so the Python shares read a little high. With
``forecast_horizon`` each tick also asks every series of the tick for a forecast of
that horizon (``forecast`` for one series, ``forecast_many`` for more), as a client
that observes and then reads the forecast does.
"""

from __future__ import annotations

import cProfile
import pstats
from typing import TYPE_CHECKING, Any

import torch

from tbptt_online import Forecaster, ForecasterConfig

if TYPE_CHECKING:
    from benchmarks.throughput import TickStream


def profile_observe(
    config: ForecasterConfig,
    stream: TickStream,
    warmup: int,
    ticks: int,
    top: int = 12,
    forecast_horizon: int | None = None,
) -> dict:
    """cProfile of ``observe_many`` (and the forecasts, with ``forecast_horizon``) over
    ``ticks`` ticks of ``stream``, after ``warmup`` ticks."""
    torch.set_num_threads(1)
    forecaster = Forecaster(config)
    for _ in range(warmup):
        forecaster.observe_many(stream.next_items())
    n_series = len(stream.names)
    batches = [stream.next_items() for _ in range(ticks)]
    requests = [(name, forecast_horizon) for name in stream.names] if forecast_horizon else []
    profiler = cProfile.Profile()
    profiler.enable()
    for items in batches:
        forecaster.observe_many(items)
        if len(requests) == 1:
            forecaster.forecast(*requests[0])
        elif requests:
            forecaster.forecast_many(requests)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (calls, prim, own, cumulative, callers)
    total = sum(own for _, _, own, _, _ in stats.values())
    by_own = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    torch_own = sum(v[2] for k, v in stats.items() if _is_torch(k))
    library = sorted(
        ((k, v) for k, v in stats.items() if "tbptt_online" in k[0]), key=lambda kv: kv[1][3], reverse=True
    )[:top]
    return {
        "series": n_series,
        "ticks": ticks,
        "warmup": warmup,
        "forecast_horizon": forecast_horizon,
        "seconds_profiled": total,
        "share_in_torch_calls": torch_own / total,
        "top_own_time": [_entry(k, v, total) for k, v in by_own],
        "top_library_cumulative": [_entry(k, v, total) for k, v in library],
    }


def _is_torch(key: tuple[str, int, str]) -> bool:
    file, _, name = key
    return (file == "~" and ("torch" in name or "Tensor" in name)) or "/torch/" in file


def _entry(key: tuple[str, int, str], value: tuple, total: float) -> dict[str, Any]:
    file, line, name = key
    where = name if file == "~" else f"{file.split('site-packages/')[-1].split('/main/')[-1]}:{line}({name})"
    return {
        "function": where,
        "calls": value[1],
        "own_pct": 100 * value[2] / total,
        "cumulative_pct": 100 * value[3] / total,
    }
