"""Observation: one accepted value of one series, as the worker applies and journals it.

Timestamps arrive as unix seconds or ISO-8601 strings and are kept as unix seconds
(float), so the same moment written two ways compares equal.

>>> parse_timestamp("2024-01-01T00:00:00Z"), parse_timestamp(1704067200)
(1704067200.0, 1704067200.0)
>>> parse_timestamp("2024-01-01T01:00:00+01:00") == parse_timestamp("2024-01-01T00:00:00")
True
>>> parse_timestamp("2024-01-01T24:00:00Z") == parse_timestamp("2024-01-02T00:00:00Z")  # ISO 8601's end of day
True
>>> parse_timestamp("2024-01-01T00:00:00.123456789Z") == parse_timestamp("2024-01-01T00:00:00.123456Z")
True
>>> parse_timestamp("yesterday")
Traceback (most recent call last):
...
ValueError: timestamp "yesterday" is invalid: must be unix seconds or an ISO-8601 date-time

A string's fraction of a second is kept to the microsecond (Python's ``datetime``; the digits
past the sixth are dropped): unix seconds in a float64 hold about a quarter of a microsecond
today, so no finer moment could be kept anyway. ``24:00`` (``24:00:00``, with a fraction of
zeros) is ISO 8601's end of a day, the next day's ``00:00``; ``datetime`` refuses it.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any, NamedTuple

from tbptt_online.values import Value
from tbptt_service.errors import quoted
from tbptt_service.iso_times import iso_moment


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
# 23:59:59.999 of the year 9999's last day: with .999999 the float was 253402300800.0 exactly, the year
# 10000's first second, which was taken (the message printed it as the end of the range)
LATEST_TIMESTAMP = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC).timestamp()  # 253402300799.999
# (the range's last millisecond named: "9999-12-31T23:59:59.9999Z" was told it lay outside the years 1 to 9999, a
# hostile test, session 57)
OUTSIDE_THE_RANGE = "it lies outside the years 1 to 9999 in UTC (0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z)"


_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _unit_hint(seconds: float) -> str:
    """What a timestamp past the range most likely was: milli-, micro- or nanoseconds (a new user's
    microseconds were told "milliseconds? divide by 1000", still out of range). A number past the
    range by less than its end again (within twice the end, on its side) is taken as an end missed,
    not a unit: a hostile test's 0.5 ms past the year 9999 was told "milliseconds?" (milliseconds of
    1978 to 1986, or of the years before 1970 back to 1, get no hint).

    >>> _unit_hint(1.7e12), _unit_hint(1.7e15), _unit_hint(1.7e18), _unit_hint(1e300)
    ('; milliseconds? divide by 1000', '; microseconds? divide by 1e6', '; nanoseconds? divide by 1e9', '')
    >>> _unit_hint(253402300799.9995), _unit_hint(-62135596801.0)
    ('', '')
    """
    if 2 * EARLIEST_TIMESTAMP < seconds < 2 * LATEST_TIMESTAMP:
        return ""
    for name, scale in (("milliseconds", "1000"), ("microseconds", "1e6"), ("nanoseconds", "1e9")):
        if EARLIEST_TIMESTAMP <= seconds / float(scale) <= LATEST_TIMESTAMP:
            return f"; {name}? divide by {scale}"
    return ""


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
                f"({EARLIEST_TIMESTAMP:.0f} to {LATEST_TIMESTAMP:.3f}){_unit_hint(seconds)}"
            )
        return seconds
    if isinstance(raw, str):
        try:
            moment = iso_moment(raw)
        except OverflowError:
            raise ValueError(f"timestamp {quoted(raw)} is invalid: {OUTSIDE_THE_RANGE}") from None
        except ValueError:
            if _NUMBER.fullmatch(raw.strip()):  # (after ISO's own forms: "20240101" is a date)
                raise ValueError(
                    f"timestamp {quoted(raw)} is invalid: unix seconds must be a JSON number, not a string "
                    "(or send an ISO-8601 date-time string)"
                ) from None
            raise ValueError(
                f"timestamp {quoted(raw)} is invalid: must be unix seconds or an ISO-8601 date-time"
            ) from None
        seconds = moment.timestamp()
        if not EARLIEST_TIMESTAMP <= seconds <= LATEST_TIMESTAMP:  # an offset took it past the range (in UTC)
            raise ValueError(f"timestamp {quoted(raw)} is invalid: {OUTSIDE_THE_RANGE}")
        return seconds
    raise ValueError(f"timestamp {quoted(raw)} is invalid: must be unix seconds or an ISO-8601 date-time")
