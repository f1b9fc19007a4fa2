"""check_state: a ``Forecaster.state_dict()`` checked for meaning, not just for shape.

``Forecaster.load_state`` trusts its input: it checks the store's field names, dtypes and
shapes, and loads anything else as it comes (NaN weights, a negative step counter, a
free-slot list naming a live series, a name that is not a string...), which then breaks
the model later, far from its cause. A state from outside (an imported checkpoint) is
checked here first; each problem is a ``ValueError`` naming the field, the value and
what is allowed.

What is checked:

- ``format`` (an older one is migrated first, see state_format.py) and ``config``
  (``ForecasterConfig.from_dict``);
- ``network``: the names, dtypes and shapes of a network of that config; every weight finite;
- ``engine``: the optimizer's hyperparameters equal the config's (``param_groups``), its
  per-weight state has the weights' dtype and shape, is finite, second moments are >= 0,
  its step counts are whole numbers in [0, attempts]; ``attempts``, ``skipped`` and the
  ``recent`` records are counts in [0, 2^53] (a record not skipped has a finite loss);
- ``store``: ``names`` are distinct strings (or None for a free slot), ``free`` lists
  exactly the free slots, once each; every tensor has its field's dtype and shape
  with one row per slot, no infinity and NaN only where it means something (``NAN_ALLOWED``);
  counters and sums of errors are >= 0 (``NON_NEGATIVE``), ``steps`` at most 2^53, the widths'
  scales and multipliers within their rule's ranges (``SPREADS``),
  season lengths within ``max_season_length``, the fields in the series' units within a few times the
  values' bound, the experts' levels, the values ring and the one-step width's scale within 1e100
  times it (``VALUE_FIELDS``), the AR experts' least-squares P matrices
  (``x_ar_p``, ``x_arc_p``, ``x_arl_p``, ``x_ars_p``: ``COVARIANCES``) exactly symmetric and positive
  semi-definite up to rounding (``rls.positive_semidefinite``);
- ``engine.guard`` (guards.py): finite norms and losses, the losses within ``MAX_GUARD_LOSS``, counts,
  a learning-rate scale in [MIN_LR_SCALE, 1] that the optimizer's ``lr`` equals times the config's,
  a finite good copy of the weights' shapes;
- ``probe`` (probe.py): the fields of a probe of that config, finite, slots in range, the
  adaptive window one of the config's candidates;
- ``observations`` a count, ``sampler`` None or a CPU generator state.

>>> from tbptt_online import Forecaster, ForecasterConfig
>>> f = Forecaster(ForecasterConfig(hidden_size=4))
>>> _ = f.observe_many([("a", 1.0), ("b", 2.0), ("a", 1.5)])
>>> state = f.state_dict()
>>> check_state(state)
>>> state["store"]["free"] = [0]
>>> check_state(state)
Traceback (most recent call last):
...
ValueError: store.free[0]=0 is invalid: slot 0 holds the live series 'a'
"""

from __future__ import annotations

import math
from typing import Any

import torch

from tbptt_online import calibration, experts, scoring
from tbptt_online.config import ForecasterConfig
from tbptt_online.engine import TBPTTEngine
from tbptt_online.guards import COUNTERS, LOSS_WINDOW, MIN_LR_SCALE, NORM_MEMORY
from tbptt_online.hybrid import COVERAGE  # counts: the covered never more than the scored
from tbptt_online.hybrid_kernels import COVERAGE_COLUMNS, RECENT_COVERAGE
from tbptt_online.network import RecurrentNetwork
from tbptt_online.probe import TruncationProbe
from tbptt_online.rls import positive_semidefinite
from tbptt_online.scoring import STAT
from tbptt_online.series_store import DERIVED, MAX_NAME_LENGTH, SeriesStore, slots_in_use
from tbptt_online.state_format import FORMAT_VERSION, current_state
from tbptt_online.values import MAX_ABS_VALUE

