"""The truncation advisor: is k2 long enough for this model's data, and what would more cost?

Two measurements meet (see truncation.py and probe.py):

- the **data's dependency length** D of each followed series: the longest lag at which its
  (pre-whitened) values are significantly correlated with themselves; with the hybrid also
  the seasons it found per series (context: the experts model those, and the network is
  fed the values one and two seasons back);
- the **gradient's reach**: the relative truncation bias of the window in force, from the
  probe's norms and their geometric decay (Aicher, Foti & Fox, 2019), the paper's bound
  that the verdict and the adaptive rule follow; beside it the bias **measured** at the
  last probe on its windows (``engine.measured_bias``: the weights' gradient through the
  probe's K_p steps against through the window's), which the bound bounds within the probe.

A window of K steps lets every loss it scores see D steps back when K >= D + m, m =
min(k1, K) the losses an update scores (the earliest of them sits m - 1 steps before the
window's end). The two are told apart: a window short of the data's need is **too short**
(``too_short``: a wall, what lies past it cannot be learned at all); a window that reaches
the data but whose bias is above ``truncation_bias`` is long enough, and **biased**
(``biased``: the truncated gradient leaves out that share of the full one, which slows and
skews learning but walls nothing off). The verdict says which, and names the window that
meets both (the data's need and a bias below ``truncation_bias``), its cost per update (the
replay's length ratio) and its memory per series (``memory.footprint``).

>>> report = advise_values(torch.zeros(2, 50, 1), ForecasterConfig(k1=8, k2=32))
>>> report.recommended_k2, report.verdict
(32, 'k2 = 32 is long enough for what was found: no dependency found in 2 series.')
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from tbptt_online.config import MAX_K2, ForecasterConfig
from tbptt_online.memory import footprint
from tbptt_online.season import detect_seasons
from tbptt_online.truncation import adaptive_window, fit_decay, longest_lag, relative_bias


@dataclass(frozen=True)
class TruncationReport:
    """What the advisor found for one model (or one CSV). JSON-ready."""

    k1: int
    k2: int | str
    window: int  # the window the updates use now (k2, or the adaptive choice)
    probe_length: int
    probes: int  # probes run so far
    reach: list[float]  # mean || dL_t / dh_{t-k} ||, k = 1 .. probe_length ([] before a probe)
    decay_rate: float | None  # beta of the geometric fit
    relative_bias: float | None  # of the window in force (None before a probe; inf: no decay)
    measured_bias: float | None  # the same, measured at the last probe on its windows (None: not measured)
    dependencies: dict[str, int]  # followed series -> longest season or significant lag (0: none)
    seasons: dict[int, int]  # first season length -> number of series (hybrid; 0: none found)
    recommended_k2: int  # the window to use: k2, or when adaptive one of k2_min + j k1 (k2_max must allow it)
    cost_ratio: float  # per update, recommended window over the one in force
    extra_bytes_per_series: int
    too_short: bool  # the window cannot reach a dependency found in the data (a wall)
    biased: bool  # the estimated relative bias of the window is not below truncation_bias
    verdict: str
    recent_windows: list[int] = field(default_factory=list)  # K_t of the last updates


def advise(forecaster) -> TruncationReport:
    """The advisor's report on a Forecaster (reads its probe and store; changes nothing)."""
    cfg, probe = forecaster.config, forecaster.probe
    phi = probe.tensors["phi"]
    fit = fit_decay(phi) if probe.probes else None
    bias = relative_bias(phi, fit, probe.window) if fit is not None else None
    measured = float(probe.tensors["measured"][0]) if probe.probes else None
    measured = measured if measured is not None and math.isfinite(measured) else None  # NaN: not measured
    gradient_window = None
    if fit is not None and bias is not None and not bias < cfg.truncation_bias:
        # (k1 above the rest: k1 itself is the one candidate; nothing past MAX_K2: no k2 one can set)
        top = min(max(4 * cfg.max_window, probe.length, cfg.k1), MAX_K2)
        first = _first_window(cfg)
        candidates = list(range(first, max(top, first) + 1, cfg.k1))
        gradient_window = adaptive_window(phi, fit, candidates, cfg.truncation_bias)
        if not relative_bias(phi, fit, gradient_window) < cfg.truncation_bias:
            gradient_window = None  # none passes (an unbounded bias, or a probe too short): 4x the window
            # was recommended, and its bias was as unbounded
    names = {slot: name for name, slot in forecaster.store.slots.items()}
    lags = {
        names[int(slot)]: int(lag)
        for slot, lag in zip(probe.tensors["slots"].tolist(), probe.tensors["lags"].tolist(), strict=True)
        if slot >= 0 and int(slot) in names
    }
    seasons: dict[int, int] = {}
    if cfg.hybrid and "x_season_length" in forecaster.store.tensors and forecaster.store.slots:
        live = torch.tensor(list(forecaster.store.slots.values()), dtype=torch.int64)
        seasons = dict(Counter(forecaster.store.tensors["x_season_length"][live, 0, 0].tolist()))
    return _report(
        cfg,
        probe.window,
        lags if probe.probes else {},
        seasons,
        probes=probe.probes,
        reach=phi.tolist() if probe.probes else [],
        decay=None if fit is None else fit.beta,
        bias=bias,
        measured=measured,
        gradient_window=gradient_window,
        recent=[r.window for r in list(forecaster.engine.recent)[-32:]],
    )


