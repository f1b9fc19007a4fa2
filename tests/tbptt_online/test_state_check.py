"""check_state: every state a forecaster writes passes; each field that means nothing is named."""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from typing import Any

import pytest
import torch

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_online.scoring import STAT
from tbptt_online.state_check import MAX_COUNT, check_state

CONFIGS = [
    {},
    {"cell": "lstm", "n_features": 2, "mode": "stateless", "k1": 2},
    {"cell": "rnn", "hybrid": False, "optimizer": "sgd", "k1": 1},
    {"optimizer": "adamw", "k1": 1, "dtype": "float64", "loss": "gaussian"},
]


def _trained(overrides: dict[str, Any], n: int = 120) -> Forecaster:
    forecaster = Forecaster(ForecasterConfig(hidden_size=4, **overrides))
    rng = random.Random(0)
    d = forecaster.config.n_features

    def value(t: int) -> float | None:
        return None if rng.random() < 0.1 else 5 * math.sin(t / 4) + rng.gauss(0, 1)

    for t in range(n):
        forecaster.observe_many([(s, value(t) if d == 1 else [value(t), value(t)]) for s in "abc"])
    forecaster.observe("fresh", None if d == 1 else [None, None])  # a series with no value yet
    forecaster.forget("b")  # names: a, None (free), c, fresh
    return forecaster


@pytest.fixture(scope="module")
def state() -> dict[str, Any]:
    return _trained({}).state_dict()


