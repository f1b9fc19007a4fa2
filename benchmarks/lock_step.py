"""Libraries measured in lock step: ``library_probe.py`` processes that take turns, one at a time.

``benchmarks.throughput`` compares this checkout with an older commit's library, each in its
own process. Run one after the other, a slow spell of this shared machine falls on one of them
(the old main's two runs in one benchmark differed by up to 17 %). Here each probe runs a
``turn`` of units (ticks or steps) of a phase while the others wait on their input, then the
next; the first to go moves on by one from round to round, across phases too, so no library
is always first after the others have run. The protocol is ``library_probe.py``'s
``--lock-step``: it prints its phases as a JSON line, then runs up to N units of its current
phase for each line ``N`` and answers with one JSON line, marked by ``REPLY``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from benchmarks.library_probe import REPLY

PROBE = Path(__file__).resolve().parent / "library_probe.py"  # run as a file: an old library's process


class Stepping(Protocol):
    """What ``in_lock_step`` needs of a probe: its phases by name and a way to run units."""

    phases: dict[str, dict[str, Any]]

    def run(self, units: int) -> dict[str, Any]: ...


class Probe:
    """``library_probe.py --lock-step`` in a fresh process with ``library_root`` first on the path
    (and ``env`` changed in this process's environment: a None value removes the variable):
    it has printed its phases and runs units of them when told. Its errors (stderr) go to a file,
    shown in every error raised here; ``kill`` ends it and closes its pipes and that file."""

    def __init__(self, library_root: Path, arguments: list[str], env: dict[str, str | None] | None = None) -> None:
        self.library_root = library_root
        # stderr to a file: a pipe left unread could fill and block the probe (closed by kill())
        self.errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, str(PROBE), *arguments, "--lock-step"],
            cwd=library_root,
            env=environment(env or {}, PYTHONPATH=str(library_root)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
        )
        try:
            self.phases = {p["name"]: p for p in self._answer()["phases"]}
        except BaseException:  # (the caller never gets this probe to kill: an interruption too)
            self.kill()
            raise

    def _failed(self, what: str) -> RuntimeError:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.errors.seek(0)
        tail = self.errors.read()[-3000:]
        return RuntimeError(
            f"library_probe.py against {self.library_root} {what} (exit status {self.process.returncode}):\n{tail}"
        )

    def _answer(self) -> dict[str, Any]:
        """The next reply (a line that starts with ``REPLY``; other lines, a library's prints, are
        passed over)."""
        while line := self.process.stdout.readline():  # type: ignore[union-attr]
            if line.startswith(REPLY):
                try:
                    return json.loads(line[len(REPLY) :])
                except json.JSONDecodeError:
                    raise self._failed(f"replied {line[:200]!r}, not JSON") from None
        raise self._failed("ended without replying")

    def run(self, units: int) -> dict[str, Any]:
        """Runs up to ``units`` units of the probe's current phase: ``{"phase", "ran", "left"}``."""
        try:
            self.process.stdin.write(f"{units}\n")  # type: ignore[union-attr]
            self.process.stdin.flush()  # type: ignore[union-attr]
        except BrokenPipeError:
            raise self._failed("stopped reading") from None
        return self._answer()

    def finish(self) -> dict[str, Any]:
        """Ends its input; its result (the last line it prints)."""
        self.process.stdin.close()  # type: ignore[union-attr]
        result = self._answer()
        if self.process.wait() != 0:
            raise self._failed("exited with an error after its result")
        if Path(result["library"]).resolve() != (self.library_root / "tbptt_online").resolve():
            raise RuntimeError(f"the probe imported {result['library']}, not the library under {self.library_root}")
        return result

    def kill(self) -> None:
        """Ends the process if it still runs; closes its pipes and its error file."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(BrokenPipeError):  # (stdin's buffer flushed to a process that has gone)
                pipe.close()  # type: ignore[union-attr]
        self.errors.close()


def environment(changes: dict[str, str | None], **more: str) -> dict[str, str]:
    """This process's environment with ``changes`` and ``more`` (None: the variable removed)."""
    changed = {**os.environ, **changes, **more}
    return {name: value for name, value in changed.items() if value is not None}


# After each turn the driver waits this long before the next probe's: a process's OpenMP threads spin
# on after its last operation (libgomp's default wait: several milliseconds of a core, ``benchmarks.openmp_spin``'s
# last column), and without the pause the probe that ran next lost that much of a core to it, in every turn
PAUSE_S = 0.02


def in_lock_step(
    probes: dict[str, Stepping], pause_s: float = PAUSE_S, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Every phase, in the order of the probe with the most phases (the others' are in the same
    order, some left out), by all the probes that have it, in turn: each runs the phase's ``turn``
    units, then the next, until every probe is through the phase. The first to go moves on by
    one each round, across phases too. Only one runs at a time; the others wait on their input;
    between two turns the driver sleeps ``pause_s`` (``PAUSE_S``)."""
    order = list(max(probes.values(), key=lambda p: len(p.phases)).phases)
    for name, probe in probes.items():
        if [phase for phase in order if phase in probe.phases] != list(probe.phases):
            raise RuntimeError(f"{name}'s phases come in another order: {list(probe.phases)} against {order}")
    rounds = itertools.count()
    ran_before = False
    for phase in order:
        having = [probe for probe in probes.values() if phase in probe.phases]
        left = {id(probe): probe.phases[phase]["units"] for probe in having}
        turn = having[0].phases[phase]["turn"]
        while any(left.values()):
            start = next(rounds) % len(having)
            for probe in having[start:] + having[:start]:
                if left[id(probe)]:
                    if ran_before:
                        sleep(pause_s)  # the last probe's idle threads have stopped spinning
                    ran_before = True
                    answer = probe.run(turn)
                    if answer["phase"] != phase:
                        raise RuntimeError(f"a probe ran {answer['phase']!r} when {phase!r} was asked")
                    left[id(probe)] = answer["left"]