def advise_values(values: torch.Tensor, config: ForecasterConfig, names: list[str] | None = None) -> TruncationReport:
    """The data side of the advice, offline: ``values`` [B, n, d] (NaN = missing), one row per
    series, against ``config``'s k1 and k2. No network: nothing about the gradient's reach.
    Series of unequal lengths held apart take less memory: :func:`advise_series`."""
    if values.dim() != 3:
        raise ValueError(f"values must be [series, steps, features], got shape {tuple(values.shape)}")
    b, n, _ = values.shape
    present = torch.isfinite(values).any(dim=2)  # [B, n]
    first = present.int().argmax(dim=1) if n else torch.zeros(b, dtype=torch.int64)  # (argmax of no steps raised)
    lengths = torch.where(present.any(dim=1), n - first, 0)  # [B]
    groups = ((length, rows, values[rows, n - length :]) for length, rows in _length_groups(lengths))
    return _advise_groups(groups, b, config, names)


def advise_series(
    series: Sequence[torch.Tensor], config: ForecasterConfig, names: list[str] | None = None
) -> TruncationReport:
    """:func:`advise_values` of series held apart: ``series`` one [n_i, d] tensor each (NaN = missing),
    of any lengths; the same report as of them NaN-padded at the start into one [B, n, d], without
    that tensor. ``tbptt-online advise`` built it: 10,000 one-value series beside one of 20,000 values
    (a CSV of 309 KB) took 1.6 GB of padding and peaked at 4.0 GB (a hostile test, session 51); each
    group is padded here to its own longest, at most twice the values it holds.

    >>> report = advise_series([torch.zeros(50, 1), torch.zeros(3, 1)], ForecasterConfig(k1=8, k2=32), ["a", "b"])
    >>> report.dependencies
    {'a': 0, 'b': 0}
    """
    shapes = {tuple(s.shape[1:]) for s in series}
    if any(s.dim() != 2 for s in series) or len(shapes) > 1:
        shown = sorted({tuple(s.shape) for s in series})[:3]
        raise ValueError(f"each series must be [steps, features], with as many features each; got shapes {shown}")
    lengths = torch.tensor([_length(s) for s in series], dtype=torch.int64)  # [B]

    def groups() -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:  # one group's padding alive at a time
        for length, rows in _length_groups(lengths):
            part = torch.full((len(rows), length, *series[0].shape[1:]), math.nan, dtype=series[0].dtype)
            for j, row in enumerate(rows.tolist()):
                own = int(lengths[row])
                if own:  # (an empty slice [-0:] would be the whole series)
                    part[j, length - own :] = series[row][-own:]
            yield length, rows, part

    return _advise_groups(groups(), len(series), config, names)


def _length(values: torch.Tensor) -> int:
    """The steps of one series [n, d] from its first value on (0: none)."""
    present = torch.isfinite(values).any(dim=1).nonzero()
    return int(values.shape[0] - present[0, 0]) if len(present) else 0


