"""Admission: what of one request a micro-batch will apply, decided before anything is.

Each request (a *job*) is checked on its own against the model's state plus the
jobs already admitted to the same micro-batch, so a bad job fails alone and
atomically while the others go ahead:

1. the library's validation (names, numbers, dimension) -> 422 naming the index;
2. the per-series timestamp rule, in order: a later timestamp is new; the same
   timestamp with the same value is an idempotent repeat (it gets the first
   result and is not applied again); an older one, or the same with another
   value, is 409 naming the index;
3. the cap on series per model, and the memory budgets (``series_limit``, asked once per
   batch, only when it adds a series) -> 409 naming the index of the first series too many;
   one 409 names every element refused by 2 and the first by 3, as a 422 names bad elements:
   ``detail`` and ``index`` the first's, the first ``MAX_LISTED_ERRORS`` in ``errors``, and
   ``error_count`` (a refused element sets no mark: its series' next is compared with the last);
4. a timestamped value that comes whole steps after the series' last one, once its cadence is
   known (:mod:`tbptt_service.host.cadence`), is preceded by the missing steps (values
   ``None`` on the grid between the two timestamps): at most ``max_gap_steps`` per request and
   ``gap_allowance`` per batch, a longer gap shortened by whole seasons. They are journaled and
   applied with the batch, and answer nobody.

>>> from tbptt_online import Forecaster, ForecasterConfig
>>> from tbptt_service.storage.observation import Observation
>>> batch = BatchAdmission(Forecaster(ForecasterConfig(hidden_size=4)), marks={}, max_series=10)
>>> batch.admit([Observation("a", 1.0, 10.0), Observation("a", 1.0, 10.0)])  # the repeat points at element 0
[0, 0]
>>> batch.admit([Observation("a", 2.0, 9.0)])
Traceback (most recent call last):
...
tbptt_service.errors.Conflict: observation 0: timestamp 9.0 of series 'a' is older than its last timestamp 10.0
>>> [o.value for o in batch.merged]
[1.0]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tbptt_online import Forecaster, StepResult
from tbptt_online.results import Row
from tbptt_online.values import format_row
from tbptt_service.errors import MAX_LISTED_ERRORS, ApiError, Conflict, Unprocessable
from tbptt_service.host.cadence import UNKNOWN, Cadence, fill_times, shortened
from tbptt_service.host.memory_budget import SeriesLimit
from tbptt_service.storage.observation import Observation

_INDEX = re.compile(r"^observation (\d+):")  # the library names the bad element this way


@dataclass(frozen=True)
class SeriesMark:
    """A series' last timestamped observation: its timestamp, value (as the library
    formats it) and result, or, while its batch is pending, its place in the batch; and the
    series' cadence as of that timestamp."""

    timestamp: float
    value: Row
    result: StepResult | None = None
    pending: int = -1
    cadence: Cadence = UNKNOWN


Source = int | StepResult  # where an element's result comes from: the merged batch, or a known result


