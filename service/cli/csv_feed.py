"""Feed a CSV into a running server: batches, a progress bar, resume without double-feeding.

Before sending, the file is read once (every cell checked, rows counted per series)
and the server is asked what it already holds of each series. Rows it holds are
skipped: with a time column, every row at or before the series' ``last_timestamp``;
without one, the series' first ``count`` rows. An interrupted feed run again
therefore sends only the rest. A batch whose answer was lost (the connection broke
after the server applied it) is harmless when its rows carry timestamps and each series is
in it once: the client retries it, and the server answers a repeated ``(series, timestamp,
value)`` with its first result, learning nothing twice. Any other batch is not retried: the
lost answer ends the run with a message saying so, and the same command run again skips
what the server holds (a batch of two rows of one series was retried until session 48, got
409, the server keeping a series' last timestamp only, and was reported as "nothing of it was
applied" though applied: a hostile test).

Ctrl-C while a batch is in flight waits for its answer, then stops (``FeedInterrupted``): the
server goes on applying a batch whose client has gone, so a run started again at once read the
series' counts while it was being applied and sent its last rows a second time (a hostile test,
session 35: 3,084 values on the server for a 3,000-row file without a time column; with one, a
409 halfway). A second Ctrl-C stops at once.

The rows are sent merged across series in time order (``in_time_order``), each series' rows in
their file order: an export sorted by series would otherwise be one tick of the model per row.

At the end the prequential error of each series (the model's one-step forecasts,
each made before its value arrived, against the naive last-value forecast) is read
back from the server and printed.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO

from tqdm import tqdm

from tbptt_online.client import ApiError, Client, NotFound, SeriesStats
from tbptt_service.cli.csv_source import CsvRow, CsvSource


class FeedError(Exception):
    """The server refused a row: the message names the file's line and the server's reason."""


class FeedInterrupted(KeyboardInterrupt):
    """Ctrl-C during a feed, honoured once the batch in flight was answered: the server holds every
    row sent (``report.sent`` of them), nothing after them was sent."""

    def __init__(self, report: FeedReport) -> None:
        super().__init__(f"interrupted after {report.sent} rows sent")
        self.report = report


@contextmanager
def _stop_between_batches() -> Iterator[list[bool]]:
    """While the block runs, the first Ctrl-C only sets the flag yielded (``[True]``) and the second
    interrupts at once. Where no handler can be set (not the main thread) Ctrl-C interrupts at once."""
    asked = [False]
    if threading.current_thread() is not threading.main_thread():
        yield asked
        return

    def on_ctrl_c(signum: int, frame: object) -> None:
        if asked[0]:
            raise KeyboardInterrupt
        asked[0] = True
        print("\nstopping before the next batch (Ctrl-C again: at once)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield asked
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass(frozen=True)
class ResumePoint:
    """What the server already holds of one series."""

    count: int = 0
    last_timestamp: float | None = None

    def holds(self, row: CsvRow, rank: int) -> bool:
        """Whether ``row``, the series' ``rank``-th row (0-based) in the file, is already there."""
        if row.seconds is not None and self.last_timestamp is not None:
            return row.seconds <= self.last_timestamp
        return rank < self.count  # untimed rows: the server holds the first `count` of them


@dataclass
class FeedReport:
    rows: int = 0  # rows in the file
    sent: int = 0  # rows posted by this run
    skipped: int = 0  # rows the server already held
    series: list[str] = field(default_factory=list)  # in order of first appearance
    stats: list[SeriesStats] = field(default_factory=list)


def merge_key(row: CsvRow, rank: int) -> float:
    """What ``in_time_order`` merges a row by: its timestamp, or without one its ``rank`` (0-based) in its series."""
    return rank if row.seconds is None else row.seconds


def survey(source: CsvSource) -> tuple[dict[str, int], bool]:
    """Rows per series, in order of first appearance, and whether the file is in time order already (each row's
    timestamp, or without a time column its rank in its series, at or after the row's before it: then the merge
    of ``in_time_order`` is the file's order, and the rows are streamed); reading it all checks every cell first."""
    counts: dict[str, int] = {}
    ordered, before = True, -math.inf
    for row in source.rows():
        rank = counts.get(row.series, 0)
        counts[row.series] = rank + 1
        key = merge_key(row, rank)
        ordered, before = ordered and key >= before, key
    return counts, ordered


PAGE = 1000  # series-stats read a page of this many series a request (the server's most)
PAGE_IN_GETS = 300  # a page of PAGE series' statistics costs about this many GETs of one (a review, session 57)


