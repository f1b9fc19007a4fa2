"""The forecasters of the accuracy benchmark, all behind river's ``learn_one`` / ``forecast``.

river's own models already follow that contract; the naive baselines and our
forecaster are wrapped here. Our forecaster holds one series named ``"y"``.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.prequential import LastValue, OnlineForecaster
from tbptt_online import Forecaster, ForecasterConfig

# What a user would pick without tuning: the library's defaults (GRU, hidden 64,
# k1 = 8, k2 = 32, Adam lr 1e-3, gaussian loss, normalised inputs).
DEFAULT = ForecasterConfig()


class SeasonalNaive:
    """Forecasts the value one period before each target (the last value until a period is seen)."""

    def __init__(self, period: int) -> None:
        self.period = period
        self.seen: list[float] = []

    def learn_one(self, y: float) -> None:
        self.seen.append(y)
        del self.seen[: -self.period]  # keep the last period only

    def forecast(self, horizon: int) -> list[float]:
        if len(self.seen) < self.period:
            return [self.seen[-1]] * horizon
        # The next value has index t; values[t+h-1] is forecast by values[t+h-1 - P*ceil(h/P)],
        # which is seen[(h-1) % P] since seen[0] is values[t-P].
        return [self.seen[(h - 1) % self.period] for h in range(1, horizon + 1)]


class OurForecaster:
    """A :class:`~tbptt_online.Forecaster` holding the one series ``"y"``."""

    def __init__(self, config: ForecasterConfig) -> None:
        self.forecaster = Forecaster(config)

    def learn_one(self, y: float) -> None:
        self.forecaster.observe("y", float(y))

    def forecast(self, horizon: int) -> list[float]:
        return self.forecaster.forecast("y", horizon).mean


def contenders(period: int, tuned: ForecasterConfig | None = None) -> dict[str, Callable[[], OnlineForecaster]]:
    """Name -> a factory of a fresh model, for a series of seasonal period ``period``."""
    from river import time_series

    made: dict[str, Callable[[], OnlineForecaster]] = {
        "naive last value": LastValue,
        f"seasonal naive (P={period})": lambda: SeasonalNaive(period),
        # river's documented settings for AirlinePassengers, with m = the series' period
        f"river SNARIMAX(p={period}, d=1, q={period}, m={period}, sd=1)": lambda: time_series.SNARIMAX(
            p=period, d=1, q=period, m=period, sd=1
        ),
        f"river HoltWinters(0.3, 0.1, 0.6, P={period}, mult.)": lambda: time_series.HoltWinters(
            alpha=0.3, beta=0.1, gamma=0.6, seasonality=period, multiplicative=True
        ),
        "ours stateful (defaults)": lambda: OurForecaster(DEFAULT),
        "ours stateless (defaults)": lambda: OurForecaster(ForecasterConfig(mode="stateless")),
    }
    if tuned is not None:
        label = f"ours {tuned.mode} k1={tuned.k1} lr={tuned.lr:g} (TUNED on these series)"
        made[label] = lambda: OurForecaster(tuned)
    return made