def _advise_groups(
    groups: Iterable[tuple[int, torch.Tensor, torch.Tensor]], b: int, config: ForecasterConfig, names: list[str] | None
) -> TruncationReport:
    """The report of ``b`` series searched in ``groups``: (length, the rows [b'], their values
    [b', length, d], each row NaN before its first value)."""
    names = names or [f"series {i}" for i in range(b)]
    # Each series near its own length (from its first value on; the rows are NaN before it): the
    # series in groups whose lengths are within a factor 2, each group padded to its longest.
    # Padded to the longest series, 500 one-value series beside one of 20,000 values took 381 s
    # and 1.6 GB (every row searched 6,666 lags); one group per length was 8x slower than one
    # pass where the lengths all differ (300 series of 1,701 to 2,000 values: 20.8 s, 2.4 s).
    lags, found = torch.zeros(b, dtype=torch.int64), torch.zeros(b, dtype=torch.int64)
    for length, rows, part in groups:
        lags[rows] = longest_lag(part, max_lag=max(1, length // 3))
        longest_season = min(length // 3, config.max_season_length)
        if longest_season >= 2:  # (under 6 values no season of 2 or more can be tested)
            found[rows] = detect_seasons(part[:, :, 0].double(), max_seasons=1, max_length=longest_season)[:, 0]
    seasons = dict(Counter(found.tolist()))
    return _report(config, config.min_window, dict(zip(names, lags.tolist(), strict=True)), seasons)


def _length_groups(lengths: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """The rows of ``lengths`` [B] in groups whose lengths lie within a factor 2 of the group's
    longest: (that length, the rows [b']) per group, longest first; at most log2 of the longest
    length + 2 groups.

    >>> [(n, rows.tolist()) for n, rows in _length_groups(torch.tensor([400, 1, 30, 250, 20, 1]))]
    [(400, [0, 3]), (30, [2, 4]), (1, [1, 5])]
    """
    groups, remaining = [], lengths.clone()
    while bool((remaining >= 0).any()):
        longest = int(remaining.max())
        rows = (remaining >= (longest + 1) // 2).nonzero()[:, 0]
        groups.append((longest, rows))
        remaining[rows] = -1
    return groups


def _report(
    cfg: ForecasterConfig,
    window: int,
    lags: dict[str, int],
    seasons: dict[int, int],
    probes: int = 0,
    reach: list[float] | None = None,
    decay: float | None = None,
    bias: float | None = None,
    measured: float | None = None,
    gradient_window: int | None = None,
    recent: list[int] | None = None,
) -> TruncationReport:
    k1 = cfg.k1
    found = [lag for lag in lags.values() if lag > 0]
    longest = max(found, default=0)
    # A window K scores m = min(k1, K) losses, the earliest K - m steps after its start: it reaches
    # D steps back for every one when D <= K - m. A window that reaches any D > 0 is longer than k1
    # (K <= k1 leaves K - m = 0), so the need is D + k1; the windows one can set are multiples of k1
    # (k2_min + j k1 when adaptive). (D + min(k1, window) recommended k2 = 10 to a k2 = 5 with k1 = 10
    # and a lag of 3, itself too short: 10 - 10 = 0 < 3.)
    sees = window - min(k1, window)  # how far back the window's earliest scored loss sees
    short_of_data = [lag for lag in found if lag > sees]
    data_window = _settable(cfg, longest + k1) if short_of_data else 0
    biased = bias is not None and not bias < cfg.truncation_bias  # (NaN: biased, shown as unbounded)
    # (a window that reaches the data but is no multiple of k1 is not raised to one; a gradient window
    # that still fails the bound is no recommendation: ``gradient_window`` is None then)
    recommended = max(window, data_window, gradient_window or 0)
    name = "k2" if not cfg.adaptive else "the adaptive window"
    if short_of_data:
        worst = max(short_of_data)
        limit = (
            f"patterns longer than {sees} steps cannot be learned"
            if sees
            else f"no dependency can be learned (k1 = {k1} scores every step of the window)"
        )
        data = (
            f"{name} = {window} is too short for the dependency of {worst} steps found in {len(short_of_data)} of "
            f"{len(lags)} series: with k1 = {k1} a window needs {worst + k1} steps for every scored loss to reach "
            f"it, so {limit}"
        )
        if data_window < longest + k1:
            data += f"; no window up to {MAX_K2} reaches it with k1 = {k1}: a smaller k1 would"
    elif found:
        data = (
            f"{name} = {window} is long enough for what was found: the longest dependency found is {longest} steps "
            f"({len(found)} of {len(lags)} series)"
        )
    elif lags:
        data = f"{name} = {window} is long enough for what was found: no dependency found in {len(lags)} series"
    else:  # (a new model's read "no dependency found in 0 series", a new user's)
        data = f"{name} = {window}: nothing to judge yet, no series followed"
    if biased:
        why = (
            f"the probe's {cfg.resolved_probe_length} steps are shorter than the window: it bounds nothing past them"
            if cfg.resolved_probe_length < window
            else "the probe's norms bound nothing: they do not decay, or give the gradient no positive size"
        )
        shown = f"unbounded ({why})" if not math.isfinite(bias) else _share(bias)
        gradient = (
            f"the estimated relative truncation bias of {name} = {window} is {shown}{_measured(measured)}, "
            f"above truncation_bias = {cfg.truncation_bias}"
        )
        if not short_of_data:
            gradient += (
                ": the truncated gradient leaves out that share of the full one (learning is slowed, not walled)"
            )
        if gradient_window is None:
            gradient += "; no window the probe can bound brings it below that"
        data += "; " + gradient
    elif bias is not None and not short_of_data:
        shown = f"{_share(bias)}{_measured(measured)}"
        data += f", the estimated relative truncation bias {shown} (< {cfg.truncation_bias})"
    extra = 0
    ratio = recommended / window
    if recommended > window and cfg.adaptive and recommended <= cfg.k2_max:
        # the adaptive rule gets there itself (the bias at its next probes, a lag once two probes found it)
        verdict = data + (
            f". The adaptive rule can move the window to {recommended} within k2_max = {cfg.k2_max} "
            f"({ratio:.1f}x per update)."
        )
    elif recommended > window:
        field_name, changed = ("k2_max", {"k2_max": recommended}) if cfg.adaptive else ("k2", {"k2": recommended})
        history = None if cfg.history_size is None else max(cfg.history_size, recommended)  # (kept: it was
        # dropped, and a longer window read '70.4 KB less per series' beside a history of 1,000)
        longer = dataclasses.replace(cfg, **changed, history_size=history)
        extra = footprint(longer).per_series_bytes - footprint(cfg).per_series_bytes
        verdict = data + (
            f". {field_name} = {recommended} would cost {ratio:.1f}x per update"
            f"{' at its ceiling' if cfg.adaptive else ''} and {extra / 1000:.1f} KB more per series."
        )
    else:
        verdict = data + "."
    return TruncationReport(
        k1=k1,
        k2=cfg.k2,
        window=window,
        probe_length=cfg.resolved_probe_length,
        probes=probes,
        reach=reach or [],
        decay_rate=decay,
        relative_bias=bias,
        measured_bias=measured,
        dependencies=lags,
        seasons={int(k): int(v) for k, v in seasons.items()},
        recommended_k2=recommended,
        cost_ratio=ratio,
        extra_bytes_per_series=extra,
        too_short=bool(short_of_data),
        biased=biased,
        verdict=verdict,
        recent_windows=recent or [],
    )


def _first_window(cfg: ForecasterConfig) -> int:
    """The shortest of the windows one can set, which go on in steps of k1: k1 (fixed k2), k2_min (adaptive)."""
    return cfg.k2_min if cfg.adaptive else cfg.k1


def _settable(cfg: ForecasterConfig, need: int) -> int:
    """The shortest window one can set that is at least ``need`` (``_first_window`` + j k1), never
    past ``MAX_K2`` (the longest settable then, which may fall short)."""
    first = _first_window(cfg)
    steps = max(0, math.ceil((need - first) / cfg.k1))
    return first + cfg.k1 * min(steps, (MAX_K2 - first) // cfg.k1)


def _measured(measured: float | None) -> str:
    return f" (measured on the probe's windows: {_share(measured)})" if measured is not None else ""


def _share(bias: float) -> str:
    """A relative bias to three significant digits (``.3f`` wrote 0.000 for 2.85e-6, a new user's report).

    >>> _share(2.85e-06), _share(0.0412), _share(1.5), _share(0.0)
    ('2.85e-06', '0.0412', '1.5', '0')
    """
    return f"{bias:.3g}"
