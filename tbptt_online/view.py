"""ForecasterView: one consistent, read-only moment of a forecaster.

It holds a frozen copy of the weights and a shallow copy of the series tensors
(which the store never writes in place), so it can serve forecasts and statistics
from another thread while the forecaster observes and updates: it never sees half
an update, and reading it never changes anything.
"""

from __future__ import annotations

import math

import torch

from tbptt_online.config import ForecasterConfig
from tbptt_online.intervals import predictive, to_units, z_value
from tbptt_online.losses import shift_mean
from tbptt_online.network import RecurrentNetwork, State, run_window
from tbptt_online.normalizer import std
from tbptt_online.results import Forecast, SeriesStats
from tbptt_online.scoring import STAT
from tbptt_online.series_store import window
from tbptt_online.values import format_row


def check_level(level: float) -> float:
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0.0 < level < 1.0:
        raise ValueError(f"level={level!r} is invalid: must be a number in (0, 1)")
    return float(level)


class ForecasterView:
    def __init__(
        self,
        config: ForecasterConfig,
        network: RecurrentNetwork,
        tensors: dict[str, torch.Tensor],
        slots: dict[str, int],
        update_count: int,
    ) -> None:
        self.config = config
        self.network = network
        self.tensors = tensors
        self.slots = slots
        self.update_count = update_count

    def series(self) -> list[str]:
        return list(self.slots)

    def _slot(self, series: str) -> torch.Tensor:
        if series not in self.slots:
            raise ValueError(f"series {series!r} is unknown")
        return torch.tensor([self.slots[series]])

    def normaliser(self, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(centre, scale) ``[B, d]`` of the series' normaliser, None if the model has none."""
        if not self.config.normalize:
            return None
        stats = self.tensors["stats"][slots]  # [B, F, d]
        return stats[:, STAT["norm_mean"]], std(stats[:, STAT["norm_count"]], stats[:, STAT["norm_m2"]])

    def forecast(self, series: str, horizon: int = 1, level: float | None = None) -> Forecast:
        """Roll the model forward ``horizon`` steps from a copy of the carried state,
        feeding back its own means (with the residual head, each step's mean is the
        change added to the value fed before it); nothing of the forecaster changes."""
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon={horizon!r} is invalid: must be an integer >= 1")
        level = check_level(self.config.interval_level if level is None else level)
        slot = self._slot(series)
        d, z = self.config.n_features, z_value(level)
        norm = self.normaliser(slot)
        stats = self.tensors["stats"][slot]  # [1, F, d]
        resid_sq, score_n = stats[:, STAT["resid_sq"]], stats[:, STAT["score_n"]]
        h = self.tensors["carried_h"][slot]  # [1, layers, H]
        state = (h, self.tensors["carried_c"][slot]) if self.config.cell == "lstm" else h
        if self.config.mode == "stateless":
            state = self._fresh_state(slot)
        t = int(self.tensors["steps"][slot])
        last = self.tensors["hist_x"][slot][:, (t - 1) % self.config.ring_size]  # [1, d] x_t, normalised
        means, lowers, uppers = [], [], []
        with torch.no_grad():
            for k in range(1, horizon + 1):
                pred = self.network.predict(state)  # [1, p]
                if self.config.residual:
                    pred = shift_mean(pred, last)
                    last = pred[:, :d]
                mean, sd = predictive(pred, d, resid_sq, score_n, step=k)
                m, lo, hi = to_units(mean, sd, z, norm)
                means.append(format_row(m[0].tolist()))
                lowers.append(format_row(lo[0].tolist()))
                uppers.append(format_row(hi[0].tolist()))
                state = self.network.advance(pred[:, :d], state)  # feed back its own mean
        return Forecast(series, horizon, level, means, lowers, uppers, t, self.update_count)

    def _fresh_state(self, slot: torch.Tensor) -> State:
        """Stateless: a fresh state run over the series' last min(t, k2) values with the
        weights of this view. (Fix: the carried state was run with the weights of the
        series' own last tick, so after an update caused by other series it was stale
        and the forecast mixed old and new weights.)"""
        steps = self.tensors["steps"][slot]  # [1]
        x, _, _ = window(self.tensors, self.config.ring_size, slot, steps, min(int(steps), self.config.k2))  # [w, 1, d]
        with torch.no_grad():
            return run_window(self.network, self.network.initial_state(1), x, torch.zeros(1, dtype=torch.int64))

    def series_stats(self, series: str) -> SeriesStats:
        """Prequential accuracy so far (errors summed over features, then divided)."""
        slot = self._slot(series)
        sums = self.tensors["stats"][slot][0].sum(dim=1).tolist()  # [F]: summed over features
        t = {k: sums[STAT[k]] for k in ("score_n", "abs_err", "sq_err", "covered")}
        naive = {k: sums[STAT[k]] for k in ("naive_n", "naive_abs_err", "naive_sq_err")}

        def ratio(num: float, den: float, root: bool = False) -> float | None:
            if den == 0:
                return None
            return math.sqrt(num / den) if root else num / den

        return SeriesStats(
            series=series,
            count=int(self.tensors["steps"][slot]),
            mae=ratio(t["abs_err"], t["score_n"]),
            rmse=ratio(t["sq_err"], t["score_n"], root=True),
            naive_mae=ratio(naive["naive_abs_err"], naive["naive_n"]),
            naive_rmse=ratio(naive["naive_sq_err"], naive["naive_n"], root=True),
            coverage=ratio(t["covered"], t["score_n"]),
            interval_level=self.config.interval_level,
        )
