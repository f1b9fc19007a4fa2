"""The library probe's single-series latency: which steps it labels as season detections."""

from __future__ import annotations

from benchmarks.library_probe import latency
from tbptt_online import ForecasterConfig


def test_latency_runs_without_a_warm_up_and_labels_the_detection_steps():
    # without a warm-up the series has no stats before its first value (a ValueError was raised)
    result = latency(ForecasterConfig(), 0, 50, 12)
    assert result["observe_and_forecast"]["n"] == 50
    # the probe's series (period 24) has no season before 72: looked at on every step of both lists
    assert result["detection_steps"] == [16, 20, 24, 30, 36, 42, 48]
