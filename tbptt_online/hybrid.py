"""The hybrid forecast (in the spirit of Smyl's ES-RNN): simple experts, a network that
corrects their combination, and one online combination of all of them, with intervals
calibrated at every horizon.

Per series and feature, each value ``y_t``:

1. **scores** the forecasts of ``y_t`` made at the ``Hc`` origins before it (each member's
   and the served combination's, kept in the ``c_origin`` ring), folding their absolute
   errors into the members' discounted losses per horizon (``combination.fold``) and the
   served forecast's error into the interval quantile of that horizon (``calibration``);
2. **advances** the experts (``experts.advance``) and, at the detection steps of
   ``season_length="auto"``, looks for seasons again (``season.detect_periods``);
3. forecasts: the experts' paths ``[Hc, 19]``, their combination (the **base**), and the
   network's member ``base + c * scale``, where ``c`` is the network's output (a
   correction in units of the local scale; 0 for an untrained model, whose last layer
   starts at zero); the served forecast is the combination of all 20 members.

The network is fed ``FEATURES`` values per feature (the base's last error, the last
change, the base's next step, the values one and two seasons back and one second
season back, the phase of the next step in the first season), all relative to the
last value and in units of the local scale, clamped to +-``CLAMP``; its target at step
``t`` is the base's error ``(y_t - base_t) / scale_{t-1}``, clamped alike.
"""

from __future__ import annotations

import math

import torch

from tbptt_online import calibration, combination, experts
from tbptt_online.intervals import z_value
from tbptt_online.season import detect_periods

FEATURES = 8
CLAMP = 10.0
N_MEMBERS = experts.N_EXPERTS + 1  # the experts and the network
MEMBERS = (*experts.NAMES, "network")
DETECT_AT = (24, 36, 48, 72, 96, 144, 192, 288, 384, 576, 768, 1024)  # then every DETECT_EVERY
DETECT_EVERY = 1024


def fields(n: int, d: int, ring: int, max_season: int, horizons: int) -> dict[str, torch.Tensor]:
    """Blank rows of the hybrid's per-series state for ``n`` series."""
    f64 = torch.float64
    return {
        **experts.fields(n, d, ring, max_season),
        "c_loss": torch.zeros(n, horizons, N_MEMBERS, d, dtype=f64),  # discounted losses per horizon
        "c_count": torch.zeros(n, horizons, d, dtype=f64),
        "c_q": torch.zeros(n, horizons, d, dtype=f64),  # the interval half-width per horizon (0: none yet)
        # [origin % Hc, h - 1, member (then the served, then the half-width served with it at the tracked
        # level; 0: unknown)]: float32 halves the hybrid's largest field; only errors are read from it (a
        # value past float32's range scores as an infinite, i.e. capped, error)
        "c_origin": torch.zeros(n, horizons, horizons, N_MEMBERS + 2, d, dtype=torch.float32),
        "c_member_abs": torch.zeros(n, N_MEMBERS, d, dtype=f64),  # one-step absolute errors, summed
        "c_member_n": torch.zeros(n, d, dtype=f64),
        "n_base": torch.full((n, d), math.nan, dtype=f64),  # the base's forecast of the next value
        "n_scale": torch.ones(n, d, dtype=f64),  # the local scale it was made with
        "n_correction": torch.zeros(n, d, dtype=f64),  # c: the network's correction of the next value
    }


ORIGIN_RING = ("c_origin",)  # read by the next values' scoring only, never by a forecast


def score(
    rows: dict[str, torch.Tensor],
    y: torch.Tensor,
    mask: torch.Tensor,
    step: torch.Tensor,
    level: float,
    made: torch.Tensor,
):
    """Fold value ``y`` [B, d] of step ``step`` [B] into the losses and interval quantiles.
    ``made`` [B, Hc, E + 2, d]: the forecasts of this value made at the origins before it
    and the half-widths served with them (``past_forecasts``)."""
    horizons = made.shape[1]
    h = torch.arange(1, horizons + 1)
    origin = step[:, None] - h[None, :]  # [B, Hc] the step each forecast of y_t was made after
    # scored: a forecast was made then, and something had been observed before it was made
    scored = (origin >= 1)[:, :, None] & mask[:, None, :] & rows["x_seen"][:, None, :]  # [B, Hc, d]
    scale = experts.local_scale(rows)
    served_half = made[:, :, -1].to(torch.float64)  # [B, Hc, d] the half-width served with each (0: unknown)
    error = (y[:, None, None] - made[:, :, :-1]).abs()  # [B, Hc, E + 1, d]
    # a forecast past float32's range (stored as inf) is an error at the cap, not a perfect forecast
    capped = combination.CAP * scale[:, None, None]
    error = torch.where(torch.isfinite(error), error, capped)
    error = torch.where(scored[:, :, None], error, 0.0)
    rows["c_loss"], rows["c_count"] = combination.fold(rows["c_loss"], rows["c_count"], error[:, :, :-1], scored, scale)
    rows["c_q"] = calibration.fold(rows["c_q"], error[:, :, -1], scored, level, 1e-6 * scale, served_half)
    one = scored[:, 0]  # [B, d]
    rows["c_member_abs"] = rows["c_member_abs"] + torch.where(one[:, None], error[:, 0, :-1], 0.0)
    rows["c_member_n"] = rows["c_member_n"] + one.to(torch.float64)