MAX_COUNT = 2**53  # a counter past it no longer counts by one in a float64 (and no stream gets there)
# The guards square a block's deviations from its mean loss (guards.LossGuards._close_block): a loss past about
# 1.3e154 overflowed there (OverflowError at the block's close: an import of losses of 1e300, which this check took
# as finite, quarantined its service model a few updates later, a hostile test, session 60). The engine's losses
# per step in float32 stay below 3.4e38.
MAX_GUARD_LOSS = 1e150
STATE_KEYS = ("format", "config", "network", "engine", "store", "observations", "sampler", "probe")
# Store fields where NaN has a meaning: the field, or for ``stats`` the rows by name (scoring.STAT_FIELDS).
NAN_ALLOWED: dict[str, tuple[str, ...] | None] = {
    "n_base": None,  # NaN: no forecast yet
    "stats": ("last_value",),  # NaN: no value yet
    "c_far_origin": None,  # NaN: no far forecast remembered at that place
}
# c_origin is float32: a forecast past float32's range is kept as an infinite (capped) error.
# A far forecast is kept as served (float64): past float64's range it is inf, and scores at the cap.
INF_ALLOWED = ("c_origin", "c_far_origin")
NON_NEGATIVE = (
    "steps", "c_count", "c_q", "c_loss", "c_slow_loss", "c_slow_count", "c_meta_loss", "c_meta_count",
    "c_member_abs", "c_member_n", "x_scale", "o_count", "o_largest", "o_shifts",
    "x_sdiff", "x_excursion", "x_repaired", "x_arl_unit", "x_arl_count", "x_season_runs", "x_missing", "x_arl_from",
    "o_shift_at", "x_ars_unit", "c_far_q", "c_spread", "c_far_spread", "c_phase", "c_phase_of", "c_coverage",
    "c_far_coverage",
)  # fmt: skip
# a step of the series' own (0: none), never past its count; o_recent's signed by a side (+ above, - below)
STEP_FIELDS = ("x_excursion", "x_repaired", "x_arl_from", "o_recent", "o_shift_at")
# fields in the series' units: a median between its values, the long
# AR on the levels' mean and units (a mean of its values, and the local scale)
VALUE_FIELDS = {
    "x_median": MAX_ABS_VALUE,
    "o_recent_value": MAX_ABS_VALUE,  # values as they came
    "x_arl_mean": MAX_ABS_VALUE,
    "x_arl_ref": MAX_ABS_VALUE,
    "x_arl_unit": 2 * MAX_ABS_VALUE,
    "x_ars_ref": MAX_ABS_VALUE,  # the short AR's units: the same mean and scale
    "x_ars_unit": 2 * MAX_ABS_VALUE,
}
# Fields a smoothing of the values (or of their errors) writes, bounded a hundred orders of magnitude past the
# values' bound: only a crafted state holds more. A hostile test imported x_level = 1e300 and got forecasts of
# 1.09e294, and c_q = 1e300 an interval 1e300 wide for good. No tighter bound is safe: a missing value is imputed
# with the served mean, which may pass the values' bound (README Limits: means up to 54 times it), and the log
# members' forecasts are capped at exp(700) only; the library's own states on streams at the bound reach 1.2e38
# (c_q, a climb of 10 decades a value; tests/tbptt_online/test_state_check.py), and a state the library writes
# must load again (its export imported). Not the far widths (c_far_q): a climb's 48-step errors reach 1e40.
STATE_VALUE_BOUND = 1e100 * MAX_ABS_VALUE
# a mean or a smoothing of values within a bound can pass it by its rounding: 2.0000000000000004e36 in x_sdiff
# (values of +-1e36 with missing ones and a season of 7, a hostile test, session 54: the model's own export
# refused on import); a crafted value past it by more is refused as before
ROUNDING_SLACK = 1 + 1e-12
VALUE_FIELDS |= {
    "x_level": STATE_VALUE_BOUND,  # the experts' levels, trends and seasonal indices
    # the usual size of the ring's seasonal differences: the ring holds imputed and repaired values, which may pass
    # the values' bound (a climb held at 1e36: 1.1e38 in the ring, 5.3e37 here, session 62), so not 2 times it
    "x_sdiff": STATE_VALUE_BOUND,
    "x_trend": STATE_VALUE_BOUND,
    "x_season": STATE_VALUE_BOUND,
    "x_raw": STATE_VALUE_BOUND,  # the values ring (imputed where missing)
    "x_scale": STATE_VALUE_BOUND,  # the local scale
    "n_base": STATE_VALUE_BOUND,  # the next value's base
    "c_q": STATE_VALUE_BOUND,  # the one-step width's scale
}
COVARIANCES = tuple(experts.FITS)  # the AR experts' recursive-least-squares P [C, d, K, K]
SPREADS = ("c_spread", "c_far_spread")  # the widths' scales and multipliers [C, H, (S, N, m), d] (calibration.py)
MAX_MEAN_ERROR = 1e300  # a scale S / N past it serves no finite width (a far forecast may err by up to float64's range)
NON_NEGATIVE_STATS = ("norm_count", "norm_m2", "score_n", "abs_err", "sq_err", "naive_n", "naive_abs_err")
NON_NEGATIVE_STATS += ("naive_sq_err", "covered", "resid_sq", "interval_n", "restarts", "restarted_steps")
NON_NEGATIVE_STATS += ("recent_n", "recent_abs_err", "recent_naive_abs_err")
NON_NEGATIVE_STATS += ("flat_run", "flat_longest", "flat_repeats", "flat_pairs", "flat_held")
COUNT_STATS = ("restarts", "restarted_steps")  # whole numbers up to MAX_COUNT, the same in every feature's column
# whole numbers up to MAX_COUNT in each feature's column (flat_runs.py; a flat_held of 1e30 imported made the series'
# statistics answer 500, past JSON's integers: a review, session 57)
FEATURE_COUNT_STATS = ("flat_run", "flat_longest", "flat_repeats", "flat_pairs", "flat_held")
SECOND_MOMENTS = ("exp_avg_sq", "max_exp_avg_sq")
MOMENTS = {"Adam": ("exp_avg", *SECOND_MOMENTS), "AdamW": ("exp_avg", *SECOND_MOMENTS), "SGD": ("momentum_buffer",)}


