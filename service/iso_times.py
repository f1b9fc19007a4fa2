"""ISO-8601 date-times as the service reads them, from the API and from a CSV alike: what
``datetime.fromisoformat`` takes (one without a zone is UTC), and what ISO 8601 and RFC 3339 allow
beside it (``24:00``, a lower-case ``z``, a leap second). No torch here: the command line reads a
CSV's times with it before any model is near.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

# "T24:00", "T24:00:00" or "T24:00:00.000" (a "t" or a space for the T too), then an offset or nothing
END_OF_DAY = re.compile(r"([0-9-]+[Tt ])24:00(:00([.,]0+)?)?([Zz]|[+-][0-9:]+)?")
LEAP_SECOND = re.compile(r"([0-9-]+[Tt ][0-9]{2}:[0-9]{2}:)60([.,][0-9]+)?([Zz]|[+-][0-9:]+)?")


def iso_moment(raw: str) -> datetime:
    """``datetime.fromisoformat`` (one without a zone is UTC), and what ISO 8601 and RFC 3339 allow
    beside it: ``24:00`` as the next day's ``00:00``, in UTC before the day is added
    (``9999-12-31T24:00+05:00`` is 19:00 UTC that day); a lower-case ``z``; and a leap second,
    ``23:59:60`` (in UTC: RFC 3339 allows it there only), read as the last microsecond of
    ``23:59:59``, so it falls between its neighbours (read as POSIX time does, the next day's
    ``00:00:00``, it took the next value's timestamp: a 409 there, a review). The last two were
    refused as "not an ISO-8601 date-time" until session 35 (a hostile client).

    >>> iso_moment("2016-12-31T23:59:60Z").isoformat(), iso_moment("2024-03-04t10:00:00z").isoformat()
    ('2016-12-31T23:59:59.999999+00:00', '2024-03-04T10:00:00+00:00')
    """
    if raw.endswith("z"):
        raw = raw[:-1] + "Z"
    leap = LEAP_SECOND.fullmatch(raw)
    if leap is not None:
        start, _, zone = leap.groups()
        moment = iso_moment(f"{start}59.999999{zone or ''}")
        if (moment.hour, moment.minute) != (23, 59):
            raise ValueError(f"{raw!r}: a leap second is 23:59:60 in UTC")
        return moment
    end_of_day = END_OF_DAY.fullmatch(raw)
    if end_of_day is None:
        return _utc(datetime.fromisoformat(raw))
    date, _, _, offset = end_of_day.groups()
    start = _utc(datetime.fromisoformat(f"{date}00:00:00{offset or ''}"))
    return start + timedelta(days=1)  # OverflowError: past the year 9999 in UTC


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