def detection_due(step: torch.Tensor) -> torch.Tensor:
    """[B] bool: the steps at which ``season_length="auto"`` looks for seasons again."""
    return torch.isin(step, torch.tensor(DETECT_AT)) | (step % DETECT_EVERY == 0)


def detect(rows: dict[str, torch.Tensor], step: torch.Tensor, max_season: int) -> None:
    """Look for seasons in the values in the ring (all rows have the same step) and
    re-estimate the components of the rows whose seasons changed. A found season may be a
    divisor of the true one (a monthly series' 6 for 12): the multiple of it whose seasonal
    naive forecast fits the changes best (by at least ``MULTIPLE_GAIN``) is taken instead."""
    ring = rows["x_raw"]
    b, r, d = ring.shape
    n = min(int(step[0]), r)
    at = step[:, None] - torch.arange(n - 1, -1, -1)[None, :]  # [B, n] the last n steps, oldest first
    values = experts.ring_at(ring, at[:, :, None].expand(-1, -1, d)).transpose(1, 2).reshape(b * d, n)
    found = detect_periods(values, max_periods=2, max_period=min(n // 3, max_season))  # [B * d, 2]
    found[:, 0] = _best_multiple(values, found[:, 0], min(n // 3, max_season))
    found = found.view(b, d, 2)
    changed = (found != rows["x_period"]).any(dim=2).any(dim=1)  # [B]
    if bool(changed.any()):
        set_seasons(rows, step, found, changed)


MULTIPLE_GAIN = 0.85  # a multiple of the found season is taken when its seasonal naive error is this much lower


def _best_multiple(values: torch.Tensor, period: torch.Tensor, longest: int) -> torch.Tensor:
    """[R]: per row of ``values`` [R, n], the season (a multiple k * period <= longest) whose
    seasonal-naive mean absolute error on the changes y_t - y_{t-1} (free of a trend) is
    lowest, preferring the shorter unless a longer one is better by the factor MULTIPLE_GAIN."""
    best = period.clone()
    for row in (period > 0).nonzero().squeeze(1).tolist():
        p = int(period[row])
        y = values[row]
        y = y[~torch.isnan(y)].diff()
        errors = {k * p: float((y[k * p :] - y[: -k * p]).abs().mean()) for k in range(1, longest // p + 1)}
        chosen = p
        for m in sorted(errors):
            if errors[m] < MULTIPLE_GAIN * errors[chosen]:
                chosen = m
        best[row] = chosen
    return best


def set_seasons(rows: dict[str, torch.Tensor], step: torch.Tensor, periods: torch.Tensor, which: torch.Tensor) -> None:
    """Give the rows ``which`` [B] the seasons ``periods`` [B, d, 2] (re-estimated from the ring)."""
    part = {k: v[which] for k, v in rows.items() if k.startswith("x_")}
    experts.reseason(part, step[which], periods[which])
    for key, value in part.items():
        rows[key] = rows[key].index_put((which.nonzero().squeeze(1),), value)


def allowed(rows: dict[str, torch.Tensor]) -> torch.Tensor:
    """[B, E, d]: which members may take weight (every network row may)."""
    simple = experts.log_share_allowed(rows)
    return torch.cat([simple, torch.ones_like(simple[:, :1])], dim=1)


def members(
    rows: dict[str, torch.Tensor],
    step: torch.Tensor,
    horizon: int,
    paths: torch.Tensor | None = None,
    base: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every member's forecasts ``[B, H, E, d]`` and their combination ``[B, H, d]`` (the
    served mean), from the rows as they are (the network's correction included); ``paths``
    and ``base``: the experts' forecasts and their combination when already made
    (``experts.paths`` and ``base_path`` of these rows)."""
    if paths is None:
        paths = experts.paths(rows, step, horizon)  # [B, H, E - 1, d]
    if base is None:
        base = base_path(rows, paths)
    network = base + (rows["n_correction"] * experts.local_scale(rows))[:, None]
    every = torch.cat([paths, network[:, :, None]], dim=2)
    return every, combination.combine(every, combination.weights(rows["c_loss"], rows["c_count"], allowed(rows)))


def base_path(rows: dict[str, torch.Tensor], paths: torch.Tensor) -> torch.Tensor:
    """[B, H, d]: the experts' combination (what the network corrects) from their ``paths``
    [B, H, E - 1, d]."""
    ok = experts.log_share_allowed(rows)
    return combination.combine(paths, combination.weights(rows["c_loss"][:, :, :-1], rows["c_count"], ok))


def network_target(
    rows: dict[str, torch.Tensor], y: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's target for this value [B, d] (the base's error in units of the scale it
    was made with) and where it is defined (observed, and a base existed)."""
    base, scale = rows["n_base"], rows["n_scale"]
    defined = mask & torch.isfinite(base) & rows["x_seen"]  # (rows before this value: seen before it)
    target = torch.where(defined, (y - base) / scale, 0.0).clamp(-CLAMP, CLAMP)
    return target, defined


def network_input(
    rows: dict[str, torch.Tensor], y: torch.Tensor, step: torch.Tensor, target: torch.Tensor, base: torch.Tensor
) -> torch.Tensor:
    """[B, FEATURES * d]: what the network is fed after value ``y`` of step ``step`` (rows
    already advanced), ``base`` [B, d] the base's forecast of the next value."""
    ring, period = rows["x_raw"], rows["x_period"]
    b, r, d = ring.shape
    scale = experts.local_scale(rows)

    def value_at(back: torch.Tensor) -> torch.Tensor:  # y at step t + 1 - back [B, d], 0 rel. when unknown
        at = step[:, None] + 1 - back
        known = (back > 0) & (at >= 1) & (at > step[:, None] - r)
        return torch.where(known, (experts.ring_at(ring, at[:, None])[:, 0] - y) / scale, 0.0)

    m1, m2 = period[:, :, 0], period[:, :, 1]
    previous = experts.ring_at(ring, (step - 1)[:, None, None].expand(-1, 1, d))[:, 0]  # y_{t-1}
    phase = 2 * math.pi * ((step[:, None] + 1) % m1.clamp(min=1)) / m1.clamp(min=1)
    seasonal = m1 > 0
    columns = [
        target,
        torch.where((step > 1)[:, None], (y - previous) / scale, 0.0),
        (base - y) / scale,
        value_at(m1),
        value_at(2 * m1),
        value_at(m2),
        torch.where(seasonal, phase.sin(), 0.0),
        torch.where(seasonal, phase.cos(), 0.0),
    ]
    return torch.stack(columns, dim=2).clamp(-CLAMP, CLAMP).reshape(b, FEATURES * d)  # [B, F * d], per feature


def past_forecasts(ring: torch.Tensor, rows: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """The forecasts of step ``step`` [B] made h = 1 .. Hc steps before, read from the ring of
    past forecasts ``ring`` [N, Hc, Hc, E + 2, d] at rows ``rows`` [B] (only these entries are
    read: a tick never copies whole rings): [B, Hc, E + 2, d] (members, served, its half-width)."""
    horizons = ring.shape[1]
    h = torch.arange(1, horizons + 1)
    origin = step[:, None] - h[None, :]  # [B, Hc]
    return ring[rows[:, None], origin % horizons, (h - 1)[None, :]]


def origin_entries(
    rows: dict[str, torch.Tensor], every: torch.Tensor, served: torch.Tensor, horizons: int, level: float
) -> torch.Tensor:
    """[B, Hc, E + 2, d] float32: this origin's forecasts (members, then served) and the
    half-widths served with them at the tracked ``level`` (from the rows' ``c_q``), for the ring."""
    half = calibration.half_widths(rows["c_q"], horizons, experts.local_scale(rows), torch.ones(()), z_value(level))
    return torch.cat([every[:, :horizons], served[:, :horizons, None], half[:, :, None]], dim=2).to(torch.float32)


PREFIXES = ("x_", "c_", "n_")  # the store's fields that belong to the hybrid


def served_rows(rows: dict[str, torch.Tensor], mean: torch.Tensor, level: float) -> torch.Tensor:
    """The one-step forecast as served, ``[B, 4, d]`` (the rows of ``series_store.SERVED``:
    mean, mean, lower, upper: the hybrid's mean is in units already)."""
    half = calibration.half_widths(rows["c_q"], 1, experts.local_scale(rows), torch.ones(()), z_value(level))[:, 0]
    return torch.stack([mean, mean, mean - half, mean + half], dim=1)
