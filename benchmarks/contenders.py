"""The forecasters of the accuracy benchmark, all behind river's ``learn_one`` / ``forecast``.

river's own models already follow that contract; the naive baselines and our forecaster
are wrapped here (ours holds one series named ``"y"`` and also gives intervals). river's
Holt-Winters and SNARIMAX each run over a grid of configurations, all given the true
period; the accuracy script then keeps, per stream and per metric, the best of each grid
in hindsight (optimistic for river: a user streaming the series could not know it).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.prequential import LastValue, OnlineForecaster
from tbptt_online import Forecaster, ForecasterConfig

NAIVE = "naive"
SEASONAL_NAIVE = "seasonal naive"
HOLT_WINTERS = "river HoltWinters"
SNARIMAX = "river SNARIMAX"
OURS = "ours"
RIVER_FAMILIES = (HOLT_WINTERS, SNARIMAX)

# Holt-Winters: level and trend smoothing, and (with a season) its smoothing and kind.
HW_ALPHAS = (0.2, 0.5, 0.8)
HW_BETAS_SEASONAL = (0.01, 0.1)  # river requires a trend (beta) when there is a season
HW_BETAS_PLAIN = (None, 0.01, 0.1)
HW_GAMMAS = (0.1, 0.4)
# SNARIMAX with river's default regressor (StandardScaler | LinearRegression, SGD).
SNARIMAX_DS = (0, 1)
SNARIMAX_QS = (0, 1)
SNARIMAX_SDS = (0, 1)


@dataclass(frozen=True)
class Contender:
    family: str  # NAIVE, SEASONAL_NAIVE, HOLT_WINTERS, SNARIMAX or OURS
    config: str  # which member of the family, e.g. "alpha=0.2 beta=0.01 gamma=0.1 mult."
    make: Callable[[], OnlineForecaster]  # a fresh model
    intervals: bool = False  # it has forecast_interval (coverage is scored)


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

    def forecast_interval(self, horizon: int, level: float) -> tuple[list[float], list[float], list[float]]:
        made = self.forecaster.forecast("y", horizon, level)
        return made.mean, made.lower, made.upper


def holt_winters_grid(period: int, positive: bool) -> list[Contender]:
    """river's HoltWinters with season ``period`` (none when 1); multiplicative too if ``positive``."""
    from river import time_series

    if period == 1:
        return [
            Contender(
                HOLT_WINTERS,
                f"alpha={alpha} beta={beta if beta is not None else '-'} (no season)",
                lambda alpha=alpha, beta=beta: time_series.HoltWinters(alpha=alpha, beta=beta),
            )
            for alpha, beta in itertools.product(HW_ALPHAS, HW_BETAS_PLAIN)
        ]
    kinds = (False, True) if positive else (False,)
    return [
        Contender(
            HOLT_WINTERS,
            f"alpha={alpha} beta={beta} gamma={gamma} {'mult.' if multiplicative else 'add.'}",
            lambda alpha=alpha, beta=beta, gamma=gamma, multiplicative=multiplicative: time_series.HoltWinters(
                alpha=alpha, beta=beta, gamma=gamma, seasonality=period, multiplicative=multiplicative
            ),
        )
        for multiplicative, alpha, beta, gamma in itertools.product(kinds, HW_ALPHAS, HW_BETAS_SEASONAL, HW_GAMMAS)
    ]


def snarimax_grid(period: int) -> list[Contender]:
    """river's SNARIMAX with season ``m = period``: p in {1, 2, period} x d x sd x q, plus river's
    documented setting (p = q = period, d = sd = 1); without a season, p in {1, 2, 3} x d x q."""
    from river import time_series

    if period == 1:
        orders = [(p, d, q, 0) for p, d, q in itertools.product((1, 2, 3), SNARIMAX_DS, SNARIMAX_QS)]
    else:
        orders = [
            (p, d, q, sd) for p, d, sd, q in itertools.product((1, 2, period), SNARIMAX_DS, SNARIMAX_SDS, SNARIMAX_QS)
        ]
        orders.append((period, 1, period, 1))  # river's docstring example for AirlinePassengers
    return [
        Contender(
            SNARIMAX,
            f"p={p} d={d} q={q}" + (f" m={period} sd={sd}" if period > 1 else ""),
            lambda p=p, d=d, q=q, sd=sd: time_series.SNARIMAX(p=p, d=d, q=q, m=period, sd=sd),
        )
        for p, d, q, sd in orders
    ]


def contenders(period: int, positive: bool, ours: ForecasterConfig) -> list[Contender]:
    """Everything scored on a stream of seasonal period ``period``; the naive last value first."""
    return [
        Contender(NAIVE, "last value", LastValue),
        Contender(SEASONAL_NAIVE, f"P={period}", lambda: SeasonalNaive(period)),
        *holt_winters_grid(period, positive),
        *snarimax_grid(period),
        Contender(OURS, "defaults" if ours == ForecasterConfig() else "custom", lambda: OurForecaster(ours), True),
    ]
