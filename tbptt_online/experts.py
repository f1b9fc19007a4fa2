"""The simple forecasters that stand beside the network: what a series gets from the start.

Twenty experts per series and feature (``NAMES``), all vectorised over series (rows
``[B, ...]``):

- ``naive``: the last value; ``seasonal_naive``: the value one season before the target;
- additive exponential smoothing in the series' units, in two seasonal families (gamma
  0.1 and 0.4), each with three levels (alpha 0.2, 0.5, 0.8) and a trend (alpha 0.2, beta
  0.1, damping 0.98), all plus up to two seasonal components (Taylor's double-seasonal
  Holt-Winters) measured against the family's trend level (standard Holt-Winters measures
  the season against the level that follows the trend: a level without a trend lags
  behind it, and the lag would leak into the seasonal indices);
- the same eight in log units, i.e. multiplicative (``log_*``): active only while every
  value of the series has been positive (the choice is made by the data, per series);
- ``ar``: a recursive-least-squares AR on the differenced (and seasonally differenced)
  series, z_t = (y_t - y_{t-1}) - (y_{t-m} - y_{t-m-1}), on the lags 1, 2, 3, m, m + 1
  of z: the SARIMA-like linear expert that follows short-term dynamics;
- ``ar_changes``: a recursive-least-squares AR of order 12 on the changes alone, with a
  drift (``ar_changes.py``): an ARIMA(12, 1, 0) for a quasi-cycle no fixed season fits.

The state of a series lives in the ``fields`` of the series store. The functions take
``rows``: the B rows' copies of the small fields, gathered from the store, and the
``SHARED`` fields (the values ring and the seasonal tables, most of the bytes) as the
store's whole tensors ``[C, ...]``, read and written in place at ``rows["slot"]`` [B]
only where a value is touched (a tick never copies them). ``advance`` folds one value in;
``paths`` forecasts every expert ``H`` steps ahead without changing anything;
``reseason`` re-estimates the seasonal components when a season is found. The raw values
ring holds value ``s`` (1-based step) at position ``(s - 1) % R`` of a row.
"""

from __future__ import annotations

import torch

from tbptt_online import ar_changes

GAMMAS = (0.1, 0.4)  # the seasonal smoothing of the two families
ALPHAS = (0.2, 0.5, 0.8, 0.2)  # each family's three levels, then its trend's level
BETA, PHI = 0.1, 0.98  # the trend: smoothing and (slight) damping
SPACES = ("", "log_")
VARIANTS = [(space, gamma) for space in SPACES for gamma in GAMMAS]  # V = 4: [units | log] x gamma
NAMES = (
    "naive",
    "seasonal_naive",
    *[
        f"{space}{kind}_g{gamma}"
        for space, gamma in VARIANTS
        for kind in ("level_a0.2", "level_a0.5", "level_a0.8", "trend_a0.2")
    ],
    "ar",
    "ar_changes",
)
N_EXPERTS = len(NAMES)
REFERENCE = 3  # a family's seasonal indices are measured against its trend's level (no lag behind a trend)
SCALE_DECAY = 0.95  # the local scale: an exponential mean of |y_t - y_{t-1}|
AR_ORDER, AR_FORGET, AR_PRIOR = 5, 0.995, 10.0
AR_MAX_TRACE = 1e4  # P is shrunk when its trace passes this (no excitation: a flat series)
AR_CLAMP = 50.0  # normalised AR inputs and errors are clamped to +-this (a spike cannot blow it up)
N_VARIANTS = len(VARIANTS)
LOG_VARIANTS = slice(2, 4)
LOG_EXPERTS = slice(2 + 4 * 2, 2 + 4 * 4)  # the experts of the log variants
SHARED = ("x_raw", "x_season")  # in ``rows``: the store's whole tensors, indexed at rows["slot"]