def held_stats(client: Client, model: str, names: list[str]) -> dict[str, SeriesStats]:
    """The statistics of each of ``names`` that the model holds: a page of ``PAGE`` series a request through the
    model's series in sorted order where that costs fewer GETs' worth (``PAGE_IN_GETS`` a page) than a GET for each
    of ``names``, else a GET for each (a hostile test, session 57: a 5,000-series file took 5,000 GETs twice,
    26.8 s each time, where the pages took 8.9 s; a review's: 200 series of a 100,000-series model, pages of all
    of them 86 s, their GETs 0.6 s)."""
    total = client.list_series(model, 0, 1).total
    wanted = set(names)
    if pages_cost_more(len(wanted), total):  # a few series of a large model: their own GETs
        found_each: dict[str, SeriesStats] = {}
        for name in names:
            with contextlib.suppress(NotFound):  # (not held: nothing of it on the server yet)
                found_each[name] = client.series_stats(model, name)
        return found_each
    found: dict[str, SeriesStats] = {}
    after: str | None = None
    while True:  # by the cursor (after=): a series another client adds meanwhile shifts no row
        page = client.series_stats_page(model, limit=PAGE, after=after)
        found.update((stats.series, stats) for stats in page.series if stats.series in wanted)
        if page.next_after is None:
            return found
        after = page.next_after


def pages_cost_more(wanted: int, total: int) -> bool:
    """Whether reading ``total`` series' statistics a page at a time costs more than ``wanted`` GETs.

    >>> pages_cost_more(200, 100_000), pages_cost_more(5_000, 5_000), pages_cost_more(300, 1_000)
    (True, False, False)
    """
    return math.ceil(total / PAGE) * PAGE_IN_GETS > wanted


def resume_points(client: Client, model: str, names: list[str]) -> dict[str, ResumePoint]:
    """The server's count and last timestamp of each of ``names`` that it already holds."""
    return {name: ResumePoint(s.count, s.last_timestamp) for name, s in held_stats(client, model, names).items()}


def pending(
    source: CsvSource,
    points: dict[str, ResumePoint],
    on_skip: Callable[[], None],
    stopped: Callable[[], bool] = lambda: False,
) -> Iterator[tuple[int, CsvRow]]:
    """The rows the server does not hold yet, in file order, each with its rank (0-based) in its series; none
    after ``stopped()`` (a Ctrl-C while the merge reads the file: it read on to the end, a review's)."""
    ranks: dict[str, int] = {}
    for row in source.rows():
        if stopped():
            return
        rank = ranks.get(row.series, 0)
        ranks[row.series] = rank + 1
        point = points.get(row.series)
        if point is not None and point.holds(row, rank):
            on_skip()
            continue
        yield rank, row


def in_time_order(ranked: Iterator[tuple[int, CsvRow]]) -> Iterator[CsvRow]:
    """The rows of ``ranked`` (``pending``'s) merged across series by time: each series' rows stay in
    their file order, and the next row sent is the one, among each series' next, with the earliest
    timestamp (without a time column, the lowest rank within its series in the file: the first row of
    every series, then the second, ..., so that a resumed feed goes on in the order of an uninterrupted
    one), ties in file order. A file in time order comes out as it is; one sorted by series is interleaved.

    The server steps a request's k-th values of its series together as one tick, so 1,000 rows of one
    series are 1,000 ticks where 1,000 rows of 100 series are 10: a new user's 72,000 rows of 100 meters
    went in 15 times slower sorted by series than by time (session 56). The rows are held in memory
    to merge them, about 270 bytes a row: ``feed`` streams a file in time order already, and any file with
    ``--in-file-order``."""
    queues: dict[str, list[tuple[float, int, CsvRow]]] = {}
    for rank, row in ranked:  # (lines are unique: rows are never compared)
        queues.setdefault(row.series, []).append((merge_key(row, rank), row.line, row))
    for _, _, row in heapq.merge(*queues.values()):  # merges the heads: each queue keeps its own order
        yield row


