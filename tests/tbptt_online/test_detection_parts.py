"""A season detection of many rows runs in parts (``hybrid_tick.detect_in_parts``): the bits of one call of
all rows, on one thread and on two."""

from __future__ import annotations

import copy
import math
import threading

import numpy as np
import torch

from tbptt_online import Forecaster, ForecasterConfig, hybrid, hybrid_tick
from tests.tbptt_online.snapshots import assert_identical, snapshot

SERIES = 263  # 258 of one age: 6 parts of 40 to 79 rows (DETECT_PART_ROWS = 40 here)
LATE = 5  # the last ones start 6 ticks later: at a detection step of their own (42) when the others reach 48


def value(i: int, t: int, rng: np.random.Generator) -> float:
    """Series i's value at its tick t: a season of 12 or 7, noise, or a level shift at t = 30."""
    noise = float(rng.normal())
    kind = i % 4
    if kind == 0:
        return 10 + 3 * math.sin(2 * math.pi * t / 12) + 0.3 * noise
    if kind == 1:
        return 5 + 2 * math.sin(2 * math.pi * t / 7) + 0.3 * noise
    if kind == 2:
        return noise
    return (8.0 if t >= 30 else 0.0) + noise


def ticks(count: int) -> list[list[tuple[str, float]]]:
    rng = np.random.default_rng(5)
    out = []
    for t in range(count):
        items = [(f"s{i}", value(i, t, rng)) for i in range(SERIES - LATE)]
        items += [(f"late{i}", value(i, t - 6, rng)) for i in range(LATE) if t >= 6]
        out.append(items)
    return out


def test_a_detection_of_many_rows_in_parts_gives_one_calls_bits_on_one_thread_and_two(monkeypatch, torch_threads):
    # the rows of one age at a detection step (258 at step 48) go to hybrid.detect in parts of DETECT_PART_ROWS
    # to 2 * DETECT_PART_ROWS - 1 rows, in turn on one thread and on one_thread's pool (torch on one thread each)
    # on two; the late rows (those of the 5 at step 42 whose seasons are unsettled) in one call, first, as
    # before. Every field, the weights and the results are the bits of one call of all 258 (the code before
    # the parts), and some rows' seasons change at that tick
    monkeypatch.setattr(hybrid_tick, "DETECT_PART_ROWS", 40)
    monkeypatch.setattr(hybrid_tick, "DETECT_PART_VALUES", 1)  # (parts by rows alone here)
    feed = ticks(48)
    torch_threads(1)
    f = Forecaster(ForecasterConfig())
    for items in feed[:-1]:
        f.observe_many(items)
    assert f.step_of("s0") == 47 and f.step_of("late0") == 41
    calls = []

    def detect(rows, step, max_season, changed_at, original=hybrid.detect):
        calls.append((len(step), int(step[0]), threading.current_thread().name, torch.get_num_threads()))
        original(rows, step, max_season, changed_at)

    monkeypatch.setattr(hybrid, "detect", detect)
    outcomes = {}
    for way, part_rows, threads in (("one call", 10**9, 1), ("parts, 1 thread", 40, 1), ("parts, 2 threads", 40, 2)):
        g = copy.deepcopy(f)
        monkeypatch.setattr(hybrid_tick, "DETECT_PART_ROWS", part_rows)
        torch_threads(threads)
        calls.clear()
        results = g.observe_many(feed[-1])
        outcomes[way] = ([(r.forecast_next, r.step) for r in results], snapshot(g), list(calls))
    before = f.store.tensors["x_season_length"][: SERIES - LATE]
    after = outcomes["one call"][1]["store"]["x_season_length"][: SERIES - LATE]
    assert int((before != after).any(dim=2).any(dim=1).sum()) > 0  # some rows' seasons changed at step 48
    me = threading.current_thread().name
    late = [call for call in outcomes["one call"][2] if call[1] == 42]  # the late rows whose seasons are unsettled
    assert outcomes["one call"][2] == [*late, (258, 48, me, 1)] and len(late) == 1 and late[0][0] <= LATE
    sizes = [258 * (i + 1) // 6 - 258 * i // 6 for i in range(6)]
    assert outcomes["parts, 1 thread"][2] == late + [(size, 48, me, 1) for size in sizes]
    two = outcomes["parts, 2 threads"][2]
    assert sorted(n for n, step, _, _ in two if step == 48) == sorted(sizes)
    assert [c[:3] for c in two if c[1] == 42] == [c[:3] for c in late]  # (this thread, on two threads)
    assert all(name.startswith("tbptt-chunks") and threads == 1 for _, step, name, threads in two if step == 48)
    for way in ("parts, 1 thread", "parts, 2 threads"):
        assert_identical(outcomes[way][0], outcomes["one call"][0], way)
        assert_identical(outcomes[way][1], outcomes["one call"][1], way)


def test_a_detection_goes_in_parts_of_enough_rows_and_values_whatever_the_threads(torch_threads):
    # parts of at least DETECT_PART_ROWS = 2,048 rows and DETECT_PART_VALUES = 2**19 values read (rows times
    # values a row): 9,992 noise series at step 288 in 4, at 192 in 3, at 120 in 2 (1,199,040 values), at 96
    # (959,232) in one call
    for threads in (1, 2):
        torch_threads(threads)
        parts = [hybrid_tick.detection_parts(9_992, n) for n in (288, 192, 144, 120, 104, 96, 54)]
        assert parts == [4, 3, 2, 2, 1, 1, 1]
        assert hybrid_tick.detection_parts(4_095, 10_000) == 1
        assert hybrid_tick.detection_parts(4_096, 128) == 1 and hybrid_tick.detection_parts(4_096, 256) == 2