@pytest.mark.parametrize("overrides", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_every_state_a_forecaster_writes_passes(overrides) -> None:
    state = _trained(overrides).state_dict()
    check_state(state)
    Forecaster.from_state_dict(state)  # and it loads


def test_a_new_forecasters_state_passes() -> None:
    check_state(Forecaster(ForecasterConfig(hidden_size=4)).state_dict())


def _set_tensor(path: Callable[[dict], dict], key: Any, index: Any, value: float) -> Callable[[dict], None]:
    def mutate(state: dict) -> None:
        tensor = path(state)[key].clone()
        tensor[index] = value
        path(state)[key] = tensor

    return mutate


def _indefinite(p: torch.Tensor) -> torch.Tensor:
    """``p`` [C, d, K, K] with row 0's P symmetric, its diagonal positive, and an eigenvalue of 1 - K / 2."""
    p = p.clone()
    p[0, 0] = 1.5 * torch.eye(p.shape[-1], dtype=p.dtype) - 0.5
    return p


def _set(path: Callable[[dict], Any], key: Any, value: Any) -> Callable[[dict], None]:
    def mutate(state: dict) -> None:
        path(state)[key] = value

    return mutate


def _first_param_state(state: dict) -> dict:
    return next(iter(state["engine"]["optimizer"]["state"].values()))


def _tensors(state: dict) -> dict:
    return state["store"]["tensors"]


def _store(state: dict) -> dict:
    return state["store"]


def _probe(state: dict) -> dict:
    return state["probe"]["tensors"]


MALFORMED: dict[str, tuple[Callable[[dict], None], str]] = {
    "nan weight": (_set_tensor(lambda s: s["network"], "head.weight", (0, 0), math.nan), "network['head.weight']"),
    "inf weight": (_set_tensor(lambda s: s["network"], "head.bias", 0, math.inf), "network['head.bias']"),
    "weight of another dtype": (
        lambda s: s["network"].__setitem__("head.bias", s["network"]["head.bias"].double()),
        "network['head.bias']",
    ),
    "weight of another shape": (
        lambda s: s["network"].__setitem__("head.bias", torch.zeros(3)),
        "network['head.bias']",
    ),
    "nan first moment": (_set_tensor(_first_param_state, "exp_avg", 0, math.nan), ".exp_avg"),
    "negative second moment": (_set_tensor(_first_param_state, "exp_avg_sq", 0, -1.0), ".exp_avg_sq"),
    "negative optimizer step": (_set(_first_param_state, "step", torch.tensor(-3.0)), ".step"),
    "optimizer step 2^62": (_set(_first_param_state, "step", torch.tensor(2.0**62)), ".step"),
    "changed learning rate": (
        _set(lambda s: s["engine"]["optimizer"]["param_groups"][0], "lr", 1e9),
        "param_groups[0].lr",
    ),
    "negative attempts": (_set(lambda s: s["engine"], "attempts", -1), "engine.attempts"),
    "attempts 2^62": (_set(lambda s: s["engine"], "attempts", 2**62), "engine.attempts"),
    "skipped over attempts": (_set(lambda s: s["engine"], "skipped", 10**6), "engine.skipped"),
    "negative observations": (_set(lambda s: s, "observations", -5), "observations"),
    "observations as a string": (_set(lambda s: s, "observations", "12"), "observations"),
    "free slot naming a live series": (_set(_store, "free", [0, 1]), "store.free[0]"),
    "free slot out of range": (_set(_store, "free", [1, 99]), "store.free[1]"),
    "free slot listed twice": (_set(_store, "free", [1, 1]), "store.free"),
    "a free slot not listed": (_set(_store, "free", []), "store.names[1]"),
    "name not a string": (lambda s: s["store"]["names"].__setitem__(0, 7), "store.names[0]"),
    "name held twice": (lambda s: s["store"]["names"].__setitem__(0, "c"), "store.names[2]"),
    "negative step counter": (_set_tensor(_tensors, "steps", 0, -4), "store.tensors['steps']"),
    "step counter 2^62": (_set_tensor(_tensors, "steps", 0, 2**62), "store.tensors['steps']"),
    "nan carried state": (_set_tensor(_tensors, "carried_h", (0, 0, 0), math.nan), "store.tensors['carried_h']"),
    "inf in the history": (_set_tensor(_tensors, "hist_x", (0, 0, 0), -math.inf), "store.tensors['hist_x']"),
    "nan in a score": (_set_tensor(_tensors, "stats", (0, STAT["abs_err"], 0), math.nan), "store.tensors['stats']"),
    "inf last value": (_set_tensor(_tensors, "stats", (0, STAT["last_value"], 0), math.inf), "store.tensors['stats']"),
    "negative count": (_set_tensor(_tensors, "stats", (0, STAT["norm_count"], 0), -1.0), "row 'norm_count'"),
    "inf base forecast": (_set_tensor(_tensors, "n_base", (0, 0), math.inf), "store.tensors['n_base']"),
    "season past the longest": (
        _set_tensor(_tensors, "x_season_length", (0, 0, 0), 10**6),
        "store.tensors['x_season_length']",
    ),
    "outlier run of 10^18": (_set_tensor(_tensors, "o_run", (0, 0), -(10**18)), "store.tensors['o_run']"),
    # (a review, session 35: 2**53 loaded, and the model's own checkpoint was refused a missing value later)
    "missing run past the steps": (_set_tensor(_tensors, "x_missing", (0, 0), 10**6), "store.tensors['x_missing']"),
    # (a review: a run of 2^63 - 1 loaded, the next detection wrapped it to -2^63, and the model's own
    # checkpoint was then refused)
    "season run of 2^63 - 1": (_set_tensor(_tensors, "x_season_runs", (0, 0), 2**63 - 1), "x_season_runs"),
    "negative season run": (_set_tensor(_tensors, "x_season_runs", (0, 0), -1), "x_season_runs"),
    "negative outlier count": (_set_tensor(_tensors, "o_count", (0, 0), -1), "store.tensors['o_count']"),
    "negative level shifts": (_set_tensor(_tensors, "o_shifts", (0, 0), -2), "store.tensors['o_shifts']"),
    "nan largest outlier error": (_set_tensor(_tensors, "o_largest", (0, 0), math.nan), "store.tensors['o_largest']"),
    "negative variance in an AR's P": (_set_tensor(_tensors, "x_ar_p", (0, 0, 1, 1), -1.0), "store.tensors['x_ar_p']"),
    "negative variance in the long AR's P": (
        _set_tensor(_tensors, "x_arc_p", (1, 0, 4, 4), -0.5),
        "store.tensors['x_arc_p']",
    ),
    # (a review: the long AR on the levels' fields were not checked; a reference of 1e300 was served
    # as forecasts of None, a count of -1 moved the forecasts, a P with a negative variance loaded)
    "negative variance in the levels AR's P": (
        _set_tensor(_tensors, "x_arl_p", (0, 0, 2, 2), -1.0),
        "store.tensors['x_arl_p']",
    ),
    "a levels AR's reference past the values' bound": (_set_tensor(_tensors, "x_arl_ref", (0, 0), 1e300), "x_arl_ref"),
    "a negative levels AR's scale": (_set_tensor(_tensors, "x_arl_unit", (0, 0), -1.0), "x_arl_unit"),
    "a levels AR's mean past the values' bound": (_set_tensor(_tensors, "x_arl_mean", (0, 0), -1e300), "x_arl_mean"),
    "a negative levels AR's count": (_set_tensor(_tensors, "x_arl_count", (0, 0), -1.0), "x_arl_count"),
    # the short AR on the levels' (session 42), checked as the long one's
    "negative variance in the short AR's P": (
        _set_tensor(_tensors, "x_ars_p", (0, 0, 1, 1), -1.0),
        "store.tensors['x_ars_p']",
    ),
    "a short AR's reference past the values' bound": (_set_tensor(_tensors, "x_ars_ref", (0, 0), 1e300), "x_ars_ref"),
    "a negative short AR's scale": (_set_tensor(_tensors, "x_ars_unit", (0, 0), -1.0), "x_ars_unit"),
    # (session 43: P drifted from symmetry and was indefinite after a few thousand values; rls.py keeps it
    # exactly symmetric now, so a state whose P is not was not written by a forecaster)
    "an AR's P not symmetric": (
        _set_tensor(_tensors, "x_arc_p", (0, 0, 0, 1), 1e-3),
        "store.tensors['x_arc_p'] is invalid: not symmetric",
    ),
    "an AR's P indefinite": (
        lambda s: _tensors(s).__setitem__("x_arl_p", _indefinite(_tensors(s)["x_arl_p"])),
        "store.tensors['x_arl_p'] is invalid: a negative eigenvalue",
    ),
    "store tensor of another dtype": (
        lambda s: _tensors(s).__setitem__("hist_x", _tensors(s)["hist_x"].double()),
        "store.tensors['hist_x']",
    ),
    "store tensor with too few rows": (
        lambda s: _tensors(s).__setitem__("c_q", _tensors(s)["c_q"][:2]),
        "store.tensors['c_q']",
    ),
    "sampler not a generator state": (_set(lambda s: s, "sampler", torch.zeros(3)), "sampler"),
    "a loss of an update not skipped is nan": (
        lambda s: s["engine"]["recent"].__setitem__(0, [1, math.nan, 1.0, 1, False, 32]),
        "engine.recent[0][1]",
    ),
    "a record without its window": (
        lambda s: s["engine"]["recent"].__setitem__(0, [1, 0.5, 1.0, 1, False]),
        "engine.recent[0]",
    ),
    "a learning-rate scale above 1": (_set(lambda s: s["engine"]["guard"], "lr_scale", 2.0), "engine.guard.lr_scale"),
    "a backed-off scale the optimizer does not follow": (
        _set(lambda s: s["engine"]["guard"], "lr_scale", 0.5),
        "param_groups[0].lr",
    ),
    "nan in the good copy": (
        _set_tensor(lambda s: s["engine"]["guard"]["good"]["params"], 0, (0, 0), math.nan),
        "engine.guard.good.params[0]",
    ),
    # (session 60, a hostile test: losses of 1e300 were imported, and the guards' next block overflowed squaring them)
    "a guard loss past 1e150": (
        _set(lambda s: s["engine"]["guard"], "losses", [1e300, 0.0]),
        "engine.guard.losses[0]=1e+300 is invalid: must be a finite number (a norm >= 0, a loss within +-1e+150)",
    ),
    "a negative guard count": (_set(lambda s: s["engine"]["guard"]["counts"], "rollbacks", -1), "rollbacks"),
    "nan in the probe's reach": (_set_tensor(_probe, "phi", 0, math.nan), "probe.tensors['phi']"),
    "a probe slot out of range": (_set_tensor(_probe, "slots", 0, 99), "probe.tensors['slots']"),
    # fix (a review): missed at 2^63 - 1 passed and wrapped negative one probe later (then refused)
    "probe missed count 2^63 - 1": (_set_tensor(_probe, "missed", 0, 2**63 - 1), "probe.tensors['missed']"),
    "probe step count 2^62": (_set_tensor(_probe, "count", 0, 2**62), "probe.tensors['count']"),
    "negative probe missed count": (_set_tensor(_probe, "missed", 0, -1), "probe.tensors['missed']"),
    "negative interval count": (_set_tensor(_tensors, "stats", (0, STAT["interval_n"], 0), -1.0), "row 'interval_n'"),
    # (a restarted_steps of -100 made the series report step -94 in results, forecasts and its stats)
    "negative restart steps": (
        _set_tensor(_tensors, "stats", (0, STAT["restarted_steps"], 0), -100.0),
        "row 'restarted_steps' holds negative",
    ),
    "fractional restarts": (_set_tensor(_tensors, "stats", (0, STAT["restarts"], 0), 2.5), "row 'restarts' must"),
    # (a hostile test: an excursion begun at a future step was never repaired, and the usual size of
    # a seasonal difference grew from 1.56 to 8.99; a median of 1e300 was served, its interval 0 wide)
    "an excursion begun past the series' steps": (_set_tensor(_tensors, "x_excursion", (0, 0), 2**40), "x_excursion"),
    "a repair past the series' steps": (_set_tensor(_tensors, "x_repaired", (2, 0), 2**63 - 1), "x_repaired"),
    "a median past the values' bound": (_set_tensor(_tensors, "x_median", (0, 0), 1e300), "x_median"),
    "a seasonal difference past the values' bound": (_set_tensor(_tensors, "x_sdiff", (0, 0), 1e308), "x_sdiff"),
    # (session 48, a hostile test: an imported x_level of 1e300 served forecasts of 1.09e294, a c_q of 1e300 an
    # interval 1e300 wide for good)
    "an expert's level past 1e100 times the values' bound": (
        _set_tensor(_tensors, "x_level", (0, 0, 0, 0), 1e300),
        "x_level'] is invalid: holds a value past 1e+136, 1e+100 times the values' bound 1e+36",
    ),
    "a seasonal index past it": (_set_tensor(_tensors, "x_season", (0, 0, 0, 0, 0), -1e137), "x_season"),
    "a value in the ring past it": (_set_tensor(_tensors, "x_raw", (0, 0, 0), 1e300), "x_raw"),
    "a one-step width's scale past it": (_set_tensor(_tensors, "c_q", (0, 0, 0), 1e300), "c_q"),
    # (c_origin may hold inf, a forecast past float32's range, and never NaN: the check had it the
    # other way round until session 20)
    "nan in the ring of past forecasts": (_set_tensor(_tensors, "c_origin", (0, 0, 0, 0, 0), math.nan), "c_origin"),
    "an adaptive window a fixed config cannot use": (_set(lambda s: s["probe"], "window", 7), "probe.window"),
    "unknown config field": (_set(lambda s: s["config"], "colour", "red"), "config"),
    "another format": (_set(lambda s: s, "format", 99), "format"),
    "a missing key": (lambda s: s.pop("engine"), "state"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_field_that_means_nothing_is_named(state, case) -> None:
    mutate, field = MALFORMED[case]
    broken = copy.deepcopy(state)
    mutate(broken)
    with pytest.raises(ValueError) as raised:
        check_state(broken)
    assert field in str(raised.value), str(raised.value)


def test_nan_is_allowed_where_it_means_something(state) -> None:
    assert bool(_tensors(state)["stats"][:, STAT["last_value"]].isnan().any())  # the fresh row: no value yet
    check_state(state)
    blank = copy.deepcopy(state)  # a row as a new store holds it: no base yet
    _set_tensor(lambda s: s["store"]["tensors"], "n_base", 3, math.nan)(blank)
    check_state(blank)


def test_counts_up_to_2_to_the_53_pass(state) -> None:
    big = copy.deepcopy(state)
    big["observations"] = MAX_COUNT
    check_state(big)
    big["observations"] = MAX_COUNT + 1
    with pytest.raises(ValueError, match="observations"):
        check_state(big)


def test_a_series_climbing_to_the_values_bound_writes_a_state_that_passes() -> None:
    # A hostile test: its forecasts pass float32's range, kept in the ring of past forecasts as inf
    # (what INF_ALLOWED is for), and check_state refused the state for it from value 70 to about
    # 290 (so the service refused its own export); NaN passed instead
    f = Forecaster(ForecasterConfig(max_season_length=48))
    for i in range(90):
        f.observe("exp", min(1e36, 10 ** (i / 2)))
    state = f.state_dict()
    assert bool(state["store"]["tensors"]["c_origin"].isinf().any())
    check_state(state)


STREAMS_AT_THE_BOUND = {
    "alternating": lambda i: 1e36 * (-1) ** i,
    "square wave": lambda i: 1e36 if (i // 12) % 2 else -1e36,
    "spikes": lambda i: 1e36 if i % 17 == 0 else 0.0,
    "a climb held at the bound": lambda i: min(1e36, 1.5**i),
    "tiny and huge in turn": lambda i: 1e-300 if i % 2 else 1e36,
    "a climb of 10 decades a value": lambda i: 10.0 ** min(max(-300 + 10 * (i - 30), -300), 36),
}


@pytest.mark.parametrize("stream", list(STREAMS_AT_THE_BOUND))
def test_a_series_at_the_values_bound_writes_a_state_within_the_fields_bounds(stream) -> None:
    # the fields a smoothing writes are bounded at 1e100 times the values' bound (session 48): the library's
    # own states on streams at the bound stay far inside it (they reach 2.2e41: c_q of the climb held at the bound
    # since session 62's widths that follow a positive series' level; 1.2e38 before) and load again. (That stream is
    # served far off already: its values ring drifts to 4e38 while the values stay at 1e36, left in README Limits.)
    f = Forecaster(ForecasterConfig(max_season_length=48))
    for i in range(300):
        f.observe("s", STREAMS_AT_THE_BOUND[stream](i))
    state = f.state_dict()
    check_state(state)
    largest = max(float(state["store"]["tensors"][key].abs().max()) for key in ("x_level", "x_raw", "c_q"))
    assert 1e35 < largest < 1e42
    Forecaster.from_state_dict(state)


def test_a_seasonal_difference_rounded_one_ulp_past_its_bound_still_loads() -> None:
    # fix (a hostile test, session 54): values at +-1e36 with missing ones and a season of 7 left x_sdiff at
    # 2.0000000000000004e36, one ulp past twice the values' bound, and the model's own export was refused
    f = Forecaster(ForecasterConfig(seed=0, season_length=7))
    for value in [None, None, None, -1e36, -1e36, None, -1e36, 1e36, None, 9.99e35, -1e36, 1e36, 1e36]:
        f.observe("s", value)
        check_state(f.state_dict())
    assert float(f.store.tensors["x_sdiff"].abs().max()) > 2e36  # (past the bound by its rounding)


@pytest.mark.parametrize(
    ("key", "index", "value", "message"),
    [
        ("c_spread", (0, 1, 0, 0), 1.7e308, "a sum of errors S past 1e.300 times its count N"),
        ("c_spread", (0, 1, 2, 0), 1e300, r"a multiplier m outside \[0.5, 10\]"),
        ("c_spread", (0, 1, 2, 0), 0.0, r"a multiplier m outside \[0.5, 10\]"),
        ("c_far_spread", (0, 0, 1, 0), 50.0, "a count N past"),
    ],
)
def test_a_widths_scale_or_multiplier_outside_its_rules_range_is_refused(state, key, index, value, message) -> None:
    # a second review (session 46): S = 1.7e308 with N = 0 loaded and served infinite widths, m = 1e300 widths
    # of 7e301; the state passed check_state
    broken = copy.deepcopy(state)
    _set_tensor(lambda s: s["store"]["tensors"], key, index, value)(broken)
    with pytest.raises(ValueError, match=message):
        check_state(broken)


def test_slots_past_the_rows_saved_must_be_free() -> None:
    # a state holds the rows up to its last series (session 49): the slots past them are free ones
    f = Forecaster(ForecasterConfig(hidden_size=4))
    f.observe_many([("a", 1.0), ("b", 2.0), ("c", 3.0)])
    f.forget("c")
    state = f.state_dict()
    assert state["store"]["tensors"]["steps"].shape[0] == 2 and state["store"]["names"][2] is None
    check_state(state)
    state["store"]["names"][2], state["store"]["free"] = "c", []
    with pytest.raises(ValueError, match=r"2 rows for 3 slots, a series past them"):
        check_state(state)


def test_a_state_that_passes_still_passes_after_its_forecasts_blow_up() -> None:
    # a hostile test (session 50): an import whose levels were 1e30 (within the bound) was taken, the series'
    # forecasts then blew up (errors of 2e286), their squares summed to inf, and the model's own export was
    # refused on import: "stats holds inf"
    forecaster = Forecaster(ForecasterConfig(hidden_size=4))
    for t in range(60):
        forecaster.observe_many([(f"s{j}", 10 + 5 * math.sin(t / 4 + j) + j) for j in range(3)])
    state = forecaster.state_dict()
    state["store"]["tensors"]["x_level"].fill_(1e30)
    check_state(state)
    forecaster = Forecaster.from_state_dict(state)
    for k in range(12):
        forecaster.observe_many([(f"s{j}", 10.0 + j + k % 3) for j in range(3)])
    assert forecaster.series_stats("s0").mae > 1e200  # (blown up: the test's premise)
    after = forecaster.state_dict()
    check_state(after)  # no inf in the statistics: their sums stop at scoring.MAX_SUM
    assert float(after["store"]["tensors"]["stats"][:, STAT["sq_err"]].max()) <= 1e300


def test_a_model_whose_forecasts_blow_up_at_every_tick_loads_its_own_state():
    # a hostile test (session 51): at lr=10, the documented maximum, the forecast blow-ups (one a tick) passed the
    # updates made (every count was bounded by them): 925 in 215 updates, and the model's own export was refused
    # (its first value a spike, its fourth missing: with all of its first five observed, the spike is restarted
    # from, ``forecaster.GLITCH_AT``, and a blow-up came once in 600 values)
    rng = random.Random(1)
    forecaster = Forecaster(ForecasterConfig(lr=10.0))
    for i in range(600):
        value = 10 + 3 * math.sin(i / 4) + rng.gauss(0, 1) * (1 + 100 * (i % 97 == 0))
        forecaster.observe("a", math.nan if i == 3 else value)
    state = forecaster.state_dict()
    counts = state["engine"]["guard"]["counts"]
    assert counts["blowups"] > state["engine"]["attempts"]  # (the case: more blow-ups than updates)
    check_state(state)
    assert Forecaster.from_state_dict(state).forecast("a", 3) == forecaster.forecast("a", 3)
    for key, too_many in (
        ("blowups", state["observations"] + 1),
        ("explosions", state["engine"]["attempts"] + 1),
        ("rollbacks", counts["divergences"] + counts["blowups"] + state["engine"]["attempts"] + 1),
    ):
        hacked = {**state, "engine": {**state["engine"], "guard": {**state["engine"]["guard"], "counts": {**counts}}}}
        hacked["engine"]["guard"]["counts"][key] = too_many
        with pytest.raises(ValueError, match=f"engine.guard.counts.{key}={too_many} is invalid"):
            check_state(hacked)
