"""HybridTick: the hybrid's part of a forecaster's tick, between the network's steps.

``Forecaster._tick`` runs, for a tick of B distinct series, the scoring and the series'
statistics, the network's advance and any update due, and the new forecasts; with
``hybrid=True`` the values reach the network through ``step`` (outliers taken at their bound or
the edge, the scoring of past forecasts, the experts' advance, season detection, the base the
network corrects, the network's input and target; see hybrid.py) and the network's
correction reaches the served forecasts through ``serve``. ``rebuild_served`` remakes the
served forecasts of a loaded state. No autograd: everything here is data made before the
network sees it, or after it has run.
"""

from __future__ import annotations

import numpy as np
import torch

from tbptt_online import calibration, combination, experts, hybrid, one_thread, outliers, tick_kernels
from tbptt_online.combination import COMBINERS
from tbptt_online.compiled import over_rows, readable, writable
from tbptt_online.config import ForecasterConfig
from tbptt_online.intervals import z_value
from tbptt_online.scoring import STAT
from tbptt_online.series_store import SeriesStore

# A season detection of many rows (every series of a batch that started together reaches a detection step
# at the same tick) runs in parts of at least DETECT_PART_ROWS rows and DETECT_PART_VALUES values read, whatever
# the number of torch threads (``detection_parts``, ``detect_in_parts``)
DETECT_PART_ROWS = 2048
DETECT_PART_VALUES = 2**19


