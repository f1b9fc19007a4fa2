"""Shared by every test package: the hybrid's compiled kernels are compiled once, first.

numba compiles a kernel at its first call and caches the machine code beside the module
(``__pycache__``); on a clean clone the first call takes tens of seconds. Compiling here,
in the pytest process before any test, keeps that out of every test's own time, and the
servers and Ray workers that tests start load the cache instead of compiling it again."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def compiled_kernels() -> None:
    from tbptt_online.warm import warm_kernels

    warm_kernels()
