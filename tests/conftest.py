"""Shared by every test package: the hybrid's compiled kernels are compiled once, first; a test's
torch thread count set back after it (``torch_threads``).

numba compiles a kernel at its first call and caches the machine code beside the module
(``__pycache__``); on a clean clone the first call takes tens of seconds. Compiling here,
in the pytest process before any test, keeps that out of every test's own time, and the
servers and Ray workers that tests start load the cache instead of compiling it again."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def compiled_kernels() -> None:
    from tbptt_online.warm import warm_kernels

    warm_kernels()


@pytest.fixture
def torch_threads() -> Iterator[Callable[[int], None]]:
    """``torch_threads(n)`` sets torch's intra-op thread count for the test; the count before is set back after it."""
    import torch

    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)