def _bad(field: str, value: Any, allowed: str) -> ValueError:
    text = repr(value)
    return ValueError(f"{field}={text if len(text) <= 60 else text[:57] + '...'} is invalid: {allowed}")


def check_state(state: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the first field of ``state`` (a ``Forecaster.state_dict()``)
    whose value a forecaster could not hold; return None when every field makes sense."""
    if isinstance(state, dict) and "format" in state:
        state = current_state(state)  # an older format is checked as it loads: migrated (state_format.py)
    _keys(state, STATE_KEYS, "state")
    if state["format"] != FORMAT_VERSION or isinstance(state["format"], bool):
        raise _bad("format", state["format"], f"must be {FORMAT_VERSION}")
    try:
        config = ForecasterConfig.from_dict(state["config"])
    except (ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"config: {error}") from None
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    with torch.random.fork_rng(devices=[]), torch.device("meta"):  # shapes and dtypes only, nothing allocated
        network = RecurrentNetwork(config).to(dtype)
        engine = TBPTTEngine(network, config)
        blank = SeriesStore(config, dtype).tensors
    probe = TruncationProbe(config, dtype)  # small: real tensors, to compare shapes and dtypes
    weights = network.state_dict()
    params = [weights[name] for name, _ in network.named_parameters()]
    _check_network(state["network"], weights)
    observations = _count("observations", state["observations"])
    _check_engine(state["engine"], engine, params, observations)
    _check_store(state["store"], blank, config)
    _check_sampler(state["sampler"])
    _check_probe(state["probe"], probe, config, len(state["store"]["names"]))


def _keys(value: Any, expected: tuple[str, ...] | list[str], field: str) -> None:
    if not isinstance(value, dict):
        raise _bad(field, type(value).__name__, "must be a dict")
    missing = [k for k in expected if k not in value]
    extra = [k for k in value if k not in expected]
    if missing or extra:
        raise ValueError(f"{field} is invalid: missing keys {missing}, unexpected keys {extra[:5]}")


def _count(field: str, value: Any, high: int = MAX_COUNT) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise _bad(field, value, f"must be an integer in [0, {high}]")
    return value


def _tensor(field: str, value: Any, like: torch.Tensor, rows: int | None = None) -> torch.Tensor:
    """``value`` is a dense CPU tensor of ``like``'s dtype and shape (``rows`` rows, when given)."""
    if not isinstance(value, torch.Tensor):
        raise _bad(field, type(value).__name__, f"must be a {like.dtype} tensor")
    shape = tuple(like.shape) if rows is None else (rows, *like.shape[1:])
    if value.layout != torch.strided or value.device.type != "cpu":
        raise ValueError(f"{field} is invalid: a {value.layout} tensor on {value.device}, expected a dense CPU tensor")
    if value.dtype != like.dtype:
        raise ValueError(f"{field} is invalid: dtype {value.dtype}, expected {like.dtype}")
    if value.requires_grad:  # (torch.load keeps the flag) it would join the next update's graph, or stop numpy
        raise ValueError(f"{field} is invalid: requires the gradient; a state holds plain values (detach it)")
    if tuple(value.shape) != shape:
        raise ValueError(f"{field} is invalid: shape {tuple(value.shape)}, expected {shape}")
    return value


def _finite(field: str, value: torch.Tensor) -> None:
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        where = (~torch.isfinite(value)).nonzero()[0].tolist()
        raise ValueError(f"{field} is invalid: holds {value[tuple(where)].item()} at {where}; must be finite")


def _check_network(network: Any, expected: dict[str, torch.Tensor]) -> None:
    _keys(network, list(expected), "network")
    for name, like in expected.items():
        _finite(f"network[{name!r}]", _tensor(f"network[{name!r}]", network[name], like))


def _check_engine(engine: Any, reference: TBPTTEngine, params: list[torch.Tensor], observations: int) -> None:
    _keys(engine, ("optimizer", "attempts", "skipped", "recent", "guard"), "engine")
    attempts = _count("engine.attempts", engine["attempts"])
    if _count("engine.skipped", engine["skipped"]) > attempts:
        raise _bad("engine.skipped", engine["skipped"], f"must be at most engine.attempts={attempts}")
    lr_scale = _check_guard(engine["guard"], reference, params, attempts, observations)
    _check_optimizer(engine["optimizer"], reference.optimizer, params, attempts, reference.config.lr * lr_scale)
    recent = engine["recent"]
    limit = reference.recent.maxlen or 0
    if not isinstance(recent, list) or len(recent) > limit:
        raise _bad("engine.recent", type(recent).__name__, f"must be a list of at most {limit} records")
    for i, record in enumerate(recent):
        where = f"engine.recent[{i}]"
        if not isinstance(record, list | tuple) or len(record) != 6:
            raise _bad(where, record, "must be [index, loss, grad_norm, n_windows, skipped, window]")
        index, loss, grad_norm, n_windows, skipped, window = record
        _count(f"{where}[0]", index, attempts)
        _count(f"{where}[3]", n_windows)
        _count(f"{where}[5]", window, 100_000)
        if not isinstance(skipped, bool):
            raise _bad(f"{where}[4]", skipped, "must be true or false")
        for j, number in ((1, loss), (2, grad_norm)):
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise _bad(f"{where}[{j}]", number, "must be a number")
            if not skipped and not math.isfinite(number):
                raise _bad(f"{where}[{j}]", number, "must be finite for an update that was not skipped")


def _check_guard(
    guard: Any, reference: TBPTTEngine, params: list[torch.Tensor], attempts: int, observations: int
) -> float:
    """The guards' state; returns its learning-rate scale. Its counts are bounded by what can make them: an
    explosion one per update; a divergence one per update (the loss record) and one per tick (the served error,
    ``guards.served``); a forecast blow-up one per tick; a rollback follows a divergence, a blow-up, or a run of
    skipped updates (a tick has at least one observation). Every count bounded by the updates made, a
    hostile test's model at ``lr=10`` refused its own state: 925 blow-ups in 215 updates (session 51)."""
    _keys(
        guard,
        ("norms", "losses", "best", "rise", "counts", "lr_scale", "target_range", "quiet", "served_error", "good"),
        "engine.guard",
    )
    for key, limit in (("norms", NORM_MEMORY), ("losses", LOSS_WINDOW - 1), ("best", 2), ("served_error", 3)):
        values = guard[key]
        if not isinstance(values, list) or len(values) > (limit or 0):
            raise _bad(f"engine.guard.{key}", type(values).__name__, f"must be a list of at most {limit} numbers")
        for i, v in enumerate(values):
            number = not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)
            if not number or (key == "norms" and v < 0) or (key == "losses" and abs(v) > MAX_GUARD_LOSS):
                why = f"must be a finite number (a norm >= 0, a loss within +-{MAX_GUARD_LOSS:g})"
                raise _bad(f"engine.guard.{key}[{i}]", v, why)
    _keys(guard["counts"], COUNTERS, "engine.guard.counts")
    counts = guard["counts"]
    _count("engine.guard.counts.explosions", counts["explosions"], attempts)
    divergences = _count("engine.guard.counts.divergences", counts["divergences"], attempts + observations)
    blowups = _count("engine.guard.counts.blowups", counts["blowups"], observations)
    _count("engine.guard.counts.rollbacks", counts["rollbacks"], divergences + blowups + attempts)
    scale = guard["lr_scale"]
    if isinstance(scale, bool) or not isinstance(scale, float) or not MIN_LR_SCALE <= scale <= 1.0:
        raise _bad("engine.guard.lr_scale", scale, f"must be a float in [{MIN_LR_SCALE}, 1]")
    if isinstance(guard["rise"], bool) or not isinstance(guard["rise"], float) or math.isnan(guard["rise"]):
        raise _bad("engine.guard.rise", guard["rise"], "must be a number")
    target = guard["target_range"]
    if isinstance(target, bool) or not isinstance(target, int | float) or not math.isfinite(target) or target < 0:
        raise _bad("engine.guard.target_range", target, "must be a finite number >= 0")
    _count("engine.guard.quiet", guard["quiet"], attempts)
    good = guard["good"]
    _keys(good, ("params", "optimizer", "at"), "engine.guard.good")
    _count("engine.guard.good.at", good["at"], attempts)
    if not isinstance(good["params"], list) or len(good["params"]) != len(params):
        kind = type(good["params"]).__name__
        raise _bad("engine.guard.good.params", kind, f"must be a list of {len(params)} tensors")
    for i, (value, like) in enumerate(zip(good["params"], params, strict=True)):
        _finite(f"engine.guard.good.params[{i}]", _tensor(f"engine.guard.good.params[{i}]", value, like))
    _check_optimizer(
        {"state": good["optimizer"], "param_groups": reference.optimizer.state_dict()["param_groups"]},
        reference.optimizer,
        params,
        attempts,
        reference.config.lr,
        "engine.guard.good.optimizer",
    )
    return scale


