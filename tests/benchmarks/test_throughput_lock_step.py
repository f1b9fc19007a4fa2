"""The throughput benchmark's driver steps its probes in turn, each phase by every probe that has it."""

from __future__ import annotations

import pytest

from benchmarks.throughput import in_lock_step


class FakeProbe:
    """Answers as ``library_probe.py --lock-step`` does; writes each turn to a shared log."""

    def __init__(self, name: str, phases: list[tuple[str, int, int]], log: list) -> None:
        self.name, self.log = name, log
        self.phases = {n: {"name": n, "units": units, "turn": turn} for n, units, turn in phases}
        self.plan = [[n, units] for n, units, _ in phases]

    def run(self, units: int) -> dict:
        phase = self.plan[0]
        ran = min(units, phase[1])
        phase[1] -= ran
        self.log.append((self.name, phase[0], ran))
        if phase[1] == 0:
            self.plan.pop(0)
        return {"phase": phase[0], "ran": ran, "left": phase[1]}


def test_probes_take_turns_the_first_rotating_and_a_phase_is_done_by_all_before_the_next():
    log: list = []
    both = [("ticks", 5, 2), ("latency", 3, 3)]
    probes = {
        "old": FakeProbe("old", both, log),
        "new": FakeProbe("new", both, log),
        "other": FakeProbe("other", both[:1], log),  # no latency phase
    }
    in_lock_step(probes)
    assert log == [
        ("old", "ticks", 2),
        ("new", "ticks", 2),
        ("other", "ticks", 2),
        ("new", "ticks", 2),
        ("other", "ticks", 2),
        ("old", "ticks", 2),
        ("other", "ticks", 1),
        ("old", "ticks", 1),
        ("new", "ticks", 1),
        ("old", "latency", 3),
        ("new", "latency", 3),
    ]
    assert all(not p.plan for p in probes.values())


def test_probes_whose_phases_come_in_another_order_are_refused():
    log: list = []
    probes = {
        "old": FakeProbe("old", [("a", 1, 1), ("b", 1, 1)], log),
        "new": FakeProbe("new", [("b", 1, 1), ("a", 1, 1), ("c", 1, 1)], log),
    }
    with pytest.raises(RuntimeError, match="another order"):
        in_lock_step(probes)
    assert log == []
