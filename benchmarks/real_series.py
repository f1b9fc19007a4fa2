"""The real series of the accuracy benchmark, all shipped with installed packages or this repository.

Nothing is downloaded: river's AirlinePassengers, WaterFlow and TrumpApproval and statsmodels'
co2, elnino, sunspots, nile and elec_equip are files inside the installed packages;
``data/server_metrics.csv`` is in the repository (one stream per host). Gaps (co2's missing
weeks, the CSV's missed scrapes) are filled by linear interpolation, so every contender sees
the same evenly spaced values.

A dataset is one row of the acceptance tally; most hold one stream, ``server_metrics`` holds
one per host and is scored as their mean. ``period`` is the true seasonal period, given to the
seasonal baselines; 1 means no season (seasonal naive is then the naive last value).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SERVER_METRICS_CSV = Path(__file__).resolve().parents[1] / "data" / "server_metrics.csv"


@dataclass(frozen=True)
class RealSeries:
    name: str  # the stream's name: the dataset's, or "dataset/part" when a dataset has several
    values: list[float]
    period: int  # the seasonal period used by the seasonal baselines (1: no season)
    source: str
    dataset: str = ""  # the dataset it counts towards (default: its own name)

    def __post_init__(self) -> None:
        if not self.dataset:
            object.__setattr__(self, "dataset", self.name)


def airline() -> list[RealSeries]:
    from river import datasets

    values = [float(y) for _, y in datasets.AirlinePassengers()]
    return [RealSeries("airline", values, 12, "river AirlinePassengers: monthly passengers 1949-1960")]


def co2() -> list[RealSeries]:
    from statsmodels.datasets import co2 as co2_data

    weekly = co2_data.load_pandas().data["co2"]  # Saturdays 1958-03-29 .. 2001-12-29, 59 weeks missing
    values = [float(v) for v in weekly.interpolate(method="linear", limit_direction="both")]
    return [
        RealSeries(
            "co2", values, 52, "statsmodels co2: Mauna Loa CO2, weekly 1958-2001 (59 missing weeks interpolated)"
        )
    ]


def elnino() -> list[RealSeries]:
    from statsmodels.datasets import elnino as elnino_data

    table = elnino_data.load_pandas().data.drop(columns="YEAR")  # one row per year, one column per month
    values = [float(v) for row in table.to_numpy() for v in row]  # year by year, January to December
    return [RealSeries("elnino", values, 12, "statsmodels elnino: monthly sea surface temperature 1950-2010")]


def waterflow() -> list[RealSeries]:
    from river import datasets

    values = [float(y) for _, y in datasets.WaterFlow()]
    return [RealSeries("waterflow", values, 24, "river WaterFlow: hourly flow in a pipeline branch, 2022")]


def sunspots() -> list[RealSeries]:
    from statsmodels.datasets import sunspots as sunspots_data

    values = [float(v) for v in sunspots_data.load_pandas().data["SUNACTIVITY"]]
    return [RealSeries("sunspots", values, 11, "statsmodels sunspots: yearly sunspot activity 1700-2008 (cycle ~11)")]


def nile() -> list[RealSeries]:
    from statsmodels.datasets import nile as nile_data

    values = [float(v) for v in nile_data.load_pandas().data["volume"]]
    return [RealSeries("nile", values, 1, "statsmodels nile: yearly Nile flow at Aswan 1871-1970 (no season)")]


def elec_equip() -> list[RealSeries]:
    from statsmodels.datasets import elec_equip as elec_equip_data

    values = [float(v) for v in elec_equip_data.load_pandas().data.iloc[:, 0]]
    return [
        RealSeries(
            "elec_equip",
            values,
            12,
            "statsmodels elec_equip: euro-area electrical equipment turnover, monthly 1995-2016",
        )
    ]


def trump_approval() -> list[RealSeries]:
    from river import datasets

    rows = sorted((x["ordinal_date"], y) for x, y in datasets.TrumpApproval())
    values = [float(y) for _, y in rows]
    return [RealSeries("trump_approval", values, 1, "river TrumpApproval: FiveThirtyEight daily approval (no season)")]


def server_metrics(path: Path = SERVER_METRICS_CSV) -> list[RealSeries]:
    """One stream per host of the README tour's CSV (hourly ``cpu_percent``, three weeks)."""
    import pandas as pd

    table = pd.read_csv(path).pivot(index="timestamp", columns="host", values="cpu_percent").sort_index()
    filled = table.interpolate(method="linear", limit_direction="both")  # a few missed scrapes per host
    return [
        RealSeries(
            f"server_metrics/{host}",
            [float(v) for v in filled[host]],
            24,
            f"data/server_metrics.csv: hourly cpu_percent of host {host} ({int(table[host].isna().sum())} missing "
            "values interpolated)",
            dataset="server_metrics",
        )
        for host in sorted(table.columns)
    ]


LOADERS: dict[str, Callable[[], list[RealSeries]]] = {
    "airline": airline,
    "co2": co2,
    "elnino": elnino,
    "waterflow": waterflow,
    "sunspots": sunspots,
    "nile": nile,
    "elec_equip": elec_equip,
    "trump_approval": trump_approval,
    "server_metrics": server_metrics,
}


def all_series(only: list[str] | None = None) -> list[RealSeries]:
    """Every stream of the datasets named in ``only`` (default: all of them, in LOADERS order)."""
    names = list(LOADERS) if only is None else only
    unknown = [name for name in names if name not in LOADERS]
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}: choose among {list(LOADERS)}")
    return [stream for name in names for stream in LOADERS[name]()]