def _check_probe(probe: Any, reference: TruncationProbe, config: ForecasterConfig, n_slots: int) -> None:
    _keys(probe, ("tensors", "probes", "windows", "window"), "probe")
    _count("probe.probes", probe["probes"])
    _count("probe.windows", probe["windows"])
    if probe["window"] not in config.window_candidates:
        raise _bad("probe.window", probe["window"], f"must be one of {config.window_candidates}")
    tensors = probe["tensors"]
    _keys(tensors, list(reference.tensors), "probe.tensors")
    for key, like in reference.tensors.items():
        value = _tensor(f"probe.tensors[{key!r}]", tensors[key], like)
        if key not in ("values", "measured"):  # values: NaN where nothing was observed; measured: NaN, none
            _finite(f"probe.tensors[{key!r}]", value)
        elif bool(torch.isinf(value).any()):
            raise ValueError(f"probe.tensors[{key!r}] is invalid: holds an infinity")
        if key == "slots" and bool(((value < -1) | (value >= max(n_slots, 1))).any()):
            raise ValueError(f"probe.tensors['slots'] is invalid: a slot outside [-1, {n_slots - 1}]")
        if key in ("count", "lags", "phi", "missed", "measured") and bool((value < 0).any()):
            raise ValueError(f"probe.tensors[{key!r}] is invalid: holds negative values; must be >= 0")
        if key == "lags" and bool((value > reference.lag_memory // 3).any()):  # the lag search's own range
            raise ValueError(f"probe.tensors['lags'] is invalid: holds lags above {reference.lag_memory // 3}")
        if key in ("count", "missed") and bool((value > MAX_COUNT).any()):  # (a count past it wraps around)
            raise ValueError(f"probe.tensors[{key!r}] is invalid: holds counts above {MAX_COUNT}")


def _check_optimizer(
    saved: Any,
    optimizer: torch.optim.Optimizer,
    params: list[torch.Tensor],
    attempts: int,
    lr: float,
    name: str = "engine.optimizer",
) -> None:
    _keys(saved, ("state", "param_groups"), name)
    expected_groups = optimizer.state_dict()["param_groups"]
    groups = saved["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(expected_groups):
        raise _bad(f"{name}.param_groups", groups, f"must be a list of {len(expected_groups)} group(s)")
    for g, (group, expected) in enumerate(zip(groups, expected_groups, strict=True)):
        _keys(group, list(expected), f"{name}.param_groups[{g}]")
        for key, value in expected.items():
            if key in ("fused", "foreach"):  # the implementation: the loading engine sets its own
                if value is not None and not isinstance(value, bool):
                    raise _bad(f"{name}.param_groups[{g}].{key}", value, "must be true, false or null")
            elif key == "lr":  # the config's, times the guards' back-off
                if isinstance(group[key], bool) or not isinstance(group[key], int | float) or group[key] != lr:
                    raise _bad(f"{name}.param_groups[{g}].lr", group[key], f"must be {lr!r} (config lr x lr_scale)")
            elif group[key] != value or type(group[key]) is not type(value):
                raise _bad(f"{name}.param_groups[{g}].{key}", group[key], f"must be {value!r} (the config's)")
    per_param = saved["state"]
    if not isinstance(per_param, dict):
        raise _bad(f"{name}.state", type(per_param).__name__, "must be a dict")
    moments = MOMENTS.get(type(optimizer).__name__)
    for index, entry in per_param.items():
        where = f"{name}.state[{index!r}]"
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(params):
            raise _bad(f"{name}.state key", index, f"must be a weight index in [0, {len(params) - 1}]")
        if not isinstance(entry, dict) or not all(isinstance(k, str) for k in entry):
            raise _bad(where, type(entry).__name__, "must be a dict of named tensors")
        for key, value in entry.items():
            if key == "step":
                _check_step(f"{where}.step", value, attempts)
            elif moments is not None and key not in moments:
                raise ValueError(f"{where} is invalid: unexpected key {key!r}; expected step and {list(moments)}")
            elif value is not None or key != "momentum_buffer":
                _finite(f"{where}.{key}", _tensor(f"{where}.{key}", value, params[index]))
                if key in SECOND_MOMENTS and bool((value < 0).any()):
                    raise ValueError(f"{where}.{key} is invalid: holds negative values; a second moment is >= 0")


def _check_step(field: str, value: Any, attempts: int) -> None:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or not (value.is_floating_point() or value.dtype == torch.int64):
            raise ValueError(
                f"{field} is invalid: a {value.dtype} tensor of shape {tuple(value.shape)}, expected a scalar"
            )
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value != int(value):
        raise _bad(field, value, "must be a whole number")
    if not 0 <= value <= attempts:
        raise _bad(field, value, f"must be in [0, engine.attempts={attempts}]")


def _check_store(store: Any, blank: dict[str, torch.Tensor], config: ForecasterConfig) -> None:
    _keys(store, ("names", "free", "tensors"), "store")
    names, free = store["names"], store["free"]
    if not isinstance(names, list):
        raise _bad("store.names", type(names).__name__, "must be a list")
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name is None:
            continue
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_LENGTH:
            raise _bad(f"store.names[{i}]", name, f"must be a string of 1 to {MAX_NAME_LENGTH} characters or null")
        if name in seen:
            raise _bad(f"store.names[{i}]", name, "names a series held by another slot too")
        seen.add(name)
    if not isinstance(free, list):
        raise _bad("store.free", type(free).__name__, "must be a list")
    for i, slot in enumerate(free):
        if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot < len(names):
            raise _bad(f"store.free[{i}]", slot, f"must be a slot in [0, {len(names) - 1}]")
        if names[slot] is not None:
            raise _bad(f"store.free[{i}]", slot, f"slot {slot} holds the live series {names[slot]!r}")
    if len(set(free)) != len(free):
        raise _bad("store.free", free, "lists a slot twice")
    unlisted = [i for i, name in enumerate(names) if name is None and i not in set(free)]
    if unlisted:
        raise _bad(f"store.names[{unlisted[0]}]", None, "a free slot must be listed in store.free")
    tensors = store["tensors"]
    _keys(tensors, [k for k in blank if k not in DERIVED], "store.tensors")
    rows = tensors["steps"].shape[0] if isinstance(tensors["steps"], torch.Tensor) and tensors["steps"].dim() else 0
    if slots_in_use(names) > rows:  # (past the rows: free slots, loaded as blank rows)
        raise ValueError(f"store.tensors['steps'] is invalid: {rows} rows for {len(names)} slots, a series past them")
    for key in tensors:
        _check_store_tensor(
            f"store.tensors[{key!r}]", key, _tensor(f"store.tensors[{key!r}]", tensors[key], blank[key], rows), config
        )
    for key in STEP_FIELDS:  # (an excursion begun at a future step was never repaired, a hostile test)
        if key in tensors:
            value = tensors[key]
            steps = tensors["steps"].view(-1, *[1] * (value.dim() - 1))  # each row's own count
            if bool(((value > steps) | (value < -steps)).any()):
                raise ValueError(f"store.tensors[{key!r}] is invalid: a step past the series' count of steps")
    # a run of missing values is at most the series' steps + 1 (1 before any value; a review: 2**53 loaded, and
    # the model's own checkpoint was refused a missing value later)
    if "x_missing" in tensors and bool((tensors["x_missing"] > tensors["steps"].view(-1, 1) + 1).any()):
        raise ValueError("store.tensors['x_missing'] is invalid: a run of missing values past the series' steps + 1")


def _check_spread(field: str, value: torch.Tensor) -> None:
    """A width's scale and multiplier [C, H, 3, d] (``calibration.spread_stepped``): a discounted count N
    within 1 / (1 - SPREAD_DISCOUNT), the sum S of errors at most ``MAX_MEAN_ERROR`` times N (0 where
    nothing is counted), the multiplier m within ``MULTIPLIER_BOUNDS`` (a second review: S = 1e308 with N = 0
    served infinite widths, and m = 1e300 widths of 7e301)."""
    total, count, m = value[:, :, 0], value[:, :, 1], value[:, :, 2]
    if bool((count > (1 + 1e-9) / (1 - calibration.SPREAD_DISCOUNT)).any()):
        bound = f"1 / (1 - {calibration.SPREAD_DISCOUNT:g})"
        raise ValueError(f"{field} is invalid: a count N past {bound}, a discounted count's")
    if bool((total > MAX_MEAN_ERROR * count).any()):  # (and so S = 0 where N = 0)
        raise ValueError(f"{field} is invalid: a sum of errors S past {MAX_MEAN_ERROR:g} times its count N")
    low, high = calibration.MULTIPLIER_BOUNDS
    if bool(((m < low) | (m > high)).any()):
        raise ValueError(f"{field} is invalid: a multiplier m outside [{low:g}, {high:g}]")


def _check_phase(field: str, value: torch.Tensor) -> None:
    """The phase statistics [C, P, 3, d] (``calibration.phase_learned``): a discounted count within 1 / (1 -
    PHASE_DISCOUNT), the sum of errors at most ``MAX_MEAN_ERROR`` times it (0 where nothing is counted)."""
    total, count = value[:, :, 0], value[:, :, 1]
    if bool((count > (1 + 1e-9) / (1 - calibration.PHASE_DISCOUNT)).any()):
        raise ValueError(
            f"{field} is invalid: a count past 1 / (1 - {calibration.PHASE_DISCOUNT:g}), a discounted count's"
        )
    if bool((total > MAX_MEAN_ERROR * count).any()):
        raise ValueError(f"{field} is invalid: a sum of errors past {MAX_MEAN_ERROR:g} times its count")


def _check_coverage(field: str, value: torch.Tensor) -> None:
    """``value`` [C, H, 4, d] (``hybrid_kernels._covered``): whole counts up to ``MAX_COUNT``, then their
    discounted sums up to 1 / (1 - ``RECENT_COVERAGE``) and up to the counts; the covered never more than the
    scored."""
    counts, recent = value[:, :, :2], value[:, :, 2:]
    if bool((counts > MAX_COUNT).any()) or bool((counts != counts.floor()).any()):
        raise ValueError(f"{field} is invalid: holds a count that is not a whole number up to {MAX_COUNT}")
    if bool((recent > 1 / (1 - RECENT_COVERAGE) * ROUNDING_SLACK).any()):
        raise ValueError(f"{field} is invalid: a discounted count past 1 / (1 - {RECENT_COVERAGE:g})")
    if bool((value[:, :, 0] > value[:, :, 1]).any()) or bool((value[:, :, 2] > value[:, :, 3] * ROUNDING_SLACK).any()):
        raise ValueError(f"{field} is invalid: more values covered than scored at some horizon")
    if bool((recent > counts * ROUNDING_SLACK).any()):  # (a discounted sum never passes the count it discounts)
        raise ValueError(f"{field} is invalid: a recent (discounted) sum past its whole-life count")


def _check_store_tensor(field: str, key: str, value: torch.Tensor, config: ForecasterConfig) -> None:
    if value.is_floating_point():
        bad = torch.isnan(value) if key in INF_ALLOWED else ~torch.isfinite(value)  # (isinf until session 20: inverted)
        if key in NAN_ALLOWED:
            rows = NAN_ALLOWED[key]
            bad = torch.zeros_like(value, dtype=torch.bool) if key in INF_ALLOWED else torch.isinf(value)
            if rows is not None:  # NaN only in the named rows of dim 1
                nan_ok = torch.zeros(value.shape[1], dtype=torch.bool)
                nan_ok[[STAT[name] for name in rows]] = True
                bad |= torch.isnan(value) & ~nan_ok.view(1, -1, *([1] * (value.dim() - 2)))
        if bool(bad.any()):
            where = bad.nonzero()[0].tolist()
            raise ValueError(f"{field} is invalid: holds {value[tuple(where)].item()} at {where}; not allowed there")
    if key in NON_NEGATIVE and bool((value < 0).any()):
        raise ValueError(f"{field} is invalid: holds negative values; must be >= 0")
    # (a count past 2**63 wraps around)
    if key in ("steps", "x_season_runs", "x_missing") and bool((value > MAX_COUNT).any()):
        raise ValueError(f"{field} is invalid: holds a count over {MAX_COUNT}")
    # (each bound on both sides: the abs of -2**63 is -2**63, a review's)
    if key == "o_recent" and bool(((value > MAX_COUNT) | (value < -MAX_COUNT)).any()):
        raise ValueError(f"{field} is invalid: holds a step over {MAX_COUNT}")
    if key == "o_run" and bool(((value > MAX_COUNT) | (value < -MAX_COUNT)).any()):
        raise ValueError(f"{field} is invalid: holds a run over {MAX_COUNT} values long")
    if key in COVERAGE and value.dim() == 4 and value.shape[2] == COVERAGE_COLUMNS:
        _check_coverage(field, value)
    if key in VALUE_FIELDS and bool((value.abs() > VALUE_FIELDS[key] * ROUNDING_SLACK).any()):
        # (a median of 1e300 was served as the forecast, with an interval of zero width, a hostile test)
        times = f"{VALUE_FIELDS[key] / MAX_ABS_VALUE:g} times " if VALUE_FIELDS[key] != MAX_ABS_VALUE else ""
        raise ValueError(
            f"{field} is invalid: holds a value past {VALUE_FIELDS[key]:g}, {times}the values' bound {MAX_ABS_VALUE:g}"
        )
    if key in COVARIANCES and bool((value.diagonal(dim1=-2, dim2=-1) < 0).any()):
        raise ValueError(f"{field} is invalid: a negative diagonal entry; a least-squares P is positive semi-definite")
    if key in COVARIANCES and not torch.equal(value, value.transpose(-2, -1)):
        raise ValueError(f"{field} is invalid: not symmetric; a least-squares P is (rls.py keeps it so exactly)")
    if key in COVARIANCES and not bool(positive_semidefinite(value.to(torch.float64)).all()):
        # (an indefinite P makes a fit's gains point anywhere: its coefficients noise, session 43)
        raise ValueError(f"{field} is invalid: a negative eigenvalue; a least-squares P is positive semi-definite")
    if key in SPREADS:
        _check_spread(field, value)
    if key == "c_phase":
        _check_phase(field, value)
    if key == "c_phase_of" and bool((value > config.max_season_length).any()):
        raise ValueError(f"{field} is invalid: a season length past {config.max_season_length}")
    if key == "x_season_length" and bool(((value < 0) | (value > config.max_season_length)).any()):
        raise ValueError(f"{field} is invalid: a season length outside [0, {config.max_season_length}]")
    if key == "stats":
        for name in NON_NEGATIVE_STATS:
            if bool((value[:, STAT[name]] < 0).any()):
                raise ValueError(f"{field} is invalid: row {name!r} holds negative values; must be >= 0")
        if bool((value[:, STAT["recent_n"]] > ROUNDING_SLACK / (1 - scoring.RECENT)).any()):
            bound = f"1 / (1 - {scoring.RECENT:g})"
            raise ValueError(f"{field} is invalid: row 'recent_n' past {bound}, a discounted count's")
        for name in FEATURE_COUNT_STATS:
            row = value[:, STAT[name]]  # [C, d]
            if bool((row != row.floor()).any() | (row > MAX_COUNT).any()):
                raise ValueError(f"{field} is invalid: row {name!r} must hold whole numbers up to {MAX_COUNT}")
        if bool((value[:, STAT["flat_repeats"]] > value[:, STAT["flat_pairs"]]).any()):
            raise ValueError(f"{field} is invalid: row 'flat_repeats' past 'flat_pairs', the values it counts among")
        for name in COUNT_STATS:  # (a restart counts the series, not a feature: every column the same)
            row = value[:, STAT[name]]  # [C, d]
            if bool((row != row.floor()).any() | (row > MAX_COUNT).any() | (row != row[:, :1]).any()):
                raise ValueError(
                    f"{field} is invalid: row {name!r} must hold whole numbers up to {MAX_COUNT}, "
                    "the same for every feature"
                )


def _check_sampler(sampler: Any) -> None:
    if sampler is None:
        return
    expected = torch.Generator().get_state()
    if not isinstance(sampler, torch.Tensor) or sampler.dtype != expected.dtype or sampler.shape != expected.shape:
        found = (
            f"a {sampler.dtype} tensor of shape {tuple(sampler.shape)}"
            if isinstance(sampler, torch.Tensor)
            else f"a {type(sampler).__name__}"
        )
        raise ValueError(
            f"sampler is invalid: {found}; must be null or a {expected.dtype} tensor of shape "
            f"{tuple(expected.shape)} (a generator state)"
        )
    try:
        torch.Generator().set_state(sampler)
    except RuntimeError as error:
        raise ValueError(f"sampler is invalid: {error}") from None
