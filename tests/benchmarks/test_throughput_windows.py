"""The throughput benchmark's windows: each 32 ticks' rate of a long phase, rendered beside the phase's."""

from __future__ import annotations

from benchmarks.throughput import window_rates
from benchmarks.throughput_render import _windows


def test_a_long_phase_is_cut_into_windows_in_step_order_and_a_short_rest_left_out():
    ticks = [0.125] * 32 + [0.25] * 32 + [0.0625] * 31  # a third window one tick short
    assert window_rates(1_000, ticks) == [1_000 * 32 / 4.0, 1_000 * 32 / 8.0]


def test_the_windows_table_shows_each_rate_and_the_largest_over_the_smallest():
    payload = {
        "window_ticks": 32,
        "windows": [
            {"run": "baseline", "way": "training", "series": 10_000, "threads": 2, "steps": [177, 304]}
            | {"obs_per_s": [80_000.0, 40_000.0, 60_000.0, 50_000.0]},
        ],
    }
    lines = _windows(payload)
    assert (
        lines[-1].splitlines()[-1]
        == "| baseline | training | 10,000 | 2 | 177-304 | 80,000, 40,000, 60,000, 50,000 | 2.000 |"
    )
    assert _windows({"window_ticks": 32, "windows": []}) == [
        "(No phase was long enough to show its windows: smoke size.)"
    ]
