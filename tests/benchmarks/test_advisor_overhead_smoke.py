"""The advisor-overhead benchmark runs end to end at a small size: both forecasters timed, the probe run.

Speed is never asserted: only that both ways were measured and the probe really ran.
"""

from __future__ import annotations

from benchmarks.advisor_overhead import render, run


def test_advisor_overhead_times_both_ways_and_runs_one_probe():
    result = run(series=20, blocks=2)  # 48 + 2 * 2 * 8 ticks: the followed series hold a full probe window
    assert result["timed_ticks_each"] == 16  # two blocks of k1 ticks each
    assert result["probe_ran"] is True and result["probe_seconds"] > 0
    assert result["median_tick_seconds_on"] > 0 and result["median_tick_seconds_off"] > 0
    assert result["probe_every_ticks"] == 64 * 8
    text = render(result, "python -m benchmarks.advisor_overhead --series 20 --blocks 1", "now", 0.0)
    assert "Throughput on / off" in text
