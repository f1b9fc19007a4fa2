"""Which thread a route encodes its answer on: its module's ``orjson.dumps``, recorded."""

from __future__ import annotations

import threading
from types import ModuleType
from typing import Any

import orjson
import pytest


def record_encoding_threads(monkeypatch: pytest.MonkeyPatch, route: ModuleType) -> list[str]:
    """The names of the threads ``route``'s ``orjson.dumps`` runs on from now on, appended as it runs (``route``
    must import ``orjson`` itself: a route that did not encode its answer fails here)."""
    encoded_on: list[str] = []

    class Recorded:
        @staticmethod
        def dumps(payload: Any) -> bytes:
            encoded_on.append(threading.current_thread().name)
            return orjson.dumps(payload)

    monkeypatch.setattr(route, "orjson", Recorded)
    return encoded_on