def fields(n: int, d: int, ring: int, max_season: int) -> dict[str, torch.Tensor]:
    """Blank rows for ``n`` series: [n, ...] each (see the module docstring)."""
    f64 = torch.float64
    return {
        "x_raw": torch.zeros(n, ring, d, dtype=f64),  # the last R values (imputed where missing)
        "x_period": torch.zeros(n, d, 2, dtype=torch.int64),  # season lengths, 0 = none
        "x_scale": torch.zeros(n, d, dtype=f64),  # the local scale (0 = unknown)
        "x_level": torch.zeros(n, N_VARIANTS, 4, d, dtype=f64),  # per variant: the four levels
        "x_trend": torch.zeros(n, N_VARIANTS, d, dtype=f64),
        "x_season": torch.zeros(n, N_VARIANTS, 2, d, max_season, dtype=f64),  # per variant: season 1, 2
        "x_positive": torch.ones(n, d, dtype=torch.bool),  # every value so far > 0: log experts on
        "x_seen": torch.zeros(n, d, dtype=torch.bool),  # a value was observed (the smoothing has started)
        "x_last_observed": torch.zeros(n, d, dtype=torch.bool),  # the last value was observed
        "x_ar": torch.zeros(n, d, AR_ORDER, dtype=f64),
        "x_ar_p": AR_PRIOR * torch.eye(AR_ORDER, dtype=f64).expand(n, d, AR_ORDER, AR_ORDER).clone(),
        **ar_changes.fields(n, d),
    }


def local_scale(rows: dict[str, torch.Tensor]) -> torch.Tensor:
    """[B, d] the scale errors are measured in: the local scale, or 1e-9 relative to the
    level while it is 0 (a flat series), never 0."""
    level = rows["x_level"][:, 0, REFERENCE].abs()
    return torch.maximum(rows["x_scale"], 1e-9 * (level + 1.0))


def subset(rows: dict[str, torch.Tensor], which: torch.Tensor) -> dict[str, torch.Tensor]:
    """The rows ``which`` (indices into the B rows) of ``rows``: the shared fields stay whole."""
    return {k: v if k in SHARED else v[which] for k, v in rows.items()}


