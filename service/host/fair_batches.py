"""short_first and between_chunks: requests of one value per series do not wait for long ones.

A request holding k values of one series is k ticks of the model (the library keeps each
series' order: its k-th value goes to tick k), and a merged batch is answered when its
last tick is done. Merged with a batch of 10 values per series, a single observation
waited for all 10 ticks, and so did every single POST behind it (under mixed load single
POSTs fell to 27 req/s, p50 1.2 s: issue 11, defect 8).

So when the requests collected for a batch include *long* ones (more than one value of a
series), the *short* ones (one value per series) whose series no earlier long request
holds go first, in their own batch (one tick, or a few when several short ones share a
series), and the rest (the long ones, and the short ones that must stay behind a long one
of the same series) are the next batch, as they came. Each series' values keep their
order; the model's ticks are journaled as applied, so a recovery is the same. The worker
alternates: a batch that set requests aside is followed by those requests at once, so a
long request waits for at most one short batch.

A long batch is then applied a few ticks at a time (:mod:`tbptt_service.host.chunked_run`); between
two of its chunks, ``between_chunks`` picks the requests that arrived meanwhile and may go at
once: one value per series, none of the series the long batch or a request waiting behind it
holds, and nothing after a call that holds back every later request (an import, a deletion). A
call waits for the long batch in any case (it sees the batch whole); one that holds back only some
series (a forget its own, a capture or a learning-rate reset none) is given as those series and
``held``, like a request that waits: later values of its series wait behind it, the others go.
A request with an idempotency key goes between chunks too (its key journaled with its own
batch), unless it is under one of the long batch's keys (a retry: answered once that is done).

>>> short_first([["a"] * 10, ["b"], ["c", "d"], ["a"], ["b", "b"], ["e"]])
([1, 2, 5], [0, 3, 4])
>>> short_first([["a"], ["b"], ["a"]])  # no long request: one batch, as before
([0, 1, 2], [])
>>> short_first([["a", "a"], ["a"]])  # nothing can go first: one batch, as before
([0, 1], [])
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def ticks(series: Sequence[str]) -> int:
    """How many ticks a request of these series' values takes: its most repeated series' count."""
    return max(Counter(series).values(), default=0)


def short_first(requests: Sequence[Sequence[str]]) -> tuple[list[int], list[int]]:
    """Split requests (each given by the series of its values, in arrival order) into the indices
    to apply now and those to apply next; ``(all, [])`` when nothing is gained by splitting."""
    lengths = [ticks(series) for series in requests]
    if all(length <= 1 for length in lengths):
        return list(range(len(requests))), []
    now: list[int] = []
    later: list[int] = []
    behind: set[str] = set()  # series of a request set aside: later values of them wait behind it
    for i, series in enumerate(requests):
        if lengths[i] <= 1 and behind.isdisjoint(series):
            now.append(i)
        else:
            later.append(i)
            behind.update(series)
    if not now:
        return later, []
    return now, later


def within_allowance(indices: Sequence[int], inserted: Sequence[int], allowance: int) -> list[list[int]]:
    """``indices`` (requests, in order) cut into consecutive parts, each applied as its own batch,
    whose missing steps to insert (``inserted[i]`` for request ``i``: its gaps, each filled as if
    alone) add up to at most ``allowance`` (a micro-batch's, ``cadence.GAP_BATCH_FACTOR`` times
    a request's); a part holds one request at least. Each series' values keep their order.
    Before (a hostile client, session 35), 16 single POSTs each opening a gap of 999 steps were
    admitted as one batch against the batch's allowance of 10,000: 10 were filled and 6 got no
    step, which 6 depending on the order of arrival, all answered alike.

    >>> within_allowance([0, 1, 2, 3], [6, 0, 5, 4], 10)
    [[0, 1], [2, 3]]
    >>> within_allowance([2, 5], [0, 0, 7, 0, 0, 3], 10), within_allowance([], [], 10)
    ([[2, 5]], [])
    """
    parts: list[list[int]] = []
    total = 0
    for i in indices:
        if parts and total + inserted[i] <= allowance:
            parts[-1].append(i)
            total += inserted[i]
        else:
            parts.append([i])
            total = inserted[i]
    return parts


def between_chunks(
    busy: set[str],
    closed: bool,
    arrivals: Sequence[Sequence[str] | None],
    limit: int,
    held: frozenset[int] = frozenset(),
) -> list[int]:
    """The indices of ``arrivals`` (each a request's series, or None for a call) to apply between
    two of a long batch's chunks; the others wait until it is done, in order. ``busy``: the series
    of the long batch and of the requests (and calls) already waiting; ``closed``: a call that
    holds back every later request (an import, a deletion) waits already; ``limit``: the most
    values to pick; ``held``: the indices of requests that wait in any case
    (under one of the long batch's idempotency keys: answered once it is done), which, unlike a
    call given as None, hold back only later values of their own series (a call that holds back
    only some series is given so: its series, its index held).

    >>> between_chunks({"a"}, False, [["a"], ["b"], ["c", "c"], ["c"], ["b", "d"], None, ["e"]], 10)
    [1, 4]
    >>> between_chunks(set(), True, [["b"]], 10), between_chunks(set(), False, [["b"], ["c", "d"], ["e"]], 2)
    ([], [0, 2])
    >>> between_chunks(set(), False, [["b"], ["b"], ["c"]], 10, held=frozenset({0}))
    [2]
    >>> between_chunks(set(), False, [["b"], [], ["c"], ["d"], ["d"], ["e"]], 10, held=frozenset({1, 3}))
    [0, 2, 5]
    """
    busy = set(busy)
    picked: list[int] = []
    size = 0
    for i, series in enumerate(arrivals):
        if series is None:
            closed = True
            continue
        if (
            i not in held
            and not closed
            and ticks(series) <= 1
            and busy.isdisjoint(series)
            and size + len(series) <= limit
        ):
            picked.append(i)
            size += len(series)
        else:
            busy.update(series)  # its series' later values wait behind it
    return picked
