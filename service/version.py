"""The running version: the installed distribution's (``pyproject.toml``), read without importing
the library (and torch), for ``/healthz`` and ``tbptt-online --version``; a source tree that was
never installed says ``unknown``. The library's ``tbptt_online.__version__`` is the same (tested)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("tbptt-online")
except PackageNotFoundError:  # run from a checkout that pip never installed
    VERSION = "unknown"