def own(rows: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The rows' own copies (what the caller writes back to the store): all but the shared
    fields and the slots."""
    return {k: v for k, v in rows.items() if k not in SHARED and k != "slot"}


def ring_at(ring: torch.Tensor, slot: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """Values at steps ``step`` [B, K, d] (1-based, >= 1) of the raw ring [C, R, d] (contiguous)
    at the rows ``slot`` [B]: [B, K, d]."""
    _, r, d = ring.shape
    flat = (slot[:, None, None] * r + (step - 1) % r) * d + torch.arange(d)  # [B, K, d] into ring.view(-1)
    return torch.take(ring, flat)


def _seasonal(
    season: torch.Tensor, slot: torch.Tensor, period: torch.Tensor, step: torch.Tensor, which: tuple[int, ...] = (0, 1)
) -> torch.Tensor:
    """The seasonal components at step ``step`` [B, K]: season [C, V, 2, d, M] at rows ``slot``
    [B], period [B, d, 2] -> [B, K, V, d], the sum of the seasons ``which`` (0 where absent)."""
    _, v, _, d, max_season = season.shape
    total = season.new_zeros(len(slot), step.shape[1], v, d)
    variant = torch.arange(v).view(1, 1, -1, 1)
    feature = torch.arange(d).view(1, 1, 1, -1)
    for j in which:
        m = period[:, :, j]  # [B, d]
        if not bool((m > 0).any()):
            continue
        phase = (step[:, :, None] % m.clamp(min=1)[:, None, :]).clamp(max=max_season - 1)  # [B, K, d]
        # flat index into season.view(-1) of [slot, variant, j, feature, phase]: [B, K, V, d]
        row = ((slot.view(-1, 1, 1, 1) * v + variant) * 2 + j) * d + feature
        value = torch.take(season, row * max_season + phase[:, :, None, :])
        total = total + torch.where((m > 0)[:, None, None, :], value, 0.0)
    return total


def advance(rows: dict[str, torch.Tensor], y: torch.Tensor, mask: torch.Tensor, step: torch.Tensor) -> None:
    """Fold value ``y`` [B, d] (imputed where ``mask`` is False) of step ``step`` [B] into
    the rows: the shared fields (values ring, seasonal tables) are written in place at the
    rows' slots, the rows' own copies replaced (the caller writes those back)."""
    first = mask & ~rows["x_seen"]  # [B, d] the first observed value: the smoothing starts from it
    both = mask & rows["x_last_observed"]  # a change of the scale is one between two observed values
    positive = rows["x_positive"] & ((y > 0) | ~mask)  # an imputed value decides nothing
    logs = torch.where(y > 0, y, 1.0).log()
    u = torch.stack([y, y, logs, logs], dim=1)  # [B, V, d] each variant's value: units or log units
    ring, slot = rows["x_raw"], rows["slot"]
    previous = ring_at(ring, slot, (step - 1).clamp(min=1)[:, None, None].expand(-1, 1, y.shape[1]))[:, 0]  # [B, d]
    change = torch.where(both, (y - previous).abs(), 0.0)
    scale = rows["x_scale"]
    decayed = SCALE_DECAY * scale + (1 - SCALE_DECAY) * change
    scale = torch.where(both, torch.where(scale > 0, decayed, change), scale)
    ring.index_put_((slot, (step - 1) % ring.shape[1]), y)  # in place: the store's tensor (copied on write)

    # smoothing: levels and trend from the deseasonalised value, then the seasons
    period, season = rows["x_period"], rows["x_season"]
    parts = [_seasonal(season, slot, period, step[:, None], (j,))[:, 0] for j in range(2)]  # [B, V, d] each
    s_now = parts[0] + parts[1]
    level, trend = rows["x_level"], rows["x_trend"]  # [B, V, 4, d], [B, V, d]
    alphas = torch.tensor(ALPHAS, dtype=y.dtype).view(1, 1, 4, 1)
    prior = torch.cat([level[:, :, :3], (level[:, :, 3] + PHI * trend)[:, :, None]], dim=2)
    new_level = alphas * (u - s_now)[:, :, None] + (1 - alphas) * prior
    new_trend = BETA * (new_level[:, :, 3] - level[:, :, 3]) + (1 - BETA) * PHI * trend
    new_level = torch.where(first[:, None, None], u[:, :, None].expand_as(new_level), new_level)
    new_trend = torch.where(first[:, None], 0.0, new_trend)
    reference = new_level[:, :, REFERENCE]  # [B, V, d]
    gammas = torch.tensor(GAMMAS * len(SPACES), dtype=y.dtype).view(1, -1, 1)  # [1, V, 1]
    rest = parts[1]
    b, v, d = len(step), N_VARIANTS, y.shape[1]
    b_idx = slot.view(-1, 1, 1).expand(b, v, d)  # [B, V, d] index tensors
    v_idx = torch.arange(v).view(1, -1, 1).expand(b, v, d)
    d_idx = torch.arange(d).view(1, 1, -1).expand(b, v, d)
    for j in range(2):
        m = period[:, :, j]  # [B, d]
        if not bool((m > 0).any()):
            continue
        value = gammas * (u - reference - rest) + (1 - gammas) * parts[j]  # [B, V, d]
        phase = (step[:, None] % m.clamp(min=1)).clamp(max=season.shape[-1] - 1)  # [B, d]
        at = (b_idx, v_idx, torch.full_like(b_idx, j), d_idx, phase[:, None, :].expand(b, v, -1))
        season.index_put_(at, torch.where((m > 0)[:, None, :], value, season[at]))  # in place, one phase
        rest = value  # the second season is measured against the updated first one
    rows.update(x_level=new_level, x_trend=new_trend, x_scale=scale, x_positive=positive)
    rows.update(x_seen=rows["x_seen"] | mask, x_last_observed=mask)
    _advance_ar(rows, mask, step)
    ar_changes.advance(rows, mask, step, ring_at, local_scale(rows))


def _z_at(
    ring: torch.Tensor, slot: torch.Tensor, period: torch.Tensor, at: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """z at steps ``at`` [B, K, d] from the raw ring at rows ``slot``, and whether it could be
    formed (every value it needs is at a step >= 1 and still in the ring)."""
    m = period[:, None, :, 0]  # [B, 1, d]
    seasonal = m > 0
    deepest = at - 1 - torch.where(seasonal, m, 0)
    ok = (deepest >= 1) & (deepest > at.amax(dim=1, keepdim=True) - ring.shape[1])
    safe = lambda s: ring_at(ring, slot, s.clamp(min=1))  # noqa: E731
    z = safe(at) - safe(at - 1)
    z = z - torch.where(seasonal, safe(at - m) - safe(at - m - 1), 0.0)
    return torch.where(ok, z, 0.0), ok


def _ar_lags(period: torch.Tensor) -> torch.Tensor:
    """[B, 1, K, d]: the lags 1, 2, 3, m, m + 1 of the AR's inputs (the last two 0: unused,
    where there is no season)."""
    m = period[:, :, 0]  # [B, d]
    fixed = torch.tensor([1, 2, 3], dtype=torch.int64).view(1, 3, 1).expand(len(m), 3, m.shape[1])
    return torch.cat([fixed, m[:, None], (m + 1)[:, None]], dim=1)  # [B, K, d]


def _advance_ar(rows: dict[str, torch.Tensor], mask: torch.Tensor, step: torch.Tensor) -> None:
    """One recursive-least-squares step on z_t (normalised by the local scale)."""
    ring, period = rows["x_raw"], rows["x_period"]
    lags = _ar_lags(period)  # [B, K, d]
    scale = local_scale(rows)[:, None, :]  # [B, 1, d]
    slot = rows["slot"]
    z_t, ok_t = _z_at(ring, slot, period, step[:, None, None].expand(-1, 1, mask.shape[1]))
    inputs, ok = _z_at(ring, slot, period, step[:, None, None] - lags)  # [B, K, d]
    used = (lags > 0) & (period[:, None, :, 0] > 0) | (torch.arange(AR_ORDER).view(1, -1, 1) < 3)
    phi = torch.where(used & ok, inputs / scale, 0.0).clamp(-AR_CLAMP, AR_CLAMP).transpose(1, 2)  # [B, d, K]
    target = (z_t[:, 0] / scale[:, 0]).clamp(-AR_CLAMP, AR_CLAMP)  # [B, d]
    theta, p = rows["x_ar"], rows["x_ar_p"]  # [B, d, K], [B, d, K, K]
    p_phi = (p * phi[:, :, None, :]).sum(-1)  # [B, d, K]
    gain = p_phi / (AR_FORGET + (phi * p_phi).sum(-1, keepdim=True))
    error = (target - (theta * phi).sum(-1)).clamp(-AR_CLAMP, AR_CLAMP)
    new_theta = theta + gain * error[..., None]
    new_p = (p - gain[..., :, None] * p_phi[..., None, :]) / AR_FORGET
    trace = new_p.diagonal(dim1=-2, dim2=-1).sum(-1)  # [B, d]
    new_p = new_p * (AR_MAX_TRACE / trace).clamp(max=1.0)[..., None, None]
    fine = (mask & ok_t[:, 0] & (ok.all(dim=1) | (period[:, :, 0] == 0)))[..., None]  # [B, d, 1]
    fine = fine & torch.isfinite(new_theta).all(-1, keepdim=True) & torch.isfinite(new_p).flatten(2).all(-1)[..., None]
    rows["x_ar"] = torch.where(fine, new_theta, theta)
    rows["x_ar_p"] = torch.where(fine[..., None], new_p, p)


def paths(rows: dict[str, torch.Tensor], step: torch.Tensor, horizon: int) -> torch.Tensor:
    """Every expert's forecasts of steps t + 1 .. t + H: ``[B, H, E, d]`` float64 (E = 20,
    in the order of ``NAMES``). Reads the rows, changes nothing."""
    ring, slot, period = rows["x_raw"], rows["slot"], rows["x_period"]
    b, d = len(slot), ring.shape[2]
    h = torch.arange(1, horizon + 1, dtype=torch.int64)  # [H]
    ahead = step[:, None] + h[None, :]  # [B, H] steps t + h
    last = ring_at(ring, slot, step[:, None, None].expand(-1, 1, d).clamp(min=1))  # [B, 1, d] y_t
    naive = last.expand(b, horizon, d)
    m = period[:, None, :, 0]  # [B, 1, d]
    back = ahead[:, :, None] - m * torch.div(h[None, :, None] + m - 1, m.clamp(min=1), rounding_mode="floor")
    usable = (m > 0) & (back >= 1) & (back > step[:, None, None] - ring.shape[1])
    seasonal_naive = torch.where(usable, ring_at(ring, slot, back.clamp(min=1)), naive)
    season = _seasonal(rows["x_season"], slot, period, ahead)  # [B, H, V, d]
    level, trend = rows["x_level"], rows["x_trend"]  # [B, V, 4, d], [B, V, d]
    damped = torch.cumsum(PHI ** h.to(torch.float64), 0).view(1, horizon, 1, 1)  # sum_{i<=h} phi^i
    levels = level[:, None, :, :3] + season[:, :, :, None]  # [B, H, V, 3, d]
    trended = (level[:, None, :, 3] + damped * trend[:, None] + season)[:, :, :, None]  # [B, H, V, 1, d]
    smooth = torch.cat([levels, trended], dim=3)  # [B, H, V, 4, d]
    units = smooth[:, :, :2].flatten(2, 3)  # [B, H, 8, d]
    logs = smooth[:, :, 2:].flatten(2, 3).clamp(max=700.0).exp()
    logs = torch.where(rows["x_positive"][:, None, None], logs, units)
    ar = _ar_path(rows, step, horizon)
    long_ar = ar_changes.path(rows, step, horizon, ring_at, local_scale(rows))
    return torch.cat(
        [naive[:, :, None], seasonal_naive[:, :, None], units, logs, ar[:, :, None], long_ar[:, :, None]], dim=2
    )  # [B, H, E, d]


def _ar_path(rows: dict[str, torch.Tensor], step: torch.Tensor, horizon: int) -> torch.Tensor:
    """The AR expert's forecasts [B, H, d]: z rolled forward with its own predictions."""
    ring, slot, period, theta = rows["x_raw"], rows["slot"], rows["x_period"], rows["x_ar"]
    b, d = len(slot), ring.shape[2]
    m = period[:, :, 0]  # [B, d]
    seasonal = m > 0
    depth = int(2 * m.max()) + 6 if b else 6  # values of the past the recursion can reach
    longest = int(m.max()) if b else 0
    # one read of the ring: the depth values and the m + 1 before them, which their z needs (oldest first)
    span = depth + longest + 1
    read = (step[:, None, None] - torch.arange(span - 1, -1, -1).view(1, -1, 1)).expand(-1, -1, d)  # [B, span, d]
    values = ring_at(ring, slot, read.clamp(min=1))  # [B, span, d], as _z_at reads them (clamped)
    past_steps = read[:, longest + 1 :]  # [B, depth, d]
    at = torch.arange(longest + 1, span).view(1, -1, 1)  # [1, depth, 1] their positions in ``values``
    z = values[:, longest + 1 :] - values[:, longest : span - 1]  # the change at each past step
    back = torch.gather(values, 1, (at - m[:, None]).expand(b, -1, d)) - torch.gather(
        values, 1, (at - m[:, None] - 1).expand(b, -1, d)
    )  # the change one season before
    z = z - torch.where(seasonal[:, None], back, 0.0)
    deepest = past_steps - 1 - torch.where(seasonal, m, 0)[:, None]
    formed = (deepest >= 1) & (deepest > step[:, None, None] - ring.shape[1])  # as in _z_at
    ys = torch.cat([values[:, longest + 1 :], ring.new_zeros(b, horizon, d)], dim=1)  # [B, depth + H, d] oldest 1st
    zs = torch.cat([torch.where(formed, z, 0.0), ring.new_zeros(b, horizon, d)], dim=1)  # [B, depth + H, d]
    scale = local_scale(rows)  # [B, d]
    lags = _ar_lags(period)  # [B, K, d]
    used = ((lags > 0) & seasonal[:, None]) | (torch.arange(AR_ORDER).view(1, -1, 1) < 3)
    season_back = torch.stack([m, m + 1], dim=1)  # [B, 2, d]
    for n in range(depth, depth + horizon):  # fill step t + (n - depth + 1) of the buffers
        phi = torch.where(used, torch.gather(zs, 1, (n - lags).clamp(0, n - 1)), 0.0) / scale[:, None]  # [B, K, d]
        z_next = (theta * phi.clamp(-AR_CLAMP, AR_CLAMP).transpose(1, 2)).sum(-1).clamp(-AR_CLAMP, AR_CLAMP) * scale
        back = torch.gather(ys, 1, (n - season_back).clamp(0, n - 1))  # [B, 2, d] y_{s-m}, y_{s-m-1}
        ys[:, n] = ys[:, n - 1] + torch.where(seasonal, back[:, 0] - back[:, 1], 0.0) + z_next
        zs[:, n] = z_next
    return ys[:, depth:]