def feed(
    client: Client,
    source: CsvSource,
    model: str,
    batch_size: int = 500,
    progress: bool = True,
    progress_file: IO[str] | None = None,
    file_order: bool = False,
) -> FeedReport:
    """Send the rows the server does not hold, ``batch_size`` per request, merged across series in time
    order (``in_time_order``; in the file's order with ``file_order``); then read the statistics."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid: must be an integer >= 1")
    counts, ordered = survey(source)
    report = FeedReport(rows=sum(counts.values()), series=list(counts))
    client.get_model(model)  # a clear NotFound before anything else when the model does not exist
    points = resume_points(client, model, report.series)
    bar = tqdm(
        total=report.rows,
        unit="obs",
        desc=f"feed -> {model}",
        disable=not progress,
        file=progress_file or sys.stderr,
        dynamic_ncols=True,
    )

    def skip() -> None:
        report.skipped += 1
        bar.update(1)

    def send(batch: list[CsvRow]) -> None:
        _send(client, model, batch, source.name)
        report.sent += len(batch)
        bar.update(len(batch))
        if stop[0]:  # Ctrl-C during it: its answer came, so the server holds it
            raise FeedInterrupted(report)

    with bar, _stop_between_batches() as stop:
        batch: list[CsvRow] = []
        rows = pending(source, points, skip, lambda: stop[0])
        streamed = file_order or ordered  # (a file in time order already: its order is the merge's)
        for row in (row for _, row in rows) if streamed else in_time_order(rows):
            if stop[0]:  # Ctrl-C with no batch in flight (reading or skipping rows): nothing more is sent
                raise FeedInterrupted(report)
            batch.append(row)
            if len(batch) == batch_size:
                send(batch)
                batch = []
        if batch:
            send(batch)
    stats = held_stats(client, model, report.series)
    report.stats = [stats[name] if name in stats else client.series_stats(model, name) for name in report.series]
    return report


def _send(client: Client, model: str, batch: list[CsvRow], name: str) -> None:
    try:
        client.observe_many(model, [row.observation() for row in batch], batch_size=len(batch))
    except ApiError as error:
        if error.index is not None and 0 <= error.index < len(batch):
            where = f"line {batch[error.index].line}"
        else:
            lines = [row.line for row in batch]  # (in time order, not the file's: its first and last)
            where = f"lines {min(lines)}-{max(lines)}"
        message = f"{name}, {where}: the server refused the batch ({error}){_others(error, batch)}"
        raise FeedError(f"{message}; nothing of it was applied") from error


def _others(error: ApiError, batch: list[CsvRow]) -> str:
    """The other lines of ``batch`` the server's answer names, as " (also lines 9, 14; 3 refused in all)": a 409's
    ``refused`` (every refused element, since session 57), else each listed error's ``loc`` (a 422's first 5);
    ``error_count`` counts them all. A feed had named the answer's first line alone (session 56)."""
    body = error.body if isinstance(error.body, dict) else {}
    if error.refused is not None:  # a 409: every refused element (since session 57)
        indices = [i for i in error.refused if isinstance(i, int)]
    else:
        listed = [entry.get("loc", ()) for entry in body.get("errors") or () if isinstance(entry, dict)]
        indices = [int(loc[2]) for loc in listed if len(loc) > 2 and str(loc[2]).isdigit()]
    lines = [str(batch[i].line) for i in indices if 0 <= i < len(batch) and i != error.index]
    if not lines:
        return ""
    count = body.get("error_count")
    shown = ", ".join(lines[:MAX_LINES_NAMED]) + (", ..." if len(lines) > MAX_LINES_NAMED else "")
    return f" (also line{'s' if len(lines) > 1 else ''} {shown}; {count} refused in all)"


MAX_LINES_NAMED = 20  # a refused batch's other lines named in feed's message


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def format_report(report: FeedReport, model: str) -> str:
    """The prequential error table: model vs naive per series, and the geometric mean of their ratios;
    the values each series' model flagged as outliers (far outside their interval), and, where any series has
    some, the values held back as a stuck reading's repeats (``held``)."""
    held = any(s.held for s in report.stats)
    header = ("series", "count", "MAE", "naive MAE", "MAE/naive", "RMSE", "naive RMSE", "coverage", "outliers")
    lines = [header + ("held",) * held]
    for s in report.stats:
        coverage = "-" if s.coverage is None else f"{s.coverage:.1%} (target {s.interval_level:.0%})"
        errors = (s.mae, s.naive_mae, s.relative_mae, s.rmse, s.naive_rmse)
        outliers = "-" if s.outliers is None else str(s.outliers)
        lines.append(
            (s.series, str(s.count), *(_number(e) for e in errors), coverage, outliers) + (str(s.held),) * held
        )
    scored = [s for s in report.stats if s.mae is not None and s.naive_mae and s.count > 0]
    if len(scored) > 1:
        # the series' ratios' geometric mean, in no one's units: a count-weighted MAE pooled series of 1e-3
        # and 1e6 into the largest one's ratio (a new user's, session 54); a series forecast exactly (a ratio
        # of 0, no logarithm) is left out of it and named in the row's label (it made the mean 0, a review)
        total = sum(s.count for s in scored)
        ratios = [s.mae / s.naive_mae for s in scored if s.mae > 0]  # type: ignore[operator]
        exact = len(scored) - len(ratios)
        mean = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else 0.0
        label = "all (geometric mean)" if not exact else f"all (geometric mean; {exact} exact)"
        lines.append((label, str(total), "-", "-", _number(mean), "", "", "", "") + ("",) * held)
    return "\n".join([_summary(report, model), *format_table(lines)])


def format_table(lines: list[tuple[str, ...]]) -> list[str]:
    """Columns padded to their widest cell: the first left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
    return [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in lines
    ]


def _summary(report: FeedReport, model: str) -> str:
    return (
        f"model {model!r}: {report.rows} rows in the file, {report.sent} sent, {report.skipped} already on the "
        f"server (skipped).\nPrequential one-step error (each forecast made before its value arrived); "
        f"MAE/naive < 1 beats repeating the last value:"
    )
