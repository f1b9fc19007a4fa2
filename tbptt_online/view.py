"""ForecasterView: one consistent, read-only moment of a forecaster.

It holds a frozen copy of the weights (none for the hybrid, whose forecasts never run
the network: its correction is part of the series' state) and a shallow copy of the
series tensors (which the store copies before writing in place), so it can serve
forecasts and statistics from another thread while the forecaster observes and
updates: it never sees half an update, and reading it never changes anything. Make it on
the forecaster's own thread, between two ticks (``Forecaster.view``), and hand it to the
readers: one made by a reader thread during a tick is no snapshot (a hostile test, session
35: 37 of 22,285 forecasts read twice from such views differed).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import torch

from tbptt_online import calibration, combination, hybrid, tick_kernels
from tbptt_online.compiled import readable
from tbptt_online.config import MAX_LEVEL, ForecasterConfig
from tbptt_online.intervals import known_only, predictive, to_units, widening, z_value
from tbptt_online.network import RecurrentNetwork
from tbptt_online.normalizer import std
from tbptt_online.results import Forecast, HorizonCoverage, MemberStats, Row, SeriesStats
from tbptt_online.rollout import fresh_state, roll_out
from tbptt_online.scoring import STAT
from tbptt_online.series_store import plain_name
from tbptt_online.values import format_row

# The longest horizon a forecast may ask for: its rollout holds every step (10**6 steps of one default series
# took 0.6 s and 866 MB, session 34); past it a request is refused alone, where 1e9 raised torch's allocation error
# and 1e20 an overflow, failing every request of its batch (a hostile test, session 48). The service asks less
# (TBPTT_MAX_HORIZON, 1,000).
MAX_HORIZON = 1_000_000

ForecastRequest = tuple[str, int] | tuple[str, int, float | None]  # (series, horizon[, level])


def _rollouts(valid: list[tuple[int, str, int, float]]) -> list[list[tuple[int, str, int, float]]]:
    """The requests ``valid`` (index, series, horizon, level) in batches each rolled out as one, shortest
    horizons first: a batch's rows times its longest horizon at most ``MAX_HORIZON`` (the steps one request may
    ask for), or one request. A batch is rolled out to its longest horizon: 40 requests of 10**6 steps had asked
    for 7.4 GB at once, and 32 of 200,000 took 3.1 GB (a hostile test, session 51)."""
    batches: list[list[tuple[int, str, int, float]]] = []
    for request in sorted(valid, key=lambda r: r[2]):
        if batches and (len(batches[-1]) + 1) * request[2] <= MAX_HORIZON:
            batches[-1].append(request)
        else:
            batches.append([request])
    return batches


def check_level(level: float) -> float:
    # fix: a level within 1e-16 of 1 has no finite quantile (it failed a whole batch of forecasts)
    if isinstance(level, bool | np.bool_) or not isinstance(level, numbers.Real) or not 0.0 < level <= MAX_LEVEL:
        raise ValueError(f"level={level!r} is invalid: must be a number in (0, {MAX_LEVEL}]")
    return float(level)


class ForecasterView:
    def __init__(
        self,
        config: ForecasterConfig,
        network: RecurrentNetwork | None,
        tensors: dict[str, torch.Tensor],
        slots: dict[str, int],
        update_count: int,
        offsets: dict[int, int] | None = None,
    ) -> None:
        self.config = config
        self.network = network
        self.tensors = tensors
        self.slots = slots
        self.update_count = update_count
        self.offsets = offsets or {}  # slot -> steps before a restart (SeriesStore.offsets)

    def series(self) -> list[str]:
        return list(self.slots)

    def _slot(self, series: str) -> torch.Tensor:
        series = plain_name(series)
        if series not in self.slots:
            raise ValueError(f"series {series!r} is unknown")
        return torch.tensor([self.slots[series]])

    def forecast(self, series: str, horizon: int = 1, level: float | None = None) -> Forecast:
        """Roll the model forward ``horizon`` steps from a copy of the carried state,
        feeding back its own means (with the residual head, each step's mean is the
        change added to the value fed before it); nothing of the forecaster changes.
        ``level``: the intervals' level (default: the config's ``interval_level``).
        Raises ``ValueError`` naming a bad argument or an unknown series.

        >>> from tbptt_online import Forecaster, ForecasterConfig
        >>> f = Forecaster(ForecasterConfig(hidden_size=8, seed=0))
        >>> for v in [1.0, 3.0, 2.0]:
        ...     r = f.observe("a", v)
        >>> fc = f.view().forecast("a", horizon=2, level=0.8)
        >>> fc.step, len(fc.mean), fc.lower[1] < fc.mean[1] < fc.upper[1], fc.mean[0] == r.forecast_next.mean
        (3, 2, True, True)
        """
        result = self.forecast_many([(series, horizon, level)])[0]
        if isinstance(result, ValueError):
            raise result
        return result

    def forecast_many(self, requests: Sequence[ForecastRequest]) -> list[Forecast | ValueError]:
        """Answer many forecast requests ``(series, horizon)`` or ``(series, horizon, level)``
        with one batched rollout to the largest horizon (each answer cut to its own).

        Returns one element per request, in order: its ``Forecast``, or the ``ValueError``
        that ``forecast`` would raise for it (an unknown series, a bad horizon or level, a
        malformed request), so a bad request fails alone. A series may appear in several
        requests. Each answer equals ``forecast(*request)`` to rounding only: a batch of
        rows runs other BLAS kernels than a single row (bit for bit in a batch of one;
        within 1e-12 relative in float64; a float32 model differs by float32 rounding,
        compounded over the steps). Nothing of the forecaster changes.

        >>> from tbptt_online import Forecaster, ForecasterConfig
        >>> f = Forecaster(ForecasterConfig(hidden_size=8, seed=0, dtype="float64"))
        >>> _ = f.observe_many([("a", 1.0), ("b", 5.0), ("a", 2.0), ("b", 4.0)])
        >>> view = f.view()
        >>> out = view.forecast_many([("a", 3), ("b", 1, 0.5), ("ghost", 2), ("a", 0)])
        >>> [len(x.mean) if isinstance(x, Forecast) else str(x) for x in out]
        [3, 1, "series 'ghost' is unknown", 'horizon=0 is invalid: must be an integer >= 1']
        >>> abs(out[0].mean[2] - view.forecast("a", 3).mean[2]) < 1e-12
        True
        """
        try:
            requests = list(requests)
        except TypeError:  # fix: forecast_many(5) raised TypeError, as observe_many(5) did
            raise ValueError(f"requests must be an iterable of (series, horizon[, level]), not {requests!r}") from None
        answers: dict[int, Forecast | ValueError] = {}
        valid: list[tuple[int, str, int, float]] = []  # (request index, series, horizon, level)
        for i, request in enumerate(requests):
            try:
                valid.append((i, *self._check_request(request)))
            except ValueError as error:
                answers[i] = error
        for group in _rollouts(valid):
            answers.update(zip((i for i, *_ in group), self._forecasts(group), strict=True))
        return [answers[i] for i in range(len(requests))]

    def _check_request(self, request: object) -> tuple[str, int, float]:
        if not isinstance(request, tuple | list) or not 2 <= len(request) <= 3:
            raise ValueError(f"request {request!r} is invalid: must be (series, horizon) or (series, horizon, level)")
        series, horizon, *rest = request
        # (a numpy integer is an integer, as a numpy float is a level; a bool is not)
        if isinstance(horizon, bool | np.bool_) or not isinstance(horizon, numbers.Integral) or horizon < 1:
            raise ValueError(f"horizon={horizon!r} is invalid: must be an integer >= 1")
        if horizon > MAX_HORIZON:  # (session 48: 1e9 raised an allocation error, failing its batch)
            raise ValueError(f"horizon={horizon!r} is invalid: must be at most {MAX_HORIZON:,}")
        horizon = int(horizon)
        level = check_level(self.config.interval_level if not rest or rest[0] is None else rest[0])
        series = plain_name(series)
        if not isinstance(series, str) or series not in self.slots:
            raise ValueError(f"series {series!r} is unknown")
        return series, horizon, level

    def _forecasts(self, requests: list[tuple[int, str, int, float]]) -> list[Forecast]:
        """One rollout to the largest horizon H of a row per distinct (series, level) of the requests:
        requests that differ only in their horizon, or not at all, share a row, each answer cut to its
        own horizon (a hostile test, session 48: 8 identical requests at h = 1,000 to a model of 1,024
        features took 8 times as long as one)."""
        rows_of: dict[tuple[str, float], int] = {}
        order = [rows_of.setdefault((series, level), len(rows_of)) for _, series, _, level in requests]
        if len(rows_of) == len(requests):
            return self._rollout(requests, max(h for _, _, h, _ in requests))
        longest = [0] * len(rows_of)  # each row's longest horizon asked
        for row, (_, _, h, _) in zip(order, requests, strict=True):
            longest[row] = max(longest[row], h)
        distinct = [(0, series, longest[row], level) for (series, level), row in rows_of.items()]
        shared = self._rollout(distinct, max(longest))
        return [
            Forecast(series, h, level, *(column[:h] for column in (a.mean, a.lower, a.upper)), a.step, a.update_count)
            for (_, series, h, level), a in zip(requests, (shared[row] for row in order), strict=True)
        ]

    def _rollout(self, requests: list[tuple[int, str, int, float]], horizon: int) -> list[Forecast]:
        """One rollout of B rows (one per request) to ``horizon`` H, each answer cut to its own."""
        cfg, tensors, d = self.config, self.tensors, self.config.n_features
        slots = torch.tensor([self.slots[series] for _, series, _, _ in requests], dtype=torch.int64)  # [B]
        steps = tensors["steps"][slots]  # [B]
        if cfg.hybrid:  # no network runs: the served path and the calibrated widths
            rows = _hybrid_forecasts(tensors, slots, steps, horizon, [level for *_, level in requests], cfg)
            return self._answers(requests, rows, steps)
        stats = tensors["stats"][slots]  # [B, F, d]
        with torch.inference_mode():  # nothing here is ever differentiated; only lists leave
            if cfg.mode == "stateless":  # a fresh run with this view's weights (see fresh_state)
                state = fresh_state(self.network, tensors, cfg.ring_size, cfg.k2, slots)
            else:
                h = tensors["carried_h"][slots]  # [B, layers, H] a copy (advanced indexing)
                state = (h, tensors["carried_c"][slots]) if cfg.cell == "lstm" else h
            last = tensors["hist_x"][slots, (steps - 1) % cfg.ring_size]  # [B, d] x_t, normalised
            preds = roll_out(self.network, state, last, horizon, cfg.residual)  # [H, B, p]
            resid_sq, score_n = stats[:, STAT["resid_sq"]], stats[:, STAT["score_n"]]  # [B, d] each
            widen = widening(horizon) if cfg.loss != "gaussian" else 1.0  # only a point forecast's interval widens
            mean, sd = predictive(preds, d, resid_sq, score_n, widen)  # [H, B, d] each
            levels = {level for *_, level in requests}
            z = z_value(levels.pop()) if len(levels) == 1 else _quantiles([level for *_, level in requests])
            norm = None
            if cfg.normalize:
                norm = stats[:, STAT["norm_mean"]], std(stats[:, STAT["norm_count"]], stats[:, STAT["norm_m2"]])
            units = known_only(to_units(mean, sd, z, norm), stats)  # [H, B, d] each
            rows = _by_row(torch.stack(units), d)  # per request: mean, lower, upper
        return self._answers(requests, rows, steps)

    def _answers(self, requests: list[tuple[int, str, int, float]], rows: list, steps: torch.Tensor) -> list[Forecast]:
        t = steps.tolist()
        if self.offsets:  # a series that restarted: its step goes on across restarts
            t = [
                step + self.offsets.get(self.slots[series], 0)
                for step, (_, series, _, _) in zip(t, requests, strict=True)
            ]
        return [
            Forecast(series, h, level, *(column[:h] for column in rows[b]), t[b], self.update_count)
            for b, (_, series, h, level) in enumerate(requests)
        ]

    def series_stats(self, series: str) -> SeriesStats:
        """Prequential accuracy so far (errors summed over features, then divided)."""
        slot = self._slot(series)
        sums = self.tensors["stats"][slot][0].sum(dim=1).tolist()  # [F]: summed over features
        first = self.tensors["stats"][slot][0, :, 0].tolist()  # [F] of the first feature (the series' own counts)
        t = {k: sums[STAT[k]] for k in ("score_n", "abs_err", "sq_err", "covered", "interval_n")}
        recent = {k: sums[STAT[k]] for k in ("recent_n", "recent_abs_err", "recent_naive_abs_err")}
        naive = {k: sums[STAT[k]] for k in ("naive_n", "naive_abs_err", "naive_sq_err")}

        def ratio(num: float, den: float, root: bool = False) -> float | None:
            if den == 0:
                return None
            return math.sqrt(num / den) if root else num / den

        extra = self._hybrid_stats(slot) if self.config.hybrid else {}
        return SeriesStats(
            series=series,
            count=int(self.tensors["steps"][slot]) + int(first[STAT["restarted_steps"]]),  # across restarts
            mae=ratio(t["abs_err"], t["score_n"]),
            rmse=ratio(t["sq_err"], t["score_n"], root=True),
            naive_mae=ratio(naive["naive_abs_err"], naive["naive_n"]),
            naive_rmse=ratio(naive["naive_sq_err"], naive["naive_n"], root=True),
            coverage=ratio(t["covered"], t["interval_n"]),  # of the forecasts served with an interval
            recent_mae=ratio(recent["recent_abs_err"], recent["recent_n"]),  # about the last 100 (scoring.RECENT)
            recent_naive_mae=ratio(recent["recent_naive_abs_err"], recent["recent_n"]),
            interval_level=self.config.interval_level,
            restarts=int(first[STAT["restarts"]]),
            flat_run=int(max(self.tensors["stats"][slot][0, STAT["flat_run"]].tolist())),  # the longest feature's
            held=int(sums[STAT["flat_held"]]),
            **extra,
        )

    def _hybrid_stats(self, slot: torch.Tensor) -> dict:
        """Seasons, the log members' state and each member's MAE and weight (first feature); the
        outliers (all features)."""
        rows = {k: v[slot] for k, v in self.tensors.items() if k.startswith(hybrid.PREFIXES)}
        first = {k: v[:, :1] if k in combination.FIELDS else v for k, v in rows.items()}  # horizon 1
        w = hybrid.served_weights(first)[0, 0, :, 0]
        n = float(rows["c_member_n"][0, 0])
        mae = (rows["c_member_abs"][0, :, 0] / n).tolist() if n > 0 else [None] * len(hybrid.MEMBERS)
        return {
            "seasons": [int(m) for m in rows["x_season_length"][0, 0].tolist() if m > 0],
            "multiplicative": bool(rows["x_positive"][0, 0]),
            "never_negative": bool(rows["x_nonneg"][0, 0]),
            "members": [MemberStats(*item) for item in zip(hybrid.MEMBERS, mae, w.tolist(), strict=True)],
            "outliers": int(rows["o_count"][0].sum()),
            "coverage_by_horizon": _coverage_by_horizon(rows),
        }


def _coverage_by_horizon(rows: dict[str, torch.Tensor]) -> list[HorizonCoverage]:
    """A series' coverage at each horizon 1 .. Hc, then at the far ones, from its ``rows`` (one series):
    ``c_coverage`` [1, Hc, 4, d] and ``c_far_coverage`` [1, F, 4, d], summed over the features."""
    near, far = rows["c_coverage"][0].sum(dim=-1), rows["c_far_coverage"][0].sum(dim=-1)  # [Hc, 4], [F, 4]
    horizons = [*range(1, len(near) + 1), *calibration.far_horizons(len(near))]
    counts = torch.cat([near, far]).tolist()  # [Hc + F] of (covered, scored, and the two discounted)

    def share(covered: float, scored: float) -> float | None:
        return covered / scored if scored > 0 else None

    return [
        HorizonCoverage(h, share(covered, scored), int(scored), share(recent, weight))
        for h, (covered, scored, recent, weight) in zip(horizons, counts, strict=True)
    ]


def _hybrid_forecasts(
    tensors: dict[str, torch.Tensor],
    slots: torch.Tensor,
    steps: torch.Tensor,
    horizon: int,
    levels: list[float],
    cfg: ForecasterConfig,
) -> list[list[list[Row]]]:
    """The hybrid's combined forecast and its calibrated interval (see hybrid.py), per row:
    up to the calibrated horizon the path the last tick served, past it the members again."""
    if horizon <= cfg.calibrated_horizon:
        named = (
            "c_q",
            "c_far_q",
            "c_shape",
            "x_seen",
            "x_nonneg",
            "x_missing",
            "c_phase",
            "c_phase_of",
            "c_phase_fit",
        )
        rows = {k: tensors[k][slots] for k in (*named, "x_season_length")}
        mean = tensors["served_path"][slots, :horizon]  # [B, H, d]
    else:
        rows = hybrid.rows_at(tensors, slots)
        # the store's own tensors (a live read): the forecasts made since a change, to leave out the members
        # that lag as the tick did (``after_change``); a snapshot holds none of them
        live = "c_origin" in tensors and rows["slot"] is slots
        origin = (tensors["c_origin"], tensors["c_origin_ref"]) if live else None
        mean = hybrid.members(rows, steps, horizon, origin=origin).mean  # [B, H, d]
        if origin is None:  # a snapshot: to the calibrated horizon the path the tick served, as above
            mean[:, : cfg.calibrated_horizon] = tensors["served_path"][slots]
    b, d = len(slots), cfg.n_features
    if all(level == cfg.interval_level for level in levels):  # the usual request: the tracked widths
        ratio = np.ones((b, 1, d))
    else:
        ratio = calibration.level_ratios(rows["c_shape"].numpy(), levels, cfg.interval_level)  # [B, Hq, d]
    by_row = np.empty((b, 3, horizon, d))  # mean, lower, upper (one compiled pass: tick_kernels.forecast_rows)
    path, q, far, seen, nonneg, missing = readable(
        mean, rows["c_q"], rows["c_far_q"], rows["x_seen"], rows["x_nonneg"], rows["x_missing"]
    )
    roots = calibration.horizon_roots(max(horizon, q.shape[1]), q.shape[1])
    far_at = calibration.far_array(q.shape[1])
    phased = tuple(
        readable(rows["c_phase"], rows["c_phase_of"], rows["c_phase_fit"], rows["x_season_length"], steps)
    )  # c_phase [B, P, 3, d], c_phase_of [B, d], c_phase_fit [B, Hc, 5, d], x_season_length [B, d, 2], steps [B]
    if not tick_kernels.forecast_rows(path, q, far, far_at, ratio, roots, seen, nonneg, missing, by_row, phased):
        return by_row[..., 0].tolist() if cfg.n_features == 1 else by_row.tolist()
    return [[[format_row(step) for step in part] for part in row] for row in by_row.tolist()]


def _quantiles(levels: list[float]) -> torch.Tensor:
    """``[B, 1]`` float64: the interval quantile of each row's level."""
    return torch.tensor([z_value(level) for level in levels], dtype=torch.float64)[:, None]


def _by_row(units: torch.Tensor, d: int) -> list[list[list[Row]]]:
    """``[3, H, B, d]`` (mean, lower, upper) -> per row b, per part, its H steps in the
    convention of ``format_row`` (a float when d = 1, a list otherwise, NaN -> None), with
    one C-level ``tolist``."""
    by_row = units.permute(2, 0, 1, 3)  # [B, 3, H, d]
    if not bool(torch.isnan(by_row).any()):
        return by_row[..., 0].tolist() if d == 1 else by_row.tolist()
    return [[[format_row(step) for step in part] for part in row] for row in by_row.tolist()]
