"""CsvSource: the observations of a CSV file, read with the csv module, row by row.

One row is one observation: a series name (from ``series_column``, or one fixed
name for a file of a single series), a value from one or more ``value_columns``
(several make a multi-feature value) and an optional timestamp (unix seconds or
ISO-8601). An empty cell, ``NA``, ``NaN`` or ``null`` is a missing value. A bad
cell raises ``ValueError`` naming the file, line, column and value.

>>> import io
>>> text = "time,host,cpu\\n2024-01-01T00:00:00Z,web-1,12.5\\n2024-01-01T01:00:00Z,web-1,\\n"
>>> source = CsvSource(lambda: io.StringIO(text), value_columns=["cpu"], series_column="host",
...                       time_column="time")
>>> [(r.line, r.series, r.value, r.seconds) for r in source.rows()]
[(2, 'web-1', 12.5, 1704067200.0), (3, 'web-1', None, 1704070800.0)]
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tbptt_online.client.calls import MAX_ABS_VALUE
from tbptt_service.iso_times import iso_moment
from tbptt_service.plain_numbers import plain_float

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none"})


@dataclass(frozen=True, slots=True)  # (slots: feed holds a file's rows to merge them by time)
class CsvRow:
    line: int  # 1-based line of the file (the header is line 1)
    series: str
    value: Any  # float | None, or a list of them for several value columns
    timestamp: float | str | None  # as sent: unix seconds, or the ISO-8601 text of the file
    seconds: float | None  # the timestamp as unix seconds (to compare with the server's)

    def observation(self) -> dict[str, Any]:
        out: dict[str, Any] = {"series": self.series, "value": self.value}
        if self.timestamp is not None:
            out["timestamp"] = self.timestamp
        return out


def parse_seconds(text: str) -> tuple[float | str, float]:
    """A timestamp cell as (what to send, unix seconds); naive ISO times are UTC, as on the server."""
    try:
        seconds = plain_float(text)  # (not float(): it took "1_0" as 10, a hostile test)
    except ValueError:
        try:
            return text, iso_moment(text).timestamp()  # as the server reads it; ValueError when it is neither
        except OverflowError:
            raise ValueError("outside the years 1 to 9999 in UTC") from None
    if not math.isfinite(seconds):
        raise ValueError("not finite")
    return seconds, seconds


class CsvSource:
    def __init__(
        self,
        open_file: Callable[[], IO[str]],
        value_columns: list[str],
        series_column: str | None = None,
        series_name: str | None = None,
        time_column: str | None = None,
        name: str = "<csv>",
    ) -> None:
        if not value_columns:
            raise ValueError("value_columns=[] is invalid: name at least one column holding the values")
        if (series_column is None) == (series_name is None):
            raise ValueError("give exactly one of series_column (a column of names) or series_name (one series)")
        self.open_file = open_file
        self.value_columns = value_columns
        self.series_column = series_column
        self.series_name = series_name
        self.time_column = time_column
        self.name = name

    @classmethod
    def from_path(cls, path: str | Path, **columns: Any) -> CsvSource:
        path = Path(path)
        return cls(lambda: path.open(newline="", encoding="utf-8-sig"), name=str(path), **columns)

    def _check_header(self, header: list[str] | None) -> None:
        if header is None:
            raise ValueError(f"{self.name}: the file is empty; it needs a header row naming its columns")
        wanted = {*self.value_columns, self.series_column, self.time_column}
        repeated = sorted({c for c in header if header.count(c) > 1 and c in wanted})
        if repeated:  # fix: csv.DictReader kept the last of them without a word (others are never read)
            raise ValueError(
                f"{self.name}: the header names column(s) {repeated} more than once; name each column once"
            )
        wanted = [*self.value_columns, self.series_column, self.time_column]
        absent = [c for c in wanted if c is not None and c not in header]
        if absent:
            raise ValueError(f"{self.name}: column(s) {absent} not found; the header has {header}")

    def rows(self) -> Iterator[CsvRow]:
        """Every row, in file order (the file is opened anew on each call). What the csv module
        or the text decoding refuses (a cell over its field size limit, bytes that are not UTF-8)
        is a ``ValueError`` naming the file and the line, as a bad cell is."""
        with self.open_file() as file:
            reader = csv.DictReader(file)
            try:
                self._check_header(reader.fieldnames)
                for record in reader:
                    yield self._row(reader.line_num, record)
            except csv.Error as error:  # fix: escaped as a traceback (e.g. a cell of over 131,072 characters)
                raise ValueError(f"{self.name}, line {reader.line_num + 1}: unreadable CSV: {error}") from None
            except UnicodeDecodeError as error:  # fix: the message named neither the file nor the line
                raise ValueError(f"{self.name}: not UTF-8 text ({error.reason}); save the file as UTF-8") from None

    def _cell_error(self, line: int, column: str, text: Any, allowed: str) -> ValueError:
        return ValueError(f"{self.name}, line {line}, column {column!r}: {text!r} is invalid: {allowed}")

    def _row(self, line: int, record: dict[str, Any]) -> CsvRow:
        if any(cell.strip() for cell in record.get(None, ())):  # fix: cells past the header were ignored (empty: fine)
            raise ValueError(
                f"{self.name}, line {line}: the row has more cells than the header ({record[None]!r} left over)"
            )
        if self.series_column is None:
            series = self.series_name
        else:
            series = (record.get(self.series_column) or "").strip()
            if not series:
                raise self._cell_error(line, self.series_column, series, "a series name must not be empty")
        values = [self._number(line, column, record.get(column)) for column in self.value_columns]
        timestamp, seconds = None, None
        if self.time_column is not None:
            text = (record.get(self.time_column) or "").strip()
            try:
                timestamp, seconds = parse_seconds(text)
            except ValueError:
                raise self._cell_error(line, self.time_column, text, "must be unix seconds or ISO-8601") from None
        value = values[0] if len(values) == 1 else values
        return CsvRow(line, str(series), value, timestamp, seconds)

    def _number(self, line: int, column: str, text: Any) -> float | None:
        if text is None:
            raise self._cell_error(line, column, text, "the row has fewer cells than the header")
        text = text.strip()
        if text.lower() in MISSING:
            return None
        try:
            number = plain_float(text)  # (not float(): it took "1_0" as 10 and "١٢" as 12, a hostile test)
        except ValueError:
            raise self._cell_error(
                line,
                column,
                text,
                "must be a number written in digits (a point, an exponent), or missing: empty, NA, N/A, NaN, "
                "null or none (any case)",
            ) from None
        if not math.isfinite(number):
            raise self._cell_error(line, column, text, "must be finite")
        if abs(number) > MAX_ABS_VALUE:  # (the server refused the whole batch: a hostile test, session 57)
            raise self._cell_error(line, column, text, f"must lie within the service's bound of ±{MAX_ABS_VALUE:g}")
        return number
