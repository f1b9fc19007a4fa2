"""The simple forecasters that stand beside the network: what a series gets from the start.

Twenty-three experts per series and feature (``NAMES``), over the rows ``[B, ...]`` of a tick
(their recurrences compiled in ``expert_kernels``):

- ``naive``: the last value; ``seasonal_naive``: the value one season before the target (of the longer of
  two seasons where it is a multiple of the shorter: a week, not a day, back; the shorter while the series is
  younger than the longer; ``expert_kernels.naive_season``);
- additive exponential smoothing in the series' units, in two seasonal families (gamma
  0.1 and 0.4), each with three levels (alpha 0.2, 0.03, 0.8) and a trend (alpha 0.2, beta
  0.1 in the gamma-0.1 family and 0.2 in the gamma-0.4 one, damping 0.98; at a level shift,
  its level starts again at the value and its trend is kept: a shift is not a trend), all plus up to two
  seasonal components (Taylor's double-seasonal
  Holt-Winters) measured against the family's trend level (standard Holt-Winters measures
  the season against the level that follows the trend: a level without a trend lags
  behind it, and the lag would leak into the seasonal indices), but against the family's
  slow level (alpha 0.03) without a trend where the longest season is past ``TREND_STABLE`` (41 in
  the gamma-0.1 family, 25 in the gamma-0.4 one; with two seasons ``TREND_STABLE_TWO``, 40 and 23):
  through the trend, a longer season's loop amplifies (``expert_kernels.TREND_STABLE``); a level
  shift starts that level at the value too. Two seasons one of which is a multiple of the other (in
  either order) the gamma-0.1 family holds as one table of the longer (``expert_kernels.ONE_TABLE``,
  ``smoothing_seasons``: its first table, the second unused), judged stable as one season;
- the same eight in log units, i.e. multiplicative (``log_*``): active only while every
  value of the series has been positive (the choice is made by the data, per series);
- ``ar``: a recursive-least-squares AR on the differenced (and seasonally differenced)
  series, z_t = (y_t - y_{t-1}) - (y_{t-m} - y_{t-m-1}), on the lags 1, 2, 3, m, m + 1
  of z: the SARIMA-like linear expert that follows short-term dynamics (past the horizons the
  combination tracks it adds no z: ``expert_kernels._ar_path``);
- ``ar_changes``: a recursive-least-squares AR of order 12 on the changes alone, with a
  drift (``ar_changes.py``): an ARIMA(12, 1, 0) for a quasi-cycle no fixed season fits;
- ``ar_levels``: the same AR on the values with a constant (``ar_levels.py``): an ARIMA(12, 0, 0)
  with a mean, which forecasts a stationary series back to its mean;
- ``ar_short`` (the last of ``NAMES``): the same with 2 lags, an ARIMA(2, 0, 0) with a mean, on the
  long one's mean (``ar_levels.py``): a short stationary series' AR, whose few coefficients a
  hundred values fit where the long one's 13 are noise;
- ``median``: an online median of the values, a step of ``MEDIAN_STEP`` (0.1) local scales
  toward each value, never past it: of a sparse or spiky series (intermittent demand, a
  counter of rare events) the forecast with the lowest MAE is the median, where every other
  member forecasts a mean (a series 0 three times in four: the median 0, the smoothing 0.6).
  It takes weight only without a season (a level that ignores the season cannot forecast it;
  allowed with one, it cost the server hosts' seasonal forecasts 2-4 % at h = 1..12).

A stretch out of the seasonal pattern that comes back within a season (an outage) is replaced
in the values ring by the pattern (``excursions``), so the members that read the ring a season
back do not forecast it again.

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

import math

import numpy as np
import torch

from tbptt_online import ar_changes, ar_levels, excursions, outliers
from tbptt_online import expert_kernels as kernels
from tbptt_online.compiled import over_rows, readable, writable
from tbptt_online.expert_kernels import (  # noqa: F401
    ALPHAS,
    AR_ORDER,
    AR_PRIOR,
    BETAS,
    GAMMAS,
    PHI,
    REFERENCE,
    UNIT_FLOOR,
    UNIT_RELATIVE,
)

SPACES = ("", "log_")
VARIANTS = [(space, gamma) for space in SPACES for gamma in GAMMAS]  # V = 4: [units | log] x gamma
NAMES = (
    "naive",
    "seasonal_naive",
    *[
        f"{space}{kind}_g{gamma}"
        for space, gamma in VARIANTS
        for kind in ("level_a0.2", "level_a0.03", "level_a0.8", "trend_a0.2")
    ],
    "ar",
    "ar_changes",
    "median",
    "ar_levels",
    "ar_short",
)
N_EXPERTS = len(NAMES)
N_VARIANTS = len(VARIANTS)
LOG_VARIANTS = slice(2, 4)
LOG_EXPERTS = slice(*kernels.LOG_EXPERTS)  # the experts of the log variants
NO_FAR = np.zeros(0, dtype=np.int64)  # ``paths`` of consecutive horizons only (a forecast's)
SHARED = ("x_raw", "x_season")  # in ``rows``: the store's whole tensors, indexed at rows["slot"]
# the recursive-least-squares fits (``rls``): each P [n, d, K, K], its coefficients and the prior P starts at (times I)
FITS = {
    "x_ar_p": ("x_ar", AR_PRIOR),
    "x_arc_p": ("x_arc", ar_changes.PRIOR),
    "x_arl_p": ("x_arl", ar_changes.PRIOR),
    "x_ars_p": ("x_ars", ar_changes.PRIOR),
}


def fields(n: int, d: int, ring: int, max_season: int) -> dict[str, torch.Tensor]:
    """Blank rows for ``n`` series: [n, ...] each (see the module docstring)."""
    f64 = torch.float64
    return {
        "x_raw": torch.zeros(n, ring, d, dtype=f64),  # the last R values (imputed where missing)
        "x_season_length": torch.zeros(n, d, 2, dtype=torch.int64),  # season lengths, 0 = none
        # "auto": the detections in a row that gave the first season (0: none, or a season released)
        "x_season_runs": torch.zeros(n, d, dtype=torch.int64),
        "x_scale": torch.zeros(n, d, dtype=f64),  # the local scale (0 = unknown)
        "x_level": torch.zeros(n, N_VARIANTS, 4, d, dtype=f64),  # per variant: the four levels
        "x_trend": torch.zeros(n, N_VARIANTS, d, dtype=f64),
        "x_season": torch.zeros(n, N_VARIANTS, 2, d, max_season, dtype=f64),  # per variant: season 1, 2
        "x_positive": torch.ones(n, d, dtype=torch.bool),  # every value so far > 0 (as taken): log experts on
        "x_nonneg": torch.ones(n, d, dtype=torch.bool),  # every value so far >= 0 (as taken): none served below 0
        "x_seen": torch.zeros(n, d, dtype=torch.bool),  # a value was observed (the smoothing has started)
        # the values missing in a row up to now (0: the last one was observed; 1 before any value): the next
        # value's forecast is one of missing + 1 steps, served with that horizon's width (tick_kernels.served)
        "x_missing": torch.ones(n, d, dtype=torch.int64),
        "x_ar": torch.zeros(n, d, AR_ORDER, dtype=f64),
        "x_ar_p": AR_PRIOR * torch.eye(AR_ORDER, dtype=f64).expand(n, d, AR_ORDER, AR_ORDER).clone(),
        **ar_changes.fields(n, d),
        **excursions.fields(n, d),
        "x_median": torch.zeros(n, d, dtype=f64),  # the median expert's estimate
        **ar_levels.fields(n, d),
    }


def local_scale(rows: dict[str, torch.Tensor]) -> torch.Tensor:
    """[B, d] the scale errors are measured in: the local scale, or ``UNIT_RELATIVE`` of the
    level while it is 0 (a flat series), never below ``UNIT_FLOOR`` (``expert_kernels.local_scale``)."""
    level = np.abs(rows["x_level"].numpy()[:, 0, REFERENCE])  # (numpy: a tick's few rows, no torch overhead)
    return torch.from_numpy(np.maximum(np.maximum(rows["x_scale"].numpy(), UNIT_RELATIVE * level), UNIT_FLOOR))


def subset(rows: dict[str, torch.Tensor], which: torch.Tensor) -> dict[str, torch.Tensor]:
    """The rows ``which`` (indices into the B rows) of ``rows``: the shared fields stay whole."""
    return {k: v if k in SHARED else v[which] for k, v in rows.items()}


def experts_only(rows: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The experts' fields of ``rows`` (``x_*``) and the slots: what a season detection reads and
    writes, without the combination's fields (``c_*``), the largest of a row."""
    return {k: v for k, v in rows.items() if k.startswith("x_") or k == "slot"}


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


