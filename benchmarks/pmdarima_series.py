"""Seven real series outside the accuracy benchmark, read from pmdarima's wheel without installing it.

pmdarima (MIT licence) ships classic short series of R's ``datasets`` and ``fpp`` packages as
number literals in ``pmdarima/datasets/<name>.py``. pmdarima is no dependency of this project
(it would pull scikit-learn and a compiled extension for seven lists of numbers): the
benchmark reads them from a wheel you download, and nothing of the wheel runs (each module's
first ``np.array([...])`` literal is parsed with ``ast.literal_eval``; a trailing ``None``, the
quarter ausbeer has not yet, is dropped)::

    pip download pmdarima==2.1.1 --no-deps -d /tmp/wheels
    python -m benchmarks.accuracy --pmdarima /tmp/wheels

They are what the project's defaults were not chosen on (first scored in session 21): one
half-hourly electricity demand of 4,032 values and six series of 89 to 211 values, monthly,
quarterly, yearly and one without a season, the short series a new user's first streams are.
``period`` is the seasonal period given to river's seasonal baselines (lynx: its ~10-year cycle).
"""

from __future__ import annotations

import ast
import zipfile
from pathlib import Path

from benchmarks.real_series import RealSeries
from benchmarks.wheels import wheel_in

VERSION = "2.1.1"  # the wheel the published figures read (any version with these modules parses)
SERIES: dict[str, tuple[int, str]] = {  # name: (period, what it is)
    "taylor": (48, "half-hourly electricity demand (MW), England and Wales, 5 June-27 August 2000 (Taylor 2003)"),
    "wineind": (12, "monthly Australian wine sales by winemakers, 1980-1994"),
    "woolyrnq": (4, "quarterly woollen yarn production in Australia, 1965-1994"),
    "lynx": (10, "yearly Canadian lynx trappings, 1821-1934 (a cycle of about 10 years)"),
    "ausbeer": (4, "quarterly Australian beer production (megalitres), 1956 Q1-2008 Q3"),
    "austres": (4, "quarterly Australian residents (thousands), March 1971-March 1994"),
    "heartrate": (1, "150 heart-rate measurements every 0.5 s, from an MIT database (no season)"),
}


def array_literal(source: str, name: str) -> list[float]:
    """The numbers of the first ``np.array([...])`` call in ``source`` (a dataset module), as
    floats, a trailing ``None`` dropped.

    >>> array_literal("import numpy as np\\ndef load():\\n    return np.array([1, 2.5, None]).astype(float)", "x")
    [1.0, 2.5]
    """
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "array"
            and node.args
            and isinstance(node.args[0], ast.List)
        ):
            values = ast.literal_eval(node.args[0])
            while values and values[-1] is None:
                values.pop()
            if any(v is None for v in values):
                raise ValueError(f"{name}: a missing value inside the series")
            return [float(v) for v in values]
    raise ValueError(f"{name}: no np.array([...]) literal in its module")


def pmdarima_series(path: Path) -> list[RealSeries]:
    """The seven series of ``SERIES`` from the wheel at ``path`` (a file or a folder holding one)."""
    wheel = wheel_in(path, "pmdarima", VERSION)
    found = []
    with zipfile.ZipFile(wheel) as archive:
        for name, (period, what) in SERIES.items():
            member = f"pmdarima/datasets/{name}.py"
            if member not in archive.namelist():
                raise ValueError(f"{wheel} has no {member}: a pmdarima wheel ({VERSION} has all seven) is needed")
            source = archive.read(member).decode()
            found.append(RealSeries(name, array_literal(source, name), period, f"pmdarima {name}: {what}"))
    return found