def reseason(rows: dict[str, torch.Tensor], step: torch.Tensor, periods: torch.Tensor) -> None:
    """Set new season lengths ``periods`` [B, d, 2] and re-estimate, from the values in the
    ring, the seasonal components (the mean deviation of each phase from its cycle's mean,
    less the trend's ramp inside the cycle; season 1 first, season 2 on what is left), the
    trend (the change of the first season's cycle means per step, as Holt-Winters is
    classically initialised; 0 without a season), the levels (the last cycle's
    deseasonalised mean, carried by the trend from the cycle's middle to now) and a fresh AR."""
    ring, slot = rows["x_raw"], rows["slot"]
    b, r, d = len(slot), ring.shape[1], ring.shape[2]
    max_season = rows["x_season"].shape[-1]
    n = int(step.clamp(max=r).min())  # the rows reseasoned together have the same count
    past = (step[:, None, None] - torch.arange(n - 1, -1, -1).view(1, -1, 1)).expand(-1, -1, d)
    values = ring_at(ring, slot, past)  # [B, n, d]
    season = torch.zeros(b, *rows["x_season"].shape[1:], dtype=rows["x_season"].dtype)
    trend = torch.zeros_like(rows["x_trend"])  # [B, V, d]
    logs = torch.where(values > 0, values, 1.0).log()
    for variant, (space, _) in enumerate(VARIANTS):
        u = logs if space else values
        rest = u.clone()  # [B, n, d]
        for j in range(2):
            m_all = periods[:, :, j]  # [B, d]
            for m in torch.unique(m_all).tolist():  # the (row, feature) pairs of one season length together
                if m <= 0 or m > max_season or n < 2 * m:
                    continue
                bi, di = (m_all == m).nonzero(as_tuple=True)  # [G] each
                cycles = n // m
                tail = rest[bi, n - cycles * m :, di].view(-1, cycles, m)  # [G, cycles, m] oldest cycle first
                means = tail.mean(dim=2, keepdim=True)  # [G, cycles, 1]
                if j == 0:  # the trend: the change of the cycles' means per step (a ramp inside a cycle
                    # is the trend's, not the season's)
                    trend[bi, variant, di] = (means[:, -1, 0] - means[:, 0, 0]) / ((cycles - 1) * m)
                ramp = trend[bi, variant, di][:, None, None] * (torch.arange(m, dtype=tail.dtype) - (m - 1) / 2)
                table = (tail - means - ramp).mean(dim=1)  # [G, m] by position
                first_step = step[bi] - cycles * m + 1  # [G] the step of tail[:, 0, 0]
                phases = (first_step[:, None] + torch.arange(m)) % m  # [G, m]
                season[bi[:, None], variant, j, di[:, None], phases] = table
                shift = (step[bi] - n + 1 - first_step)[:, None]  # [G, 1]: the position of the ring's first value
                rest[bi, :, di] -= torch.gather(table, 1, (torch.arange(n) + shift) % m)  # [G, n]
        # the level: the mean of each row's last first-season (or last value) of deseasonalised values
        span = periods[:, :, 0].clamp(min=1, max=n)  # [B, d]
        last = (torch.arange(n).view(1, -1, 1) >= n - span[:, None, :]).to(rest.dtype)  # [B, n, d]
        level = (rest * last).sum(dim=1) / span.to(rest.dtype)  # [B, d]: the level half a cycle ago
        level = level + trend[:, variant] * (span - 1).to(rest.dtype) / 2  # carried to now
        rows["x_level"][:, variant] = level[:, None].expand(-1, 4, -1)
    rows["x_trend"] = trend
    rows["x_season"][slot] = season  # in place: the store's tensor (copied on write)
    rows["x_period"] = periods.clone()
    rows["x_ar"] = torch.zeros_like(rows["x_ar"])
    rows["x_ar_p"] = AR_PRIOR * torch.eye(AR_ORDER, dtype=torch.float64).expand_as(rows["x_ar_p"]).clone()


def log_share_allowed(rows: dict[str, torch.Tensor]) -> torch.Tensor:
    """[B, E, d] which experts may take weight: the log experts only while the series has been
    positive, the seasonal naive only with a season."""
    b, d = rows["x_positive"].shape
    active = torch.ones(b, N_EXPERTS, d, dtype=torch.bool)
    active[:, LOG_EXPERTS] = rows["x_positive"][:, None]
    active[:, 1] = rows["x_period"][:, :, 0] > 0
    return active