def advance(
    rows: dict[str, torch.Tensor],
    y: torch.Tensor,
    mask: torch.Tensor,
    step: torch.Tensor,
    shifted: torch.Tensor | None = None,
) -> None:
    """Fold value ``y`` [B, d] (imputed where ``mask`` is False) of step ``step`` [B] into
    the rows (``expert_kernels.advance`` alone, for tests and tools: a tick runs it in
    ``tick_kernels.before_seasons``): the rows' own copies and the shared fields (values
    ring, seasonal tables, at the rows' slots) are written in place. ``shifted`` [B, d] bool:
    where the value is a level shift (``outliers``), at which the trend's level starts again
    (None: nowhere)."""
    shifted = torch.zeros_like(mask) if shifted is None else shifted
    rows = _with_shift_at(rows, tuple(mask.shape))
    head = readable(rows["slot"], step, y.to(torch.float64), mask, shifted)
    ring, season, *own = writable(rows, ADVANCED)  # the ring and the seasonal tables are shared (SHARED)
    over_rows(len(step), lambda r: kernels.advance(*(a[r] for a in head), ring, season, *(a[r] for a in own)))


ADVANCED = (  # the shared ones first
    "x_raw", "x_season", "x_season_length", "x_scale", "x_level", "x_trend", "x_positive", "x_nonneg", "x_seen",
    "x_missing", "x_ar", "x_ar_p", "x_arc", "x_arc_p", "x_sdiff", "x_excursion", "x_repaired",
    "x_median", "x_arl", "x_arl_p", "x_arl_mean", "x_arl_count", "x_arl_ref", "x_arl_unit", "x_arl_from",
    "x_ars", "x_ars_p", "x_ars_ref", "x_ars_unit", "o_shift_at",
)  # fmt: skip
READ = (
    "x_raw", "x_season", "x_season_length", "x_scale", "x_level", "x_trend", "x_positive", "x_ar", "x_arc", "x_median",
    "x_arl", "x_arl_ref", "x_arl_unit", "x_arl_from", "x_ars", "x_ars_ref", "x_ars_unit", "o_shift_at",
)  # fmt: skip
# (``o_shift_at``, the outlier rule's: the step of the series' last level shift, whose change the ARs on the
# changes read as the one before it, ``ar_changes.change``; rows without it, a test's, read none)