class BatchAdmission:
    """Collects the admitted jobs of one micro-batch into one merged list of observations."""

    def __init__(
        self,
        forecaster: Forecaster,
        marks: Mapping[str, SeriesMark],
        max_series: int,
        series_limit: Callable[[], SeriesLimit] | None = None,
        max_gap_steps: int = 0,
        gap_allowance: int = 0,
    ) -> None:
        self.forecaster = forecaster
        self.marks = marks
        self.max_series = max_series
        self.max_gap_steps = max_gap_steps  # missing steps inserted for one gap, at most
        self.gap_allowance = gap_allowance  # missing steps this batch may still insert
        self.inserted = 0  # missing steps inserted into ``merged``
        self._series_limit = series_limit
        self._limit: SeriesLimit | None = None
        self.merged: list[Observation] = []
        self.spans: list[tuple[int, int] | None] = []  # per job of admit_all: its part of merged (None: refused)
        self._staged_marks: dict[str, SeriesMark] = {}
        self._untimed: dict[str, int] = {}  # per series: values without a timestamp staged since its last mark
        self._new_series: set[str] = set()

    @property
    def new_series(self) -> frozenset[str]:
        """The series the admitted jobs add to the model."""
        return frozenset(self._new_series)

    def limit(self) -> SeriesLimit:
        """The most series the model may hold (asked once per batch, when a series is new)."""
        if self._limit is None:
            own = SeriesLimit(self.max_series, f"TBPTT_MAX_SERIES_PER_MODEL={self.max_series}")
            self._limit = own if self._series_limit is None else min(own, self._series_limit(), key=lambda x: x.count)
        return self._limit

    def _last_mark(self, series: str, job_marks: dict[str, SeriesMark]) -> SeriesMark | None:
        for marks in (job_marks, self._staged_marks, self.marks):
            mark = marks.get(series)
            if mark is not None:
                return mark
        return None

    def _untimed_since(self, series: str, job_untimed: dict[str, int]) -> int:
        """The series' values without a timestamp since its last timestamped one: each took a step."""
        for counts in (job_untimed, self._untimed):
            if series in counts:
                return counts[series]
        mark = self.marks.get(series)
        if mark is None or mark.result is None or series not in self.forecaster.store.slots:
            return 0
        # applied since the mark (never below 0: an imported checkpoint's marks are not matched with its steps);
        # the series' step as results report it (the store's steps start again when a series restarts)
        return max(self.forecaster.step_of(series) - mark.result.step, 0)

    def admit_all(self, jobs: list[list[Observation]]) -> list[list[Source] | ApiError]:
        """``admit`` each job in order: its sources, or the ``ApiError`` that refused it.

        The library validates all the jobs' values in one call when they are all valid
        (the common case): its torch work runs once per micro-batch, not once per job.
        """
        everything = [obs for job in jobs for obs in job]
        rows: list[list[float]] | None = None
        try:
            _, raw = self.forecaster.validate([(o.series, o.value) for o in everything])
        except ValueError:  # some job is bad: each is validated on its own, to refuse it alone
            valid = False
        else:
            valid = True
            if any(o.timestamp is not None for o in everything):
                rows = raw.tolist()
        outcomes: list[list[Source] | ApiError] = []
        start = 0
        for job in jobs:
            before = len(self.merged)
            try:
                if valid:
                    outcomes.append(self._admit_valid(job, None if rows is None else rows[start : start + len(job)]))
                else:
                    outcomes.append(self.admit(job))
            except ApiError as error:
                outcomes.append(error)
                self.spans.append(None)
            else:
                self.spans.append((before, len(self.merged)))
            start += len(job)
        return outcomes

    def admit(self, observations: list[Observation]) -> list[Source]:
        """Admit one job whole, or raise ``ApiError`` and change nothing.

        Returns, per element, the index in ``merged`` of the observation that
        produces its result (its own, or the one it repeats), or the stored result
        of an earlier batch that it repeats.
        """
        try:
            _, raw = self.forecaster.validate([(o.series, o.value) for o in observations])
        except ValueError as error:
            raise refused_value(str(error)) from None
        rows = raw.tolist() if any(o.timestamp is not None for o in observations) else None
        return self._admit_valid(observations, rows)

    def _admit_valid(self, observations: list[Observation], rows: list[list[float]] | None) -> list[Source]:
        """``admit`` for a job whose values the library accepted; ``rows``: its values as the
        library parsed them, needed only when an element carries a timestamp (else None).

        Only a timestamped element is compared with a mark: its value as the library formats
        it (NaN -> None: equal values compare equal)."""
        known, new_series, base = self.forecaster.store.slots, self._new_series, len(self.merged)
        job_marks: dict[str, SeriesMark] = {}
        job_index: dict[str, int] = {}  # the element that set each of job_marks
        job_untimed: dict[str, int] = {}
        job_series: set[str] = set()
        staged: list[Observation] = []
        sources: list[Source] = []
        allowance = start = min(self.gap_allowance, self.max_gap_steps)  # this request's missing steps, at most
        refused: list[tuple[int, str, str, str]] = []  # (index, field, message, type) of each element refused
        for i, obs in enumerate(observations):
            series, _, timestamp = obs
            if timestamp is not None:
                assert rows is not None
                value = format_row(rows[i])
                mark = self._last_mark(series, job_marks)
                if mark is not None and timestamp == mark.timestamp and value == mark.value:
                    sources.append(mark.result if mark.result is not None else mark.pending)
                    continue  # an idempotent repeat: nothing is learned twice
                if mark is not None and timestamp < mark.timestamp:
                    message = (
                        f"observation {i}: timestamp {timestamp} of series {series!r} is older than "
                        f"its last timestamp {mark.timestamp}"
                    )
                    refused.append((i, "timestamp", message, "timestamp_older"))
                    continue  # (it sets no mark: the series' next element is compared with its last)
                if mark is not None and timestamp == mark.timestamp:
                    # where the value it differs from is: this request's own (a file with a duplicate row: the
                    # model held nothing of it, and the message said it did, a new user), or the model's
                    if series in job_marks:
                        where = f"observation {job_index[series]} of this request gives series {series!r} value"
                    elif series in self._staged_marks:  # (a review's: the model did not hold it either)
                        where = f"a request applied in the same batch as this one gives series {series!r} value"
                    else:
                        where = f"series {series!r} already has value"
                    message = (
                        f"observation {i}: {where} {mark.value!r} at timestamp {mark.timestamp}; {value!r} differs "
                        "(a repeat must carry the same value)"
                    )
                    refused.append((i, "value", message, "timestamp_repeat_differs"))
                    continue
                cadence = UNKNOWN
                if mark is not None:
                    cadence, filled = self._gap(series, mark, timestamp, allowance, job_untimed)
                    staged.extend(filled)
                    allowance -= len(filled)
                job_marks[series] = SeriesMark(timestamp, value, pending=base + len(staged), cadence=cadence)
                job_index[series] = i
                job_untimed[series] = 0
            elif series in job_marks or series in self._staged_marks or series in self.marks:
                job_untimed[series] = self._untimed_since(series, job_untimed) + 1  # (counted only for a gap)
            if series not in known and series not in new_series and series not in job_series:
                job_series.add(series)
                limit = self.limit()
                if len(known) + len(new_series) + len(job_series) > limit.count:
                    message = (
                        f"observation {i}: series {series!r} would be new, but the model already holds "
                        f"{len(known) + len(new_series)} series; {limit.reason}"
                    )
                    refused.append((i, "series", message, "series_limit"))
                    job_series.discard(series)  # (so each later new series is refused and counted too)
            sources.append(base + len(staged))
            staged.append(obs)
        if refused:
            raise _refusal(refused)
        self.merged.extend(staged)
        self.inserted += start - allowance
        self.gap_allowance -= start - allowance
        self._staged_marks.update(job_marks)
        self._untimed.update(job_untimed)
        self._new_series |= job_series
        return sources

    def _gap(
        self, series: str, mark: SeriesMark, timestamp: float, allowance: int, job_untimed: dict[str, int]
    ) -> tuple[Cadence, list[Observation]]:
        """The series' cadence once ``timestamp`` follows ``mark``, and the missing steps to insert
        before it (as ``ModelWorker.apply`` will fold the cadence over them and the value); the first of
        the grid's steps are the values sent without a timestamp since the mark (``_untimed_since``)."""
        cadence, last = mark.cadence, mark.timestamp
        missing = cadence.missing(timestamp - last) if self.max_gap_steps else 0  # (0: filling is off)
        taken = self._untimed_since(series, job_untimed) if missing else 0  # (a store read: only where a gap is)
        if missing <= taken:
            return cadence.after(timestamp - last), []
        held = missing - taken > allowance and series in self.forecaster.store.slots  # (else new in this batch)
        seasons = self.forecaster.series_stats(series).seasons if held and allowance else []  # (0 left: none fit)
        filled: list[Observation] = []
        for moment in fill_times(last, timestamp, missing, shortened(missing - taken, allowance, seasons)):
            cadence, last = cadence.after(moment - last), moment
            filled.append(Observation(series, None, moment))
        return cadence.after(timestamp - last), filled


