"""The real series of the accuracy benchmark, all shipped inside river and statsmodels.

Nothing is downloaded: river's AirlinePassengers and WaterFlow and statsmodels' co2 and
elnino are files inside the installed packages.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RealSeries:
    name: str
    values: list[float]
    period: int  # the seasonal period used by the seasonal baselines
    source: str


def airline() -> RealSeries:
    from river import datasets

    values = [float(y) for _, y in datasets.AirlinePassengers()]
    return RealSeries("airline", values, 12, "river AirlinePassengers: monthly passengers 1949-1960")


def waterflow() -> RealSeries:
    from river import datasets

    values = [float(y) for _, y in datasets.WaterFlow()]
    return RealSeries("waterflow", values, 24, "river WaterFlow: hourly flow in a pipeline branch, 2022")


def co2() -> RealSeries:
    from statsmodels.datasets import co2 as co2_data

    weekly = co2_data.load_pandas().data["co2"]
    # Weekly with gaps: monthly means, and the 5 months with no week linearly interpolated.
    monthly = weekly.resample("MS").mean().interpolate(method="linear")
    return RealSeries(
        "co2", [float(v) for v in monthly], 12, "statsmodels co2: Mauna Loa, weekly 1958-2001 -> monthly means"
    )


def elnino() -> RealSeries:
    from statsmodels.datasets import elnino as elnino_data

    table = elnino_data.load_pandas().data.drop(columns="YEAR")  # one row per year, one column per month
    values = [float(v) for row in table.to_numpy() for v in row]  # year by year, January to December
    return RealSeries("elnino", values, 12, "statsmodels elnino: monthly sea surface temperature 1950-2010")


def all_series() -> list[RealSeries]:
    return [airline(), waterflow(), co2(), elnino()]
