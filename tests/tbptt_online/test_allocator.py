"""A process that asks for it (``TBPTT_KEEP_FREED_MEMORY=1``) and builds a Forecaster keeps the heap an
update freed, for the next one (glibc's malloc thresholds, ``tbptt_online/allocator.py``), unless the user
set malloc's thresholds; by default glibc's own rule stays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tbptt_online import allocator

ROOT = Path(__file__).resolve().parents[2]

# In a fresh interpreter: 20 blocks of 4 MiB (what an update's chunk holds at once, scaled down) are
# allocated, written and freed twice; printed: how much of the last round's 80 MiB the process still
# holds once they are freed (resident memory after the frees less before them, MiB), whether the
# library set its thresholds, and the minor page faults of the last round's writes (of 4 KiB pages:
# transparent huge pages are turned off for the process, whatever the host's setting).
ROUNDS = """
import ctypes, json, resource
libc = ctypes.CDLL(None)
libc.prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE: no transparent huge pages, so a fault is one 4 KiB page
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes, libc.memset.argtypes = (ctypes.c_void_p,), (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 2**20
def one_round():
    blocks = [libc.malloc(4 << 20) for _ in range(20)]
    for block in blocks:
        libc.memset(block, 1, 4 << 20)
    before, faults = resident(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for block in blocks:
        libc.free(block)
    return resident() - before, faults
one_round()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
kept, written = one_round()
print(json.dumps({"kept_mb": 80 + kept, "set": allocator.thresholds_set(), "faults": written - faults}))
"""


def fresh_interpreter(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``code`` run by a fresh interpreter, without the variables the library's choice reads but ``env``."""
    environment = {k: v for k, v in os.environ.items() if k not in allocator.READ}
    environment.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True)


def after_rounds(setup: str, **env: str) -> dict:
    """``ROUNDS`` after ``setup`` in a fresh interpreter, without the user's malloc variables but ``env``."""
    done = fresh_interpreter(f"from tbptt_online import allocator\n{setup}\n{ROUNDS}", **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


BUILD = "from tbptt_online import Forecaster, ForecasterConfig\nForecaster(ForecasterConfig())"


def test_a_process_that_asks_keeps_freed_heap_for_the_next_allocations() -> None:
    kept = after_rounds(BUILD, TBPTT_KEEP_FREED_MEMORY="1")
    assert kept["set"] is True
    assert kept["kept_mb"] >= 72  # the 80 MiB freed stay mapped (less what other frees may have moved)
    assert kept["faults"] < 2000  # and the next round wrote into pages it had: 20,480 pages of 4 KiB written


@pytest.mark.parametrize("switch", [None, "0", "yes"])
def test_by_default_glibc_gives_the_freed_heap_back(switch: str | None) -> None:
    # glibc's own rule (a Forecaster built, the switch unset or not "1"): the freed blocks are trimmed,
    # and the next round faults them in again
    plain = after_rounds(BUILD, **({} if switch is None else {"TBPTT_KEEP_FREED_MEMORY": switch}))
    assert plain["set"] is False
    assert plain["kept_mb"] <= 8
    assert plain["faults"] >= 10_000


@pytest.mark.parametrize(
    "env",
    [
        {"MALLOC_TRIM_THRESHOLD_": str(256 << 20)},
        {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)},
        {"MALLOC_TOP_PAD_": "0"},
        {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1048576"},
    ],
)
def test_thresholds_the_user_set_are_left_alone(env: dict[str, str]) -> None:
    assert after_rounds(BUILD, TBPTT_KEEP_FREED_MEMORY="1", **env)["set"] is False


class FakeLibc:
    """A C library's ``mallopt`` (answering ``answer``), recording its calls; ``glibc``: whether it
    has ``gnu_get_libc_version``."""

    def __init__(self, answer: int = 1, glibc: bool = True) -> None:
        self.calls: list[tuple[int, int]] = []
        if glibc:
            self.gnu_get_libc_version = lambda: b"2.36"

        def mallopt(parameter: int, value: int) -> int:  # (a function: ctypes' argtypes can be set on it)
            self.calls.append((parameter, value))
            return answer

        self.mallopt = mallopt


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """This process as if no Forecaster had been built, the user asking for the thresholds and
    setting none of malloc's."""
    monkeypatch.setitem(allocator._state, "tried", False)
    monkeypatch.setitem(allocator._state, "set", False)
    for name in (*allocator.VARIABLES, "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(allocator.SWITCH, "1")
    return monkeypatch


def test_nothing_is_called_outside_linux(fresh: pytest.MonkeyPatch) -> None:
    def refuse(name: object) -> None:
        raise AssertionError("CDLL was called")  # (on Windows, CDLL(None) raises TypeError)

    fresh.setattr(allocator.sys, "platform", "win32")
    fresh.setattr(allocator.ctypes, "CDLL", refuse)
    assert allocator.keep_freed_memory() is False and allocator.thresholds_set() is False


def test_a_c_library_other_than_glibc_is_left_alone(fresh: pytest.MonkeyPatch) -> None:
    libc = FakeLibc(glibc=False)  # musl: a mallopt of its own meaning, no gnu_get_libc_version
    fresh.setattr(allocator.sys, "platform", "linux")
    fresh.setattr(allocator.ctypes, "CDLL", lambda name: libc)
    assert allocator.keep_freed_memory() is False and libc.calls == []


def test_a_refused_threshold_is_reported_and_not_retried(fresh: pytest.MonkeyPatch) -> None:
    libc = FakeLibc(answer=0)
    fresh.setattr(allocator.sys, "platform", "linux")
    fresh.setattr(allocator.ctypes, "CDLL", lambda name: libc)
    assert allocator.keep_freed_memory() is False and allocator.thresholds_set() is False
    assert libc.calls == [(allocator.M_MMAP_THRESHOLD, allocator.MMAP_THRESHOLD)]
    assert allocator.keep_freed_memory() is False and len(libc.calls) == 1  # tried once a process


def test_glibc_gets_both_thresholds(fresh: pytest.MonkeyPatch) -> None:
    libc = FakeLibc()
    fresh.setattr(allocator.sys, "platform", "linux")
    fresh.setattr(allocator.ctypes, "CDLL", lambda name: libc)
    assert allocator.keep_freed_memory() is True and allocator.thresholds_set() is True
    assert libc.calls == [
        (allocator.M_MMAP_THRESHOLD, 32 * 2**20),
        (allocator.M_TRIM_THRESHOLD, 128 * 2**20),
    ]


def test_user_chose_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*allocator.VARIABLES, "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    assert allocator.user_chose() is None
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.check=0")  # a tunable that sets no threshold
    assert allocator.user_chose() is None
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.check=0:glibc.malloc.mmap_max=0")
    assert allocator.user_chose() == "GLIBC_TUNABLES"
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "0")
    assert allocator.user_chose() == "MALLOC_MMAP_MAX_"
    monkeypatch.setenv(allocator.SWITCH, "1")  # (asking for the library's does not change what the user set)
    assert allocator.user_chose() == "MALLOC_MMAP_MAX_"


def test_only_1_asks_for_the_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(allocator.SWITCH, raising=False)
    assert allocator.asked() is False
    for value, asked in (("0", False), ("true", False), ("", False), ("1", True)):
        monkeypatch.setenv(allocator.SWITCH, value)
        assert allocator.asked() is asked


def test_only_the_first_call_sets_them() -> None:
    code = "from tbptt_online import allocator\nprint(allocator.keep_freed_memory(), allocator.keep_freed_memory())"
    done = fresh_interpreter(code, TBPTT_KEEP_FREED_MEMORY="1")
    assert done.stdout.split() == ["True", "False"], done.stderr