def _refusal(refused: list[tuple[int, str, str, str]]) -> Conflict:
    """The 409 of a job some elements of which were refused (``(index, field, message, type)`` each, in
    order): ``detail`` and ``index`` the first's, the first ``MAX_LISTED_ERRORS`` listed as a 422 lists bad
    elements (``errors``), ``error_count`` all, and ``refused`` the index of every one, so a client drops
    them all at once (a new user's gateway, session 56: each stale sensor of a batch took a round trip of
    its own; a hostile test, session 57: 12 stale sensors listed 5 at a time took 4)."""
    first, _, detail, _ = refused[0]
    errors = [
        {"loc": ["body", "observations", str(i), field], "msg": message, "type": kind}
        for i, field, message, kind in refused[:MAX_LISTED_ERRORS]
    ]
    return Conflict(detail, index=first, errors=errors, error_count=len(refused), refused=[i for i, *_ in refused])


def refused_value(message: str) -> Unprocessable:
    """The 422 of a batch whose element the library's check refused (``message``: "observation <i>: ..."):
    its ``index``, and ``errors`` / ``error_count`` as every other refused element has them (a hostile test,
    session 60: ``"value": []`` answered ``detail`` and ``index`` alone).

    >>> body = refused_value("observation 2: value has 2 feature(s), expected n_features=1").body()
    >>> body["index"], body["errors"][0]["loc"], body["errors"][0]["type"], body["error_count"]
    (2, ['body', 'observations', '2', 'value'], 'value_error', 1)
    """
    found = _INDEX.match(message)
    if found is None:  # (the library names the element; a refusal of the batch as a whole has no place)
        return Unprocessable(message)
    error = {"loc": ["body", "observations", found.group(1), "value"], "msg": message, "type": "value_error"}
    return Unprocessable(message, index=int(found.group(1)), errors=[error], error_count=1)
