"""HybridTick: the hybrid's part of a forecaster's tick, between the network's steps.

``Forecaster._tick`` runs, for a tick of B distinct series, the scoring and the series'
statistics, the network's advance and any update due, and the new forecasts; with
``hybrid=True`` the values reach the network through ``step`` (outliers taken at their
bound, the scoring of past forecasts, the experts' advance, season detection, the base the
network corrects, the network's input and target; see hybrid.py) and the network's
correction reaches the served forecasts through ``serve``. ``rebuild_served`` remakes the
served forecasts of a loaded state. No autograd: everything here is data made before the
network sees it, or after it has run.
"""

from __future__ import annotations

import numpy as np
import torch

from tbptt_online import experts, hybrid, outliers
from tbptt_online.config import ForecasterConfig
from tbptt_online.intervals import z_value
from tbptt_online.scoring import STAT
from tbptt_online.series_store import SeriesStore


class HybridTick:
    """The hybrid's steps of a tick over the rows of a forecaster's ``store``."""

    def __init__(self, config: ForecasterConfig, store: SeriesStore) -> None:
        self.config = config
        self.store = store
        self.outlier_bound = (
            None
            if config.outlier_sigmas is None
            else outliers.Bound(z_value(config.interval_level), config.outlier_sigmas, config.outlier_run)
        )

    def step(
        self,
        rows: dict[str, torch.Tensor],
        raw: torch.Tensor,
        mask: torch.Tensor,
        served: list[torch.Tensor],
        stats: torch.Tensor,
        steps: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """Score, advance the experts, look for seasons, for the values ``raw`` [B, d] (NaN =
        missing, ``mask`` where observed) of steps ``steps`` [B]; ``served``: the forecast
        served for these values (mean, lower, upper [B, d] each), ``stats`` the series'
        statistics before them [B, F, d]. Returns the network's input [B, F * d], its target
        [B, d], where the target is defined, the experts' paths [B, Hc, E - 1, d] and their
        combination (``hybrid.Base``), which ``serve`` reuses, and which values were taken at
        their bound [B] (any feature; None: outliers off)."""
        cfg = self.config
        made, observed = served[0].numpy(), mask.numpy()  # (numpy: a tick's few rows, no torch overhead)
        y = np.where(observed, raw.numpy(), made)  # missing: the served mean
        gap = ~observed & np.isnan(made)  # missing, and nothing served: the last value (0 before any)
        if gap.any():
            y[gap] = np.nan_to_num(stats[:, STAT["last_value"]].numpy()[gap], nan=0.0)
        flagged, shifted = None, None
        if self.outlier_bound is not None:  # far outside its interval: taken at the bound (``outliers``)
            upper = served[2].numpy()
            last = stats[:, STAT["last_value"]].numpy()  # [B, d] the value before, as it came
            y, at_bound, shifted = outliers.cleaned(rows, steps, y, observed, (made, upper), last, self.outlier_bound)
            flagged = torch.from_numpy(at_bound.any(axis=1))  # [B]
        y = torch.from_numpy(y)
        tensors = self.store.tensors
        hybrid.score(rows, y, mask, steps, cfg.interval_level, tensors["c_origin"], tensors["c_origin_ref"])
        target, defined = hybrid.network_target(rows, y, mask)
        experts.advance(rows, y, mask, steps, None if shifted is None else torch.from_numpy(shifted))
        self.seasons(rows, steps)
        paths = experts.paths(rows, steps, cfg.calibrated_horizon)  # [B, Hc, E - 1, d]
        base = hybrid.base_path(rows, paths)  # the experts' combination [B, Hc, d] and the members' weights
        rows["n_base"], rows["n_scale"] = base.path[:, 0], experts.local_scale(rows)
        x = hybrid.network_input(rows, y, steps, target, base.path[:, 0])
        return x, target, defined, paths, base, flagged

    def seasons(self, rows: dict[str, torch.Tensor], steps: torch.Tensor) -> None:
        """Look for seasons at the detection steps ("auto"), or set the configured ones."""
        cfg = self.config
        if cfg.season_length is None:
            return
        if cfg.season_length == "auto":
            due = hybrid.detection_due(steps, rows["x_period"])
        else:
            longest = max(cfg.season_length)
            due = (steps == 1) | (steps == 2 * longest)
        if not bool(due.any()):  # most ticks
            return
        for at in torch.unique(steps[due]).tolist():
            which = due & (steps == at)
            idx = which.nonzero().squeeze(1)
            whole = len(idx) == len(steps)  # every row (many series of one age): the rows themselves, no copies
            part = rows if whole else experts.subset(rows, idx)
            if cfg.season_length == "auto":
                hybrid.detect(part, steps[idx], cfg.season_table_size)
            else:
                periods = torch.tensor(list(cfg.season_length) + [0] * (2 - len(cfg.season_length)))
                hybrid.set_seasons(
                    part,
                    steps[idx],
                    periods.expand(len(idx), cfg.n_features, 2),
                    torch.ones(len(idx), dtype=torch.bool),
                )
            if not whole:
                for key, value in experts.own(part).items():
                    rows[key].index_put_((idx,), value)  # in place, as in hybrid.set_seasons

    def serve(
        self,
        rows: dict[str, torch.Tensor],
        store_rows: dict[str, torch.Tensor] | None,
        slots: torch.Tensor,
        steps: torch.Tensor,
        pred: torch.Tensor,
        paths: torch.Tensor,
        base: hybrid.Base,
    ) -> torch.Tensor:
        """Store the network's correction ``pred`` [B, p], combine with the tick's ``paths`` and
        ``base``, remember the origin's forecasts; store and return the served one-step
        forecast [B, 4, d]. ``store_rows``: the store's own rows (``SeriesStore.hybrid_rows``),
        which the tick wrote in place: only the fields it replaced are written back (None:
        copies, every field is)."""
        d = self.config.n_features
        rows["n_correction"] = pred[:, :d].to(torch.float64)
        horizons = self.config.calibrated_horizon
        half = hybrid.half_widths(rows, horizons)  # [B, Hc, d]
        origin = self.store.writable("c_origin", slots)  # in place at these rows (no snapshot holds it)
        origin_ref = self.store.writable("c_origin_ref", slots)
        mean = hybrid.remember(rows, paths, base, half, steps % horizons, origin, origin_ref)  # [B, Hc, d]
        served = hybrid.served_rows(mean[:, 0], half[:, 0], rows)
        own = experts.own(rows)
        if store_rows is not None:
            own = {k: v for k, v in own.items() if v is not store_rows[k]}
        self.store.put(slots, next_pred=pred, served=served, served_path=mean, **own)
        return served

    def rebuild_served(self, slots: torch.Tensor) -> None:
        """The served forecasts (one step, and the path to the calibrated horizon), recomputed
        from the saved state as the tick made them."""
        rows = hybrid.rows_at(self.store.tensors, slots)
        steps = self.store.get("steps", slots)
        mean = hybrid.members(rows, steps, self.config.calibrated_horizon).mean  # [B, Hc, d]
        half = hybrid.half_widths(rows, 1)[:, 0]  # [B, d]
        self.store.put(slots, served=hybrid.served_rows(mean[:, 0], half, rows), served_path=mean)
