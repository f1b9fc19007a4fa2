"""The library probe: which latency steps it labels as season detections, its phases, and how it
runs them in lock step (a line of input per turn)."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.library_probe import Phase, Throughput, latency, lock_step, run_all
from tbptt_online import Forecaster, ForecasterConfig


def test_latency_runs_without_a_warm_up_and_labels_the_detection_steps():
    # without a warm-up the series has no stats before its first value (a ValueError was raised)
    result = latency(ForecasterConfig(), 0, 50, 12)
    assert result["observe_and_forecast"]["n"] == 50
    # the probe's series (period 24) has no season before 72: looked at on every step of both lists
    assert result["detection_steps"] == [16, 20, 24, 30, 36, 42, 48]


def _phases(log: list) -> list[Phase]:
    def phase(name: str, units: int) -> Phase:
        return Phase(name, units, 2, lambda i: log.append((name, i)), lambda: log.append((name, "done")))

    return [phase("a", 3), phase("b", 2)]


def test_lock_step_runs_what_each_line_asks_and_never_past_a_phase():
    log, replies = [], []
    lock_step(_phases(log), ["2\n", "2\n", "5\n"], replies.append)
    # the second line asked for 2 units of "a" where 1 was left: it ran 1 and ended the phase
    assert [json.loads(r) for r in replies] == [
        {"phase": "a", "ran": 2, "left": 1},
        {"phase": "a", "ran": 1, "left": 0},
        {"phase": "b", "ran": 2, "left": 0},
    ]
    assert log == [("a", 0), ("a", 1), ("a", 2), ("a", "done"), ("b", 0), ("b", 1), ("b", "done")]


def test_lock_step_refuses_input_that_ends_early_or_asks_past_the_end():
    with pytest.raises(SystemExit, match="ended in phase 'b'"):
        lock_step(_phases([]), ["3\n"], lambda line: None)
    with pytest.raises(SystemExit, match="after the last phase"):
        lock_step(_phases([]), ["3\n", "2\n", "1\n"], lambda line: None)
    with pytest.raises(SystemExit, match="at least one"):
        lock_step(_phases([]), ["0\n"], lambda line: None)


def test_throughput_phases_time_each_thread_setting_after_an_untimed_warm_up():
    run = Throughput(ForecasterConfig(), 3, 4, 16, 8)
    phases = run.phases()
    # a turn of a lock step: the whole phase at a few series
    assert [(p.name, p.units, p.turn) for p in phases] == [
        ("3 series, warm-up", 4, 4),
        ("3 series, 1 thread", 16, 16),
        ("3 series, 2 threads", 16, 16),
        ("3 series, 1 thread, read", 8, 8),
    ]
    run_all(phases)
    assert [(r["way"], r["threads"], r["steps"], r["observations"]) for r in run.rows] == [
        ("training", 1, [5, 20], 48),
        ("training", 2, [21, 36], 48),
        ("training, every result read", 1, [37, 44], 24),
    ]
    assert run.forecaster.series_stats("series-0").count == 44
    # one tick a turn at 1,000 series and more; no warm-up phase when there is none, no read phase
    assert [(p.name, p.units, p.turn) for p in Throughput(ForecasterConfig(), 1_000, 0, 2, 0).phases()] == [
        ("1000 series, 1 thread", 2, 1),
        ("1000 series, 2 threads", 2, 1),
    ]


def test_each_tick_runs_on_its_phases_thread_setting_when_run_a_unit_at_a_time(monkeypatch):
    run = Throughput(ForecasterConfig(), 2, 1, 2, 8)
    threads = []
    observe_many = Forecaster.observe_many

    def spy(self, items):
        threads.append(torch.get_num_threads())
        return observe_many(self, items)

    monkeypatch.setattr(Forecaster, "observe_many", spy)
    before = torch.get_num_threads()
    try:
        lock_step(run.phases(), ["1\n"] * 13, lambda line: None)
    finally:
        torch.set_num_threads(before)
    assert threads == [1, 1, 1, 2, 2] + [1] * 8  # warm-up, 1 thread, 2 threads, read
