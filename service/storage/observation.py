"""Observation: one accepted value of one series, as the worker applies and journals it.

Timestamps arrive as unix seconds or ISO-8601 strings and are kept as unix seconds
(float), so the same moment written two ways compares equal.

>>> parse_timestamp("2024-01-01T00:00:00Z"), parse_timestamp(1704067200)
(1704067200.0, 1704067200.0)
>>> parse_timestamp("2024-01-01T01:00:00+01:00") == parse_timestamp("2024-01-01T00:00:00")
True
>>> parse_timestamp("yesterday")
Traceback (most recent call last):
...
ValueError: timestamp "yesterday" is invalid: must be unix seconds or an ISO-8601 date-time
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, NamedTuple

from tbptt_online.values import Value
from tbptt_service.errors import quoted


class Observation(NamedTuple):
    """What a journal records and ``ModelWorker.apply`` consumes: plain JSON-ready data (a named
    tuple: a request of 1,000 builds 1,000 of them, twice as fast as a frozen dataclass)."""

    series: str
    value: Value  # a float, a list of n_features floats/None, or None (missing)
    timestamp: float | None = None  # unix seconds; None: no ordering rule applies


# The unix seconds of the ISO-8601 range (year 1 to 9999), which a number must keep to as a date-time
# string does: a timestamp past it would hold its series for good (every later one "older"), and a
# millisecond timestamp sent as seconds (1.7e12: year 55,800) is the usual way to get there.
EARLIEST_TIMESTAMP = datetime(1, 1, 1, tzinfo=UTC).timestamp()  # -62135596800.0
LATEST_TIMESTAMP = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC).timestamp()  # about 253402300800


def parse_timestamp(raw: Any) -> float:
    """Unix seconds from a number (within the years 1 to 9999, as a date-time string is) or an
    ISO-8601 string (a naive one is read as UTC)."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        seconds = float(raw)
        if not math.isfinite(seconds):
            raise ValueError(f"timestamp {quoted(raw)} is invalid: must be a finite number")
        if not EARLIEST_TIMESTAMP <= seconds <= LATEST_TIMESTAMP:
            raise ValueError(
                f"timestamp {quoted(raw)} is invalid: unix seconds must lie in the years 1 to 9999 "
                f"({EARLIEST_TIMESTAMP:.0f} to {LATEST_TIMESTAMP:.0f}); milliseconds? divide by 1000"
            )
        return seconds
    if isinstance(raw, str):
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise ValueError(
                f"timestamp {quoted(raw)} is invalid: must be unix seconds or an ISO-8601 date-time"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    raise ValueError(f"timestamp {quoted(raw)} is invalid: must be unix seconds or an ISO-8601 date-time")