def detection_parts(rows: int, values: int) -> int:
    """How many parts a detection of ``rows`` rows reads ``values`` values of each in (1: one call): as
    many as keep DETECT_PART_ROWS rows and DETECT_PART_VALUES values in each (9,992 rows: one call up to
    step 104, 2 parts at 120 and 144, 3 at 192, 4 from 288 on). Parts of a few thousand rows keep their
    arrays in the caches; each part repeats a detection's some 3,000 torch operations. Measured at 10,000
    noise series, 9,992 of one age, on one thread: a captured detection alternated in one process (CPU
    minima of 5; one call, 2 parts, 4 parts) at step 96 163, 153, 148 ms; at 144 237, 245, 201; at 192 282,
    279, 228; at 288 520, 504, 366 (8 parts 444); whole ticks on copies of one forecaster (CPU minima of 10,
    one call against 2 parts) at steps 54, 60, 66, 72, 84: 194 -> 203, 192 -> 203, 208 -> 227, 345 -> 368,
    207 -> 230 ms, hence one call there."""
    return max(1, min(rows // DETECT_PART_ROWS, rows * values // DETECT_PART_VALUES))


def detect_in_parts(
    rows: dict[str, torch.Tensor],
    experts_rows: dict[str, torch.Tensor],
    idx: torch.Tensor,
    steps: torch.Tensor,
    max_season: int,
    count: int,
) -> None:
    """``hybrid.detect`` of the rows ``idx`` [N] (all at one step) of ``rows`` in ``count`` parts of
    consecutive indices (``detection_parts``), each part's rows copied (``experts.subset`` of
    ``experts_rows``, the experts' fields of ``rows``), detected and written back in place, with torch on
    one thread: in turn on this thread where torch has one, on ``one_thread``'s pool where it has several.
    A detection's every operation is row by row (a row's seasons and tables depend on its own values
    alone), so a part's rows get the bits of one call of all rows (checked at 9,992 rows: every field
    equal at step 288 in 2, 4, 5 and 8 parts, at 192 in 3, at 144 in 2), and the parts are the same calls
    on any number of threads. In one call on two threads each of a detection's operations made torch's two
    threads meet at its end."""
    cuts = [len(idx) * i // count for i in range(count + 1)]

    def run(chunks) -> None:
        for i in chunks:
            which = idx[cuts[i] : cuts[i + 1]]  # [n_i]
            part = experts.subset(experts_rows, which)  # copies of the rows (the shared tables whole)
            hybrid.detect(part, steps[which], max_season, rows["o_shift_at"][which])
            for key, value in experts.own(part).items():
                rows[key].index_put_((which,), value)  # in place, as in hybrid.set_seasons (parts: other rows)

    one_thread.run_chunks(count, run)


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
        combination (``BaseArrays``), which ``serve`` reuses, and which values were taken at
        their bound [B] (any feature; None: outliers off)."""
        cfg = self.config
        made, observed = served[0].numpy(), mask.numpy()  # (numpy: a tick's few rows, no torch overhead)
        y = np.where(observed, raw.numpy(), made)  # missing: the served mean
        gap = ~observed & np.isnan(made)  # missing, and nothing served: the last value (0 before any)
        if gap.any():
            y[gap] = np.nan_to_num(stats[:, STAT["last_value"]].numpy()[gap], nan=0.0)
        flagged, shifted, sent = None, None, y  # (sent: what the coverage per horizon counts)
        if self.outlier_bound is not None:  # far outside its interval: taken at its bound or the edge (``outliers``)
            upper = served[2].numpy()
            last = stats[:, STAT["last_value"]].numpy()  # [B, d] the value before, as it came
            y, at_bound, shifted = outliers.cleaned(rows, steps, y, observed, (made, upper), last, self.outlier_bound)
            flagged = at_bound.any(axis=1)  # [B]
        tensors = self.store.tensors
        origin = (tensors["c_origin"], tensors["c_origin_ref"], tensors["c_far_origin"])
        target, defined = score_and_advance(rows, y, observed, shifted, steps, cfg.interval_level, origin, sent)
        self.seasons(rows, steps)  # (a detection may replace the rows' tensors: the arrays are taken again below)
        x, paths, base = base_and_input(rows, y, steps, target, cfg.calibrated_horizon, origin)
        flagged = None if flagged is None else torch.from_numpy(flagged)
        return x, torch.from_numpy(target), torch.from_numpy(defined), paths, base, flagged

    def seasons(self, rows: dict[str, torch.Tensor], steps: torch.Tensor) -> None:
        """Look for seasons at the detection steps ("auto"), or set the configured ones."""
        cfg = self.config
        if cfg.season_length is None:
            return
        if cfg.season_length == "auto":
            if not hybrid.may_detect(steps):  # most ticks
                return
            due = hybrid.detection_due(steps, rows["x_season_length"])
        else:
            longest = max(cfg.season_length)
            due = (steps == 1) | (steps == 2 * longest)
        if not bool(due.any()):  # most ticks
            return
        # a detection reads and writes the experts' fields alone: the combination's are neither copied
        # for it nor written back (at 10,000 series they were most of a detection's copies)
        experts_rows = experts.experts_only(rows)
        for at in torch.unique(steps[due]).tolist():
            which = due & (steps == at)
            idx = which.nonzero().squeeze(1)
            ring = rows["x_raw"]  # [C, R, d]: a detection reads min(step, R) values of each feature
            parts = detection_parts(len(idx), min(at, ring.shape[1]) * ring.shape[2])
            if cfg.season_length == "auto" and parts > 1:  # many series of one age
                detect_in_parts(rows, experts_rows, idx, steps, cfg.season_table_size, parts)
                continue
            whole = len(idx) == len(steps)  # every row (many series of one age): the rows themselves, no copies
            part = rows if whole else experts.subset(experts_rows, idx)
            if cfg.season_length == "auto":
                hybrid.detect(part, steps[idx], cfg.season_table_size, rows["o_shift_at"][idx])
            else:
                lengths = torch.tensor(list(cfg.season_length) + [0] * (2 - len(cfg.season_length)))
                hybrid.set_seasons(
                    part,
                    steps[idx],
                    lengths.expand(len(idx), cfg.n_features, 2),
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
        paths: np.ndarray,
        base: BaseArrays,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the network's correction ``pred`` [B, p], combine with the tick's ``paths`` and
        ``base``, remember the origin's forecasts; store and return the served one-step
        forecast [B, 4, d] and the served mean [B, Hc, d] (horizons 1..Hc). ``store_rows``: the
        store's own rows (``SeriesStore.hybrid_rows``), which the tick wrote in place: only the
        fields it replaced are written back (None: copies, every field is)."""
        origin = tuple(self.store.writable(name, slots) for name in hybrid.ORIGIN_RING)  # in place
        served, mean = remember_and_serve(rows, steps, pred, paths, base, origin)
        own = experts.own(rows)
        if store_rows is not None:  # only the fields the tick replaced (a detection's): the rest was written in place
            own = {k: v for k, v in own.items() if v is not store_rows[k]}
        self.store.put(slots, next_pred=pred, served=served, served_path=mean, **own)
        return served, mean

    def rebuild_served(self, slots: torch.Tensor) -> None:
        """The served forecasts (one step, and the path to the calibrated horizon), recomputed
        from the saved state as the tick made them."""
        rows = hybrid.rows_at(self.store.tensors, slots)
        steps = self.store.get("steps", slots)
        origin = (self.store.tensors["c_origin"], self.store.tensors["c_origin_ref"])  # (``after_change``)
        mean = hybrid.members(rows, steps, self.config.calibrated_horizon, origin=origin).mean  # [B, Hc, d]
        b, _, d = mean.shape
        path, q, far, seen, nonneg, missing = readable(
            mean[:, :1], rows["c_q"], rows["c_far_q"], rows["x_seen"], rows["x_nonneg"], rows["x_missing"]
        )
        first = np.empty((b, 3, 1, d))  # mean, lower, upper of the next value, as a view serves them
        roots = calibration.horizon_roots(q.shape[1], q.shape[1])
        far_at = calibration.far_array(q.shape[1])
        phased = tuple(
            readable(rows["c_phase"], rows["c_phase_of"], rows["c_phase_fit"], rows["x_season_length"], steps)
        )  # c_phase [B, P, 3, d], c_phase_of [B, d], c_phase_fit [B, Hc, 5, d], x_season_length [B, d, 2], steps [B]
        tick_kernels.forecast_rows(
            path, q, far, far_at, np.ones((b, 1, d)), roots, seen, nonneg, missing, first, phased
        )  # fmt: skip
        served = torch.from_numpy(first[:, [0, 0, 1, 2], 0])  # [B, 4, d]: mean, mean, lower, upper
        self.store.put(slots, served=served, served_path=mean)


# -- the compiled calls (``tick_kernels``), from the rows -------------------------------------------
def score_and_advance(
    rows: dict[str, torch.Tensor],
    y: np.ndarray,
    observed: np.ndarray,
    shifted: np.ndarray | None,
    steps: torch.Tensor,
    interval_level: float,
    origin: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    sent: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Score value ``y`` [B, d] (float64, imputed where not ``observed``) of steps ``steps`` [B]
    at the tracked ``interval_level``, against the past forecasts in ``origin`` (the store's ``c_origin``,
    ``c_origin_ref``, ``c_far_origin``; each row reads its slot), make the network's target and advance the
    experts (``tick_kernels.before_seasons``; ``shifted`` [B, d]: where a level shift starts
    the trend's level again, None: nowhere; ``sent`` [B, d]: ``y`` before the outliers clipped a value,
    what the coverage per horizon counts). Returns the target [B, d] and where it is defined."""
    b, d = y.shape
    slot, step = readable(rows["slot"], steps)
    ring_origin, ref, far_origin = (ring.numpy() for ring in origin)  # shared: each row its slot
    far_q, far_spread, far_coverage = writable(rows, ("c_far_q", "c_far_spread", "c_far_coverage"))
    far_at = calibration.far_array(rows["c_q"].shape[1])
    normals = calibration.normals(float(interval_level))
    shifted = np.zeros_like(observed) if shifted is None else shifted
    target, defined = np.empty((b, d)), np.empty((b, d), dtype=bool)
    scored = readable(rows["x_seen"], rows["x_scale"], rows["x_level"])
    combined = writable(rows, hybrid.SCORED)
    ring, season, *advanced = writable(rows, experts.ADVANCED)  # the values ring, the seasonal tables: shared
    last = readable(rows["n_base"], rows["n_scale"])  # the base and scale the value's target is measured by
    phase, phase_of, gain = writable(rows, ("c_phase", "c_phase_of", "c_phase_fit"))
    lengths = readable(rows["x_season_length"])[0]
    nonneg = readable(rows["x_nonneg"])[0]  # (before the values: ``advance`` writes it after the scoring)
    shift_at = readable(rows["o_shift_at"])[0]  # (the outlier rule's, this value's change included)
    factor = np.empty((b, d))  # the scored values' phase factors (``hybrid_kernels.score``)
    growth = np.empty((b, d))  # the levels' growth a value (``level_widths``)
    over_rows(
        b,
        lambda r: tick_kernels.before_seasons(
            slot[r], step[r], y[r], observed[r], shifted[r], ring_origin, ref, float(interval_level), normals,
            _part(scored, r), _part(combined, r), (far_origin, far_q[r], far_spread[r], far_at, far_coverage[r]),
            (ring, season, *_part(advanced, r)),
            (*_part(last, r), target[r], defined[r]),
            (phase[r], phase_of[r], gain[r], lengths[r], ring, factor[r], growth[r]),
            (sent[r], nonneg[r], shift_at[r]),
        ),
    )  # fmt: skip
    return target, defined


BaseArrays = tuple[np.ndarray, np.ndarray, np.ndarray]  # ``hybrid.Base``'s path, partial, net as arrays


def base_and_input(
    rows: dict[str, torch.Tensor],
    y: np.ndarray,
    steps: torch.Tensor,
    target: np.ndarray,
    horizons: int,
    origin: tuple[torch.Tensor, ...] | None = None,
) -> tuple[torch.Tensor, np.ndarray, BaseArrays]:
    """After value ``y`` [B, d] and its ``target`` [B, d]: the experts' paths [B, H + F, E - 1, d]
    to ``horizons`` (H = Hc), then at the far horizons (``calibration.far_horizons``), their
    combination (``hybrid.Base``'s arrays), the next value's base and
    scale written into the rows (``n_base``, ``n_scale``) and the network's input [B, F * d]
    (``tick_kernels.after_seasons``)."""
    b, d = y.shape
    slot, step = readable(rows["slot"], steps)
    far_at = calibration.far_array(horizons)
    extended = horizons + len(far_at)
    paths = np.empty((b, extended, experts.N_EXPERTS, d))
    base = (np.empty((b, extended, d)), np.empty((b, extended, 1 + COMBINERS, d)))
    base += (np.empty((b, min(horizons, rows["c_loss"].shape[1]), 1 + COMBINERS, d)),)
    x = np.empty((b, hybrid.FEATURES * d))
    ring, season, *read = readable(*(rows[name] for name in experts.READ))
    weights = readable(*(rows[name] for name in combination.FIELDS), rows["x_positive"], rows["x_season_length"])
    shift_at, origins = hybrid.changes_of(rows, origin)  # the forecasts made since a change (``after_change``)
    weights += [*readable(rows["c_member_n"]), shift_at]
    following = writable(rows, ("n_base", "n_scale"))  # the next value's, written in place
    over_rows(
        b,
        lambda r: tick_kernels.after_seasons(
            slot[r], step[r], y[r], target[r], (ring, season, *_part(read, r)), _part(weights, r), far_at, paths[r],
            _part(base, r), _part(following, r), x[r], origins,
        ),
    )  # fmt: skip
    return torch.from_numpy(x), paths, base


def remember_and_serve(
    rows: dict[str, torch.Tensor],
    steps: torch.Tensor,
    pred: torch.Tensor,
    paths: np.ndarray,
    base: BaseArrays,
    origin: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """With the network's output ``pred`` [B, p] (its correction written into the rows'
    ``n_correction``): the half-widths at the tracked level, the served mean [B, Hc, d], this
    origin's forecasts written into ``origin`` (``c_origin``, ``c_origin_ref``, and the far
    horizons' ``c_far_origin``, at the rows' slots) and the one-step forecast as served [B, 4, d]
    (``tick_kernels.served``). Returns the served one-step forecast and the served mean."""
    correction, q = writable(rows, ("n_correction", "c_q"))
    far_q = readable(rows["c_far_q"])[0]
    b, hc, d = q.shape
    correction[...] = pred[:, :d].numpy()  # (to float64: exact)
    ratio = np.ones((b, 1, d))  # the tracked level's widths
    roots = calibration.horizon_roots(hc, hc)
    remembered = (paths, *base, correction, *readable(rows["x_scale"], rows["x_level"], rows["x_nonneg"]))
    slot, at, seen, missing = readable(rows["slot"], steps % hc, rows["x_seen"], rows["x_missing"])
    ring_origin, ref, far_origin = (ring.numpy() for ring in origin)
    far_at = calibration.far_array(hc)
    far_place = (steps % far_origin.shape[1]).numpy()  # the far ring's place of this origin
    half, mean, out = np.empty((b, hc, d)), np.empty((b, hc, d)), np.empty((b, 4, d))
    phased = readable(rows["c_phase"], rows["c_phase_of"], rows["c_phase_fit"], rows["x_season_length"], steps)
    # (c_phase [B, P, 3, d], c_phase_of [B, d], c_phase_fit [B, Hc, 5, d], x_season_length [B, d, 2], steps [B])
    over_rows(
        b,
        lambda r: tick_kernels.served(
            q[r], (far_q[r], far_at, far_origin, far_place[r]), ratio[r], roots, _part(remembered, r), slot[r],
            at[r], ring_origin, ref, seen[r], missing[r], half[r], mean[r], out[r], _part(phased, r),
        ),
    )  # fmt: skip
    return torch.from_numpy(out), torch.from_numpy(mean)


def _part(arrays: tuple[np.ndarray, ...] | list[np.ndarray], rows: slice) -> tuple[np.ndarray, ...]:
    """The row-wise ``arrays`` at ``rows`` (a part of ``over_rows``; the whole, unsliced, when
    it is every row: a tick of a few series)."""
    if rows.start is None and rows.stop is None:
        return tuple(arrays)
    return tuple(a[rows] for a in arrays)
