"""A page of a model's series in sorted order: ``offset`` (its first one) and ``limit`` (how many), and where
the next page starts. ``GET .../series``, ``.../series-stats`` and ``.../forecasts`` are paged alike.

>>> page(["a", "b", "c"], offset=1, limit=1), page(["a", "b", "c"], offset=2, limit=5)
((['b'], 2), (['c'], None))
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

Offset = Annotated[int, Query(ge=0, description="The page's first series, in sorted order.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="How many series a page holds (at most 1,000).")]


def next_offset(end: int, total: int) -> int | None:
    """Where the page after one ending at ``end`` starts (None: it was the last)."""
    return end if end < total else None


def page(names: list[str], offset: int, limit: int) -> tuple[list[str], int | None]:
    """The names of the page of ``names`` (sorted) from ``offset``, and the next page's offset."""
    end = offset + limit
    return names[offset:end], next_offset(end, len(names))
