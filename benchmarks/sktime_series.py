"""Ten real series outside the other sets, read from sktime's wheel without installing it.

sktime (BSD-3-Clause) ships small datasets as CSV files in ``sktime/datasets/data/``. sktime is no
dependency of this project (it would pull pandas, scikit-learn and more for a few columns of
numbers): the benchmark reads the files from a wheel you download, and nothing of the wheel runs
(``csv`` reads each file's column)::

    pip download sktime==1.2.0 --no-deps -d /tmp/wheels
    python -m benchmarks.accuracy --sktime /tmp/wheels

They are a third set the project's defaults were not chosen on (first scored in session 42): a
monthly series with a level shift, a sparse monthly count, a half-hourly solar output with nights at
0, a cyclic series with a trend, an ECG of 7,500 samples (a beat about every 296, never exactly),
and five quarterly changes of the US economy, stationary and short (187 values), the kind where a
low-order AR with a mean is the classical forecaster. ``period`` is
the seasonal period given to river's seasonal baselines.
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from pathlib import Path

from benchmarks.real_series import RealSeries
from benchmarks.wheels import wheel_in

VERSION = "1.2.0"  # the wheel the published figures read
ROOT = "sktime/datasets/data/"
USCHANGE = "percentage changes of the US {what}, quarterly 1970-2016 (fpp2's uschange)"
SERIES: dict[str, tuple[str, str, int, str]] = {  # name: (file under ROOT, column, period, what it is)
    "seatbelts": (
        "seatbelts/seatbelts.csv",
        "KSI",
        12,
        "car drivers killed or seriously injured in Great Britain, monthly 1969-1984 (R's Seatbelts; "
        "the seat-belt law of February 1983 within it)",
    ),
    "pbs": (
        "PBS_dataset/PBS_dataset.csv",
        "Scripts",
        12,
        "monthly scripts of immune sera and immunoglobulins sold in Australia (the PBS), 1991-2008: a sparse count",
    ),
    "solar": (
        "solar/solar.csv",
        "solar_gen",
        48,
        "Great Britain's solar generation estimate (Sheffield Solar PV_Live), half-hourly, 1-7 May 2021",
    ),
    "yahoo": (
        "yahoo/yahoo.csv",
        "data",
        12,
        "a series of Yahoo's anomaly benchmark as sktime's tests ship it (7 values labelled anomalies; "
        "a cycle of 12 and a trend)",
    ),
    "mitdb": (
        "mitdb/mitdb.csv",
        "data",
        296,
        "an ECG of the MIT-BIH arrhythmia database (360 samples a second) as sktime's tests ship it: "
        "a beat about every 296 samples",
    ),
    **{
        f"uschange_{column.lower()}": ("Uschange/Uschange.csv", column, 4, USCHANGE.format(what=what))
        for column, what in (
            ("Consumption", "personal consumption expenditure"),
            ("Income", "personal disposable income"),
            ("Production", "industrial production"),
            ("Savings", "personal savings"),
            ("Unemployment", "unemployment rate (its change, in points)"),
        )
    },
}


def column_of(text: str, column: str, name: str) -> list[float]:
    """The numbers of ``column`` in a CSV file's ``text``, as floats; a missing, non-number or
    non-finite value is refused naming the series and the row.

    >>> column_of("t,y\\n1,2.5\\n2,-3\\n", "y", "x")
    [2.5, -3.0]
    """
    reader = csv.DictReader(io.StringIO(text))
    if column not in (reader.fieldnames or []):
        raise ValueError(f"{name}: no column {column!r} in its file (columns: {reader.fieldnames})")
    values = []
    for row, record in enumerate(reader, start=2):
        try:
            value = float(record[column])
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):  # "nan" and "inf" parse: refused as a blank is (a review)
            raise ValueError(f"{name}: row {row} of its file has {record[column]!r}, not a finite number")
        values.append(value)
    return values


def sktime_series(path: Path) -> list[RealSeries]:
    """The ten series of ``SERIES`` from the wheel at ``path`` (a file or a folder holding one)."""
    wheel = wheel_in(path, "sktime", VERSION)
    found = []
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for name, (file, column, period, what) in SERIES.items():
            member = ROOT + file
            if member not in names:
                raise ValueError(f"{wheel} has no {member}: an sktime wheel ({VERSION} has all ten) is needed")
            try:
                text = archive.read(member).decode()
            except UnicodeDecodeError as error:  # (a review: it came out raw)
                raise ValueError(f"{wheel}: {member} is not UTF-8 text: {error}") from None
            values = column_of(text, column, name)
            found.append(RealSeries(name, values, period, f"sktime {name}: {what}"))
    return found