assert ADVANCED[:2] == READ[:2] == SHARED  # advance and paths pass these two whole, the others by rows


def _with_shift_at(rows: dict[str, torch.Tensor], shape: tuple[int, int]) -> dict[str, torch.Tensor]:
    """``rows``, with ``o_shift_at`` [B, d] of zeros (no level shift found) where they have none: rows of the
    experts alone (a test's). The tensors are the rows' own: what is written to them is written to the caller's."""
    return rows if "o_shift_at" in rows else {**rows, "o_shift_at": torch.zeros(shape, dtype=torch.int64)}


def paths(rows: dict[str, torch.Tensor], step: torch.Tensor, horizon: int, tracked: int | None = None) -> torch.Tensor:
    """Every expert's forecasts of steps t + 1 .. t + H: ``[B, H, E, d]`` float64 (E = 23,
    in the order of ``NAMES``). Reads the rows, changes nothing. ``tracked``: the horizons the
    combination tracks (default: all H), past which the seasonal AR adds no change
    (``expert_kernels._ar_path``)."""
    d = rows["x_raw"].shape[2]
    rows = _with_shift_at(rows, (len(step), d))
    out = torch.empty(len(step), horizon, N_EXPERTS, d, dtype=torch.float64)
    slot, steps, ring, season, *own = readable(rows["slot"], step, *(rows[name] for name in READ))
    written = out.numpy()
    tracked = horizon if tracked is None else tracked
    over_rows(
        len(step),
        lambda r: kernels.paths(written[r], tracked, NO_FAR, 1, slot[r], steps[r], ring, season, *(a[r] for a in own)),
    )
    return out


