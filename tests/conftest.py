"""Shared by every test package: how many worker processes run the suite (``-n auto``); the hybrid's
compiled kernels are compiled once, first, by one process at a time; a test's torch thread count set back
after it (``torch_threads``).

numba compiles a kernel at its first call and caches the machine code beside the module
(``__pycache__``); on a clean clone the first call takes tens of seconds. Compiling here,
in each test process before its first test, keeps that out of every test's own time, and the
servers and Ray workers that tests start load the cache instead of compiling it again."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """How many worker processes ``-n auto`` (pyproject's addopts) starts: 2, as CI's 2 cores (the suite is
    checked at 2; ``-n 4`` asks for more); none (the tests run in the pytest process, as with ``-n 0``) for
    one file or test, whose tests one worker would run anyway while the other only started and collected,
    and on a machine with one CPU. ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still wins (pytest-xdist reads it)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    files = {arg.split("::", 1)[0] for arg in config.args}
    if len(files) == 1 and (config.invocation_params.dir / files.pop()).is_file():
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 2 if cpus >= 2 else 0


@pytest.fixture(scope="session", autouse=True)
def compiled_kernels() -> None:
    """Compiled (or loaded) by one process at a time: the suite runs in 2 worker processes (pytest-xdist),
    each with this fixture. ``warm_kernels`` holds the cache folder's ``compile.lock`` (``cache_lock``), so
    the first worker compiles and the other waits, then loads what it wrote (about a second); the float64
    kernels likewise. Every cache write, here or later in any process, is locked by the library itself
    (``cache_lock.lock_cache_writes``, numba/numba#10128)."""
    from tbptt_online.cache_lock import one_compiler
    from tbptt_online.compiled import cache_dir
    from tbptt_online.warm import warm_kernels

    warm_kernels()
    with one_compiler(cache_dir()):
        float64_kernels()


def float64_kernels() -> None:
    """The kernels of float64 networks (``dtype="float64"``: ``tests/service``'s ``SMALL_MODEL``, the oracle
    tests), which ``warm_kernels`` (the default, float32) leaves to their first call: compiled here under the
    lock too, not in two workers' tests at once. (The one-series update's replay and the truncation probe's
    record, as ``warm_kernels`` calls them for float32.)"""
    import torch

    from tbptt_online import gru_rows, gru_window
    from tbptt_online.config import ForecasterConfig
    from tbptt_online.probe import TruncationProbe

    gru_window.warm(torch.float64)
    gru_rows.warm(torch.float64)  # an update of many series' replay
    config = ForecasterConfig()
    probe, slot = TruncationProbe(config, torch.float64), torch.zeros(1, dtype=torch.int64)
    probe.follow(slot)
    y, mask = torch.ones(1, config.n_features, dtype=torch.float64), torch.ones(1, config.n_features, dtype=torch.bool)
    before = torch.zeros(1, config.num_layers, config.hidden_size, dtype=torch.float64)
    probe.record(slot, torch.zeros(1, config.input_size, dtype=torch.float64), y, mask, before)


@pytest.fixture
def torch_threads() -> Iterator[Callable[[int], None]]:
    """``torch_threads(n)`` sets torch's intra-op thread count for the test; the count before is set back after it."""
    import torch

    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)
