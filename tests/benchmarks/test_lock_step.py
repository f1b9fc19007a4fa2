"""Probes in lock step: the driver's turns (with fake probes), and real probe processes: a phase
split over turns, a library's own prints passed over, a probe that fails at start named with its
errors and not left running."""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

from benchmarks import lock_step
from benchmarks.lock_step import Probe, in_lock_step
from tests.benchmarks.smoke import ROOT


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


def test_probes_take_turns_the_first_moving_on_each_round_across_phases():
    log: list = []
    both = [("ticks", 5, 2), ("latency", 3, 3)]
    probes = {
        "old": FakeProbe("old", both, log),
        "new": FakeProbe("new", both, log),
        "other": FakeProbe("other", both[:1], log),  # no latency phase
    }
    in_lock_step(probes)
    assert log == [
        ("old", "ticks", 2),  # round 0
        ("new", "ticks", 2),
        ("other", "ticks", 2),
        ("new", "ticks", 2),  # round 1
        ("other", "ticks", 2),
        ("old", "ticks", 2),
        ("other", "ticks", 1),  # round 2
        ("old", "ticks", 1),
        ("new", "ticks", 1),
        ("new", "latency", 3),  # round 3, of the two that have it: new first (a whole phase a turn)
        ("old", "latency", 3),
    ]
    assert all(not p.plan for p in probes.values())


def test_the_driver_pauses_between_two_turns_and_never_during_one():
    log: list = []
    probes = {"old": FakeProbe("old", [("ticks", 2, 1)], log), "new": FakeProbe("new", [("ticks", 2, 1)], log)}
    in_lock_step(probes, pause_s=0.25, sleep=lambda s: log.append(("pause", s)))
    # another process's idle OpenMP threads spin on for a while after its turn: none overlaps the next turn
    assert log == [
        ("old", "ticks", 1),
        ("pause", 0.25),
        ("new", "ticks", 1),
        ("pause", 0.25),
        ("new", "ticks", 1),
        ("pause", 0.25),
        ("old", "ticks", 1),
    ]


def test_probes_whose_phases_come_in_another_order_are_refused():
    log: list = []
    probes = {
        "old": FakeProbe("old", [("a", 1, 1), ("b", 1, 1)], log),
        "new": FakeProbe("new", [("b", 1, 1), ("a", 1, 1), ("c", 1, 1)], log),
    }
    with pytest.raises(RuntimeError, match="another order"):
        in_lock_step(probes)
    assert log == []


def test_a_probe_that_runs_another_phase_than_the_one_asked_is_refused():
    log: list = []
    wrong = FakeProbe("wrong", [("a", 2, 1), ("b", 1, 1)], log)
    wrong.plan = [["b", 1], ["a", 2]]  # it runs b first, though its phases say a
    with pytest.raises(RuntimeError, match="ran 'b' when 'a' was asked"):
        in_lock_step({"wrong": wrong})


def test_a_real_probe_runs_a_phase_over_several_turns_and_gives_its_rows():
    probe = Probe(ROOT, ["--sizes", "2:1:2", "--latency", "1:2"])
    try:
        assert [(p["name"], p["units"]) for p in probe.phases.values()] == [
            ("2 series, warm-up", 1),
            ("2 series, 1 thread", 2),
            ("2 series, 2 threads", 2),
            ("latency, warm-up", 1),
            ("latency", 2),
        ]
        answers = [probe.run(1) for _ in range(6)] + [probe.run(5)]
        assert [(a["phase"], a["ran"], a["left"]) for a in answers] == [
            ("2 series, warm-up", 1, 0),
            ("2 series, 1 thread", 1, 1),
            ("2 series, 1 thread", 1, 0),
            ("2 series, 2 threads", 1, 1),
            ("2 series, 2 threads", 1, 0),
            ("latency, warm-up", 1, 0),
            ("latency", 2, 0),  # asked 5: the phase had 2 left
        ]
        result = probe.finish()
    finally:
        probe.kill()
    assert [(r["threads"], r["steps"]) for r in result["rows"]] == [(1, [2, 3]), (2, [4, 5])]
    assert result["latency"]["observe_and_forecast"]["n"] == 2
    assert probe.process.returncode == 0


def test_a_librarys_own_prints_are_passed_over(tmp_path):
    library = tmp_path / "tbptt_online"
    library.mkdir()
    (library / "__init__.py").write_text(
        textwrap.dedent(
            """
            print("a library that talks at import")

            class ForecasterConfig:
                def __init__(self, **fields):
                    self.fields = fields

                def to_dict(self):
                    return self.fields

            class Forecaster:
                def __init__(self, config):
                    pass

                def observe_many(self, items):
                    print("and at every tick")
                    return []

                def update_stats(self):
                    return self

                updates = 0
            """
        )
    )
    probe = Probe(tmp_path, ["--sizes", "2:0:1"])
    try:
        assert list(probe.phases) == ["2 series, 1 thread", "2 series, 2 threads"]
        assert probe.run(1) == {"phase": "2 series, 1 thread", "ran": 1, "left": 0}
    finally:
        probe.kill()


def test_a_probe_that_fails_at_start_is_named_with_its_errors_and_not_left_running(monkeypatch):
    started, real = [], subprocess.Popen

    def popen(*args, **kwargs):
        started.append(real(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(lock_step.subprocess, "Popen", popen)
    with pytest.raises(RuntimeError) as raised:
        Probe(ROOT, ["--config", json.dumps({"no_such_field": 1})])
    message = str(raised.value)
    assert "ended without replying (exit status 1)" in message and "no_such_field" in message
    (process,) = started
    assert process.returncode == 1 and process.stdin.closed and process.stdout.closed


def test_a_probe_interrupted_before_its_phases_is_killed(monkeypatch):
    started, real = [], subprocess.Popen

    def popen(*args, **kwargs):
        started.append(real(*args, **kwargs))
        return started[-1]

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(lock_step.subprocess, "Popen", popen)
    monkeypatch.setattr(Probe, "_answer", interrupted)  # as if Ctrl-C came while the probe starts
    with pytest.raises(KeyboardInterrupt):
        Probe(ROOT, ["--sizes", "2:0:1"])
    (process,) = started
    assert process.returncode is not None and process.stdout.closed


@pytest.mark.parametrize(("env", "seen"), [({"GOMP_SPINCOUNT": None}, "10000"), ({"GOMP_SPINCOUNT": "77"}, "77")])
def test_a_probes_environment_can_set_or_remove_a_variable(monkeypatch, env, seen):
    # removed: the library (this checkout's, imported before torch) sets its own wait; set: the value is kept
    monkeypatch.setenv("GOMP_SPINCOUNT", "5")  # in the driver's environment
    probe = Probe(ROOT, ["--sizes", "1:1:1"], env=env)
    try:
        for _ in probe.phases:
            probe.run(1)
        result = probe.finish()
    finally:
        probe.kill()
    assert result["gomp_spincount"] == seen