def reseason(
    rows: dict[str, torch.Tensor], step: torch.Tensor, lengths: torch.Tensor, counts: torch.Tensor | None = None
) -> None:
    """Set new season lengths ``lengths`` [B, d, 2] and re-estimate, from the values in the
    ring (per row and feature the last ``counts`` [B, d] of them; 0 or None: all it holds), the
    seasonal components (the mean deviation of each phase from its cycle's mean, less the
    trend's ramp inside the cycle; season 1 first, season 2 on what is left), the trend (the
    change of the first season's cycle means per step, as Holt-Winters is classically
    initialised; 0 without a season), the levels (the last cycle's deseasonalised mean, carried
    by the trend from the cycle's middle to now) and a fresh AR. A season with fewer than two
    cycles in a row's values starts at 0. A series' first ``outliers.YOUNG`` values, taken as they
    came, are read with a lone spike among them replaced by its neighbours' mean
    (``young_spikes_smoothed``)."""
    ring, slot = rows["x_raw"], rows["slot"]
    b, r, d = len(slot), ring.shape[1], ring.shape[2]
    max_season = rows["x_season"].shape[-1]
    n = int(step.clamp(max=r).min())  # the rows reseasoned together have the same count
    past = (step[:, None, None] - torch.arange(n - 1, -1, -1).view(1, -1, 1)).expand(-1, -1, d)
    values = young_spikes_smoothed(ring_at(ring, slot, past), step)  # [B, n, d]
    usable = torch.full((b, d), n) if counts is None else torch.where(counts > 0, counts.clamp(max=n), n)  # [B, d]
    season = torch.zeros(b, *rows["x_season"].shape[1:], dtype=rows["x_season"].dtype)
    trend = torch.zeros_like(rows["x_trend"])  # [B, V, d]
    logs = torch.where(values > 0, values, 1.0).log()
    # a pair one of which is a multiple of the other: the one-table variants hold the longer alone
    # (``expert_kernels.smoothing_seasons``), estimated again on those rows only
    multiple = multiple_pairs(lengths)  # [B, d]
    high = lengths.max(dim=2).values  # [B, d]
    one_table = torch.stack([torch.where(multiple, high, lengths[:, :, 0]), lengths[:, :, 1] * ~multiple], 2)
    again = multiple.any(dim=1).nonzero().squeeze(1)  # [R] the rows with such a pair
    for space in SPACES:
        u = logs if space else values
        estimates = [(slice(None), lengths, [v for v, (its, _) in enumerate(VARIANTS) if its == space])]
        if len(again):
            whole = [v for v, (its, _) in enumerate(VARIANTS) if its == space and kernels.ONE_TABLE[v]]
            estimates.append((again, one_table[again], whole))
        for at, held, variants in estimates:  # all the rows with their seasons, then the one-table ones again
            tables, slope, level = _estimate(u[at], held, usable[at], step[at], max_season)
            for variant in variants:  # (a space's variants holding the same seasons start from the same estimate)
                season[at, variant] = tables
                trend[at, variant] = slope
                rows["x_level"][at, variant] = level[:, None].expand(-1, 4, -1)
    rows["x_trend"] = trend
    rows["x_season"][slot] = season  # in place: the store's tensor (copied on write)
    rows["x_season_length"] = lengths.clone()
    rows["x_ar"] = torch.zeros_like(rows["x_ar"])
    rows["x_ar_p"] = AR_PRIOR * torch.eye(AR_ORDER, dtype=torch.float64).expand_as(rows["x_ar_p"]).clone()
    before = torch.arange(n).view(1, -1, 1) < (n - usable)[:, None, :]  # [B, n, d] the values not to read
    rows["x_sdiff"] = excursions.usual_seasonal_difference(values.masked_fill(before, math.nan), lengths[:, :, 0])
    rows["x_excursion"] = torch.zeros_like(rows["x_excursion"])
    rows["x_repaired"] = torch.zeros_like(rows["x_repaired"])


