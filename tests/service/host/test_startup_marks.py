"""StartupMarks: a process's start read from /proc lies between the moments just before and just
after it was spawned (the kernel's 10 ms tick aside), and marks keep their order."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tbptt_service.host.startup_marks import MARKS_KEPT, StartupMarks

TICK_S = 0.02  # /proc counts a process's start in 10 ms ticks; the uptime it is set against, in 10 ms too


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="no /proc (not Linux)")
def test_the_process_start_is_the_moment_it_was_spawned() -> None:
    code = "from tbptt_service.host.startup_marks import process_started_at; print(repr(process_started_at()))"
    before = time.time()
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    after_spawn = time.time()
    out, _ = child.communicate(timeout=60)
    started = float(out)
    assert before - TICK_S <= started <= after_spawn + TICK_S


def test_marks_follow_the_process_start_in_order() -> None:
    marks = StartupMarks()
    marks.mark("constructor")
    marks.mark("recovered", at=marks.marks[-1][1] + 1.5)
    steps = [step for step, _ in marks.marks]
    assert steps[-2:] == ["constructor", "recovered"]
    times = [at for _, at in marks.marks]
    assert times == sorted(times) and times[-1] - times[-2] == pytest.approx(1.5, abs=1e-6)
    if Path("/proc/self/stat").exists():
        assert steps[0] == "process started" and times[0] < times[1]


def test_only_the_newest_marks_are_kept() -> None:
    marks = StartupMarks()
    for attempt in range(MARKS_KEPT + 5):
        marks.mark(f"attempt {attempt}")
    assert len(marks.marks) == MARKS_KEPT and marks.marks[-1][0] == f"attempt {MARKS_KEPT + 4}"
    assert marks.marks[0][0] == "attempt 5"
