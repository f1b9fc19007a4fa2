"""A page of a model's series in sorted order, and where the next page starts. ``GET .../series``,
``.../series-stats`` and ``.../forecasts`` are paged alike: ``limit`` series from ``offset`` (the page's
first series' position), or from the first name after ``after`` (a cursor: the page before's last name).

A walk by offset repeats or skips rows when series are added or deleted between two pages under names
that sort earlier (a hostile test, session 60: F8, 7,950 rows repeated while 50 such series arrived); a
walk by ``after`` starts each page after the name the one before ended on, wherever it now is: each series
there from the walk's start to its end is read once, in order (one added meanwhile, if it sorts after
the cursor). Names sort by code point, as Python's ``sorted``.

>>> page(["a", "b", "c"], offset=1, limit=1), page(["a", "b", "c"], offset=2, limit=5)
((['b'], 2, 'b'), (['c'], None, None))
>>> page(["a", "b", "c"], offset=0, limit=1, after="a"), page(["a", "c"], offset=0, limit=5, after="b")
((['b'], 2, 'b'), (['c'], None, None))
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Annotated

from fastapi import Query

from tbptt_online.series_store import MAX_NAME_LENGTH
from tbptt_service.errors import Unprocessable

Offset = Annotated[int, Query(ge=0, description="The page's first series, in sorted order.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="How many series a page holds (at most 1,000).")]
After = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="A cursor: the page starts at the first name after this one (the page before's next_after); "
        "a walk by it reads each series once while others are added or deleted. Not with offset.",
    ),
]


def next_offset(end: int, total: int) -> int | None:
    """Where the page after one ending at ``end`` starts (None: it was the last)."""
    return end if end < total else None


def page(
    names: list[str], offset: int, limit: int, after: str | None = None
) -> tuple[list[str], int | None, str | None]:
    """The names of the page of ``names`` (sorted) from ``offset``, or after the name ``after``, the next page's
    offset and its cursor (the page's last name; both None when it was the last)."""
    if after is not None:
        if offset:
            raise Unprocessable(
                f"offset={offset} and after={after[:40]!r}: give one (after, the page before's next_after, reads "
                "each series once while series are added or deleted; offset counts positions)"
            )
        offset = bisect_right(names, after)
    end = offset + limit
    listed = names[offset:end]
    following = next_offset(end, len(names))
    return listed, following, listed[-1] if following is not None else None