def multiple_pairs(lengths: torch.Tensor) -> torch.Tensor:
    """[..., d] bool: where the seasons ``lengths`` [..., d, 2] (0 = none) are a pair one of which is a multiple
    of the other, in either order (``expert_kernels._multiple``, per row)."""
    low, high = lengths.min(dim=-1).values, lengths.max(dim=-1).values
    return (low > 0) & (high % low.clamp(min=1) == 0)


def _estimate(
    u: torch.Tensor, held: torch.Tensor, usable: torch.Tensor, step: torch.Tensor, max_season: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``reseason``'s estimate from the values ``u`` [B, n, d] (in one space) of rows holding the seasons
    ``held`` [B, d, 2], of which the last ``usable`` [B, d] are read, the last at ``step`` [B]: the seasonal
    tables [B, 2, d, max_season], the trend [B, d] and the level [B, d] (``reseason``)."""
    b, n, d = u.shape
    tables = torch.zeros(b, 2, d, max_season, dtype=u.dtype)
    rest = u.clone()  # [B, n, d]
    slope = torch.zeros(b, d, dtype=u.dtype)  # [B, d] the space's trend
    for j in range(2):
        m_all = held[:, :, j]  # [B, d]
        cycles_all = usable // m_all.clamp(min=1)  # [B, d] whole cycles in each one's values
        pairs = torch.stack([m_all, cycles_all], dim=2).view(-1, 2)
        for m, cycles in torch.unique(pairs, dim=0).tolist():  # the (row, feature) pairs of one season
            if m <= 0 or m > max_season or cycles < 2:  # length and one count of cycles together
                continue
            bi, di = ((m_all == m) & (cycles_all == cycles)).nonzero(as_tuple=True)  # [G] each
            tail = rest[bi, n - cycles * m :, di].view(-1, cycles, m)  # [G, cycles, m] oldest cycle first
            means = tail.mean(dim=2, keepdim=True)  # [G, cycles, 1]
            if j == 0:  # the trend: the change of the cycles' means per step (a ramp inside a cycle
                # is the trend's, not the season's)
                slope[bi, di] = (means[:, -1, 0] - means[:, 0, 0]) / ((cycles - 1) * m)
            ramp = slope[bi, di][:, None, None] * (torch.arange(m, dtype=tail.dtype) - (m - 1) / 2)
            table = (tail - means - ramp).mean(dim=1)  # [G, m] by position
            first_step = step[bi] - cycles * m + 1  # [G] the step of tail[:, 0, 0]
            phases = (first_step[:, None] + torch.arange(m)) % m  # [G, m]
            tables[bi[:, None], j, di[:, None], phases] = table
            shift = (step[bi] - n + 1 - first_step)[:, None]  # [G, 1]: the position of the ring's first value
            rest[bi, :, di] -= torch.gather(table, 1, (torch.arange(n) + shift) % m)  # [G, n]
    # the level: the mean of each row's last first-season (or last value) of deseasonalised values
    span = held[:, :, 0].clamp(min=1, max=n)  # [B, d]
    last = (torch.arange(n).view(1, -1, 1) >= n - span[:, None, :]).to(rest.dtype)  # [B, n, d]
    level = (rest * last).sum(dim=1) / span.to(rest.dtype)  # [B, d]: the level half a cycle ago
    level = level + slope * (span - 1).to(rest.dtype) / 2  # carried to now
    return tables, slope, level


SPIKE_CHANGES = 20.0  # a young value this many robust sds of the changes off both neighbours is a lone spike


def young_spikes_smoothed(values: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """``values`` [B, n, d] (the last n of each row, whose last is at ``step`` [B]) with each lone
    spike among a series' first ``outliers.YOUNG`` values (taken as they came: nothing judged
    them) replaced by the mean of its two neighbours: a value whose changes from both are over
    ``SPIKE_CHANGES`` robust sds (1.4826 MAD) of the row's changes, on opposite sides, and which
    lies that far from their mean. ``values`` itself where there is none (as for every row past
    them). A daily series whose 6th value was 1e9 had its seasonal table estimated with it at
    value 120 (1.7e8 at one phase, 6e5 still at value 2,400) and served 470.8 where its values are
    about 10 (a review, session 40).

    >>> v = torch.tensor([[[1.0], [2.0], [1e9], [2.0], [1.0], [2.0], [1.0], [2.5]]])
    >>> young_spikes_smoothed(v, torch.tensor([8]))[0, :, 0].tolist()
    [1.0, 2.0, 2.0, 2.0, 1.0, 2.0, 1.0, 2.5]
    """
    n = values.shape[1]  # [B, n, d]
    first = step - n + 1  # [B] the step of values[:, 0]
    rows = (first < outliers.YOUNG).nonzero().squeeze(1)  # a young value with a neighbour before it
    if not len(rows) or n < 3:
        return values
    part = values[rows]  # [R, n, d]
    changes = part.diff(dim=1)  # [R, n - 1, d]
    centre = changes.median(dim=1, keepdim=True).values
    bar = SPIKE_CHANGES * 1.4826 * (changes - centre).abs().median(dim=1, keepdim=True).values  # [R, 1, d]
    left, right = changes[:, :-1], changes[:, 1:]  # [R, n - 2, d] into and out of the values 1 .. n - 2
    middle, mean = part[:, 1:-1], (part[:, :-2] + part[:, 2:]) / 2
    young = (first[rows, None] + torch.arange(1, n - 1) <= outliers.YOUNG)[:, :, None]  # [R, n - 2, 1]
    lone = young & (bar > 0) & (left.abs() > bar) & (right.abs() > bar) & (left * right < 0)
    lone &= (middle - mean).abs() > bar
    if not bool(lone.any()):
        return values
    out = values.clone()
    out[rows, 1:-1] = torch.where(lone, mean, middle)
    return out


def log_share_allowed(rows: dict[str, torch.Tensor], scored: torch.Tensor) -> torch.Tensor:
    """[B, E, d] which experts may take weight (``expert_kernels.allowed_experts``): the log
    experts only while the series has been positive, the seasonal naive only with a season,
    the median only without one, the AR experts once ``scored`` [B, d] (the values scored)
    covers their coefficients."""
    b, d = rows["x_positive"].shape
    active = torch.empty(b, N_EXPERTS, d, dtype=torch.bool)
    kernels.allowed(*readable(rows["x_positive"], rows["x_season_length"], scored), active.numpy())
    return active
