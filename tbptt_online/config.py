"""ForecasterConfig: the typed, validated hyperparameters of one model.

A frozen dataclass (nanoGPT style). Every field is checked at construction and a
bad value raises ``ValueError`` naming the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

CELLS = ("gru", "lstm", "rnn")
MODES = ("stateful", "stateless")
OPTIMIZERS = ("sgd", "adam", "adamw")
LOSSES = ("gaussian", "mse", "absolute")
DTYPES = ("float32", "float64")
MAX_LEVEL = 1 - 1e-9  # a forecast's level closer to 1 has no finite quantile in float64
# The levels a model's intervals can be calibrated at (``interval_level``). Its tracker (see
# calibration.py) learns from the share of values outside the served width: past 0.999 that is
# one value in more than a thousand. Every other level is served as the tracked width times a
# ratio learned from the errors, at most 10 times z(level) / z(interval_level) (calibration.py),
# which grows without bound as interval_level goes to 0 (by 1.3e9 at 1e-9, which a hostile test
# set: intervals of +-7e6 around values of 5 to 16); from 0.5, no level up to MAX_LEVEL is more
# than 9.1 times the tracked width at the normal ratio.
MIN_TRACKED_LEVEL = 0.5
MAX_TRACKED_LEVEL = 0.999
# The largest learning rate: a larger one moves a weight by more than that per Adam step, and no
# model learns with it (1e300 was taken: every update was then skipped for good, a hostile test).
MAX_LR = 10.0


def _season_length(value: Any, longest: int) -> str | tuple[int, ...] | None:
    """``season_length``: "auto", None, an int or a list of at most two distinct ints in
    [2, max_season_length], kept as a sorted tuple (the shorter first).

    >>> _season_length([336, 48], 336)
    (48, 336)
    >>> try:
    ...     _season_length([2, 2], 336)
    ... except ConfigValueError as error:
    ...     print(error)
    season_length=[2, 2] is invalid: the two season lengths must differ (one of them is enough)
    """
    if value is None or value == "auto":
        return value
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(items, list | tuple) or not 1 <= len(items) <= 2:
        raise _bad("season_length", value, 'must be "auto", null, an integer or a list of one or two integers')
    for item in items:  # (past the longest: the message named no way to allow it, a new user's)
        _check_int("season_length", item, 2, longest, past_high=", max_season_length (raise it for a longer one)")
    if len(items) == 2 and items[0] == items[1]:  # fix: [2, 2] was taken (a second season that adds nothing)
        raise _bad("season_length", value, "the two season lengths must differ (one of them is enough)")
    return tuple(sorted(items))


# Bounds tightened (session 26) after configs were saved with values outside them: a saved config (a
# checkpoint, an exported state, a journaled model creation) has such a value moved to the nearest end
# of its range, and says so, instead of being refused (its model was quarantined at the upgrade, its
# learned state lost to a delete: a hostile test). A new config is refused as before.
# Each field's range before then, open at both ends (the new one is its REAL_BOUNDS).
TIGHTENED = {"interval_level": (0.0, 1.0), "truncation_bias": (0.0, math.inf)}


def migrated(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A saved config's fields with the values a tightened bound now refuses moved to its nearest end
    (a copy; ``data`` is not changed), and a note per field moved. Values that were never allowed
    (not finite, or outside the old ranges: a level not in (0, 1), a bias not above 0) are left for
    ``from_dict`` to refuse.

    >>> moved, notes = migrated({"interval_level": 1e-09, "truncation_bias": 2.0, "k1": 4})
    >>> moved
    {'interval_level': 0.5, 'truncation_bias': 1.0, 'k1': 4}
    >>> for note in notes:
    ...     print(note)
    interval_level=1e-09 is outside [0.5, 0.999] since session 26: taken as 0.5
    truncation_bias=2.0 is outside (0.0, 1.0] since session 26: taken as 1.0
    >>> migrated({"interval_level": 1.5})[1]
    []
    """
    out, notes = dict(data), []
    for field, (old_low, old_high) in TIGHTENED.items():
        value = out.get(field)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        if not old_low < value < old_high or within(field, value):
            continue
        low, high = REAL_BOUNDS[field]
        moved = float(min(max(value, low), high))  # an open end is never the nearer: 0 was never taken
        notes.append(f"{field}={_shown(value)} is outside {range_text(field)} since session 26: taken as {moved!r}")
        out[field] = moved
    return out, notes


def _close(name: Any, known: set[str]) -> list[str]:
    """The known field ``name`` most likely misspells (none for a name that is no string)."""
    return difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8) if isinstance(name, str) else []


class ConfigValueError(ValueError):
    """A field's value refused: ``field``, ``value`` (as given, or the number it stands for) and ``allowed``
    (what the field takes) kept apart, so that a caller quoting values in another notation writes the
    message itself (the service: as JSON, ``"weekly"`` beside ``null``); ``str()`` quotes it as Python does.

    >>> error = ConfigValueError("cell", "xyz", "must be one of gru, lstm, rnn")
    >>> str(error), error.field, error.value, error.allowed
    ("cell='xyz' is invalid: must be one of gru, lstm, rnn", 'cell', 'xyz', 'must be one of gru, lstm, rnn')
    """

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        super().__init__(f"{field}={_shown(value)} is invalid: {allowed}")
        self.field, self.value, self.allowed = field, value, allowed


def _bad(field: str, value: Any, allowed: str) -> ConfigValueError:
    return ConfigValueError(field, value, allowed)


def _shown(value: Any) -> str:
    """``repr(value)`` cut short in length and depth (``reprlib``): ``season_length=[1] * 500000``
    was quoted whole, a 1.5 MB message and the service's 422 body (a hostile client, session 35).

    >>> _shown([1] * 500000), _shown("x" * 100)[-8:], _shown([[[[1]]]])
    ('[1, 1, 1, 1, 1, 1, ...]', "xxxxxxx'", '[[[[...]]]]')
    """
    return _SHORT.repr(value)


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 3, 60, 60, 60


def _check_int(field: str, value: Any, low: int, high: int | None = None, past_high: str = "") -> None:
    """``ValueError`` naming ``field`` unless ``value`` is an integer in [low, high]; ``past_high`` is added to
    the message of one above ``high`` (what allows it)."""
    integer = isinstance(value, int) and not isinstance(value, bool)
    # a whole float is checked against the range first: JSON parsers give an integer past 64 bits
    # as one (a seed of 2**64 was told "must be an integer", a hostile test)
    if not (integer or (isinstance(value, float) and value.is_integer())):
        raise _bad(field, value, "must be an integer")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        shown = value if integer else int(value)  # 18446744073709551616, not 1.8446744073709552e+19
        above = high is not None and value > high
        raise _bad(field, shown, f"must be an integer {bound}" + (past_high if above else ""))
    if not integer:
        raise _bad(field, value, "must be an integer")


def _check_choice(field: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise _bad(field, value, f"must be one of {', '.join(choices)}")


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number or bool it holds (``item()``), in a list or tuple too; any
    other value as it is.

    >>> import numpy as np
    >>> _plain(np.float32(0.5)), _plain([np.int64(12), 24]), _plain("auto")
    (0.5, [12, 24], 'auto')
    """
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        return value.item()
    if isinstance(value, list | tuple) and any(type(v).__module__ == "numpy" for v in value):
        return type(value)(_plain(v) for v in value)
    return value


def _check_real(field: str, value: Any, low: float, *, strict: bool, high: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(field, value, "must be a finite number")
    if (value <= low if strict else value < low) or (high is not None and value >= high):
        op = ">" if strict else ">="
        upper = "" if high is None else f" and < {high}"
        raise _bad(field, value, f"must be {op} {low}{upper}")


MAX_K2 = 100_000  # the longest window k2 (and k2_max) may ask for

# The integer fields' fixed bounds [low, high], checked by ForecasterConfig and written into the
# service's OpenAPI schema of a config (``minimum``, ``maximum``). Bounds that depend on other
# fields are checked besides: history_size >= the longest window, warmup_updates <= the shortest,
# k2_max >= k2_min.
INT_BOUNDS = {
    "hidden_size": (1, 4096),
    "num_layers": (1, 8),
    "n_features": (1, 1024),
    "k1": (1, 100_000),
    "k2": (1, MAX_K2),
    "seed": (0, 2**63 - 1),
    "replay_batch": (1, 1_000_000),
    "history_size": (1, 1_000_000),
    "max_season_length": (2, 10_000),
    "calibrated_horizon": (1, 1_000),
    "warmup_updates": (0, MAX_K2),
    "k2_min": (1, 100_000),
    "k2_max": (1, MAX_K2),
    "probe_every": (0, 1_000_000),
    "probe_length": (2, 4096),
    "outlier_run": (2, 1_000),  # 1: every outlier a shift, i.e. off (None is)
}
# The real fields' fixed bounds [low, high], checked and written into the schema likewise; the low
# end is left out for the fields of OPEN_LOW: (low, high] (``exclusiveMinimum`` in the schema).
REAL_BOUNDS = {
    "lr": (0.0, MAX_LR),
    "interval_level": (MIN_TRACKED_LEVEL, MAX_TRACKED_LEVEL),
    "truncation_bias": (0.0, 1.0),  # a share of the full gradient: 0 no window reaches, 2 was taken and never adapted
}
OPEN_LOW = frozenset({"truncation_bias"})


def within(field: str, value: float) -> bool:
    """``value`` lies in ``REAL_BOUNDS[field]`` (its low end left out for ``OPEN_LOW``)."""
    low, high = REAL_BOUNDS[field]
    return (low < value if field in OPEN_LOW else low <= value) and value <= high


def range_text(field: str) -> str:
    """``REAL_BOUNDS[field]`` as an interval: ``[0.5, 0.999]``, ``(0.0, 1.0]``."""
    low, high = REAL_BOUNDS[field]
    return f"{'(' if field in OPEN_LOW else '['}{low}, {high}]"


def level_hint(value: Any) -> str:
    """The hint for a level written as a percentage (in (1, 100]), else "": a forecast's ``level`` and
    the config's ``interval_level`` are fractions (new users' reports: ``level=90``, ``interval_level: 90``).

    >>> level_hint(90), level_hint("95.5"), level_hint(0.9), level_hint("x")
    (' (a level is a fraction: 0.9 for 90 %)', ' (a level is a fraction: 0.9 for 90 %)', '', '')
    """
    try:
        percentage = 1.0 < float(value) <= 100.0
    except (TypeError, ValueError):
        return ""
    return " (a level is a fraction: 0.9 for 90 %)" if percentage else ""


def _check_in(field: str, value: Any) -> None:
    """A finite real in ``REAL_BOUNDS[field]`` (``within``), one message for every value outside (a level
    written as a percentage with ``level_hint``)."""
    _check_real(field, value, -math.inf, strict=False)
    if not within(field, value):
        hint = level_hint(value) if field == "interval_level" else ""
        raise _bad(field, value, f"must be in {range_text(field)}{hint}")


def _check_bounded(field: str, value: Any, low: int | None = None, high: int | None = None) -> None:
    """``_check_int`` with ``INT_BOUNDS[field]``, narrowed by ``low`` / ``high`` where given."""
    bottom, top = INT_BOUNDS[field]
    _check_int(field, value, bottom if low is None else max(bottom, low), top if high is None else min(top, high))


@dataclass(frozen=True)
class ForecasterConfig:
    """Hyperparameters of a :class:`~tbptt_online.Forecaster`.

    ``k1`` is the number of steps of a series between two updates, ``k2`` the number
    of steps the backward pass replays (choose it from the longest season in the data;
    ``tbptt_online.advisor`` says whether it is long enough), or ``"adaptive"``: each
    update's window is the smallest in [``k2_min``, ``k2_max``] (steps of ``k1``) whose
    estimated relative truncation bias is below ``truncation_bias`` (stateful mode only).
    Every ``probe_every`` updates (0: never; in a young model also at its eighth, quarter and
    half) a probe measures the gradient's reach over
    ``probe_length`` steps (default twice the longest window). ``guards``: the instability
    guards (see guards.py).
    ``history_size`` is how many observations each series retains (default: ``k2`` in
    stateful mode, ``4 * k2`` in stateless mode, where windows are sampled from it).
    ``residual``: the mean head predicts the change from the last input, so an untrained
    model starts at the naive last-value forecast and learns what improves on it.
    ``outlier_sigmas`` (None: off) and ``outlier_run``: the hybrid learns from a value
    beyond that many sigmas (sigma: its served interval's half-width over z(interval_level))
    at the bound, unless it is the
    ``outlier_run``-th such value in a row on one side (a level shift; see outliers.py).
    ``flat_improbable`` (None: off): a run of a series' values equal to the one before this
    improbable at the series' own rate of repeats is a stuck value's, held back as missing
    (see flat_runs.py).

    >>> ForecasterConfig(k1=4, k2=16).resolved_history_size
    16
    >>> ForecasterConfig(k1=0)
    Traceback (most recent call last):
    ...
    tbptt_online.config.ConfigValueError: k1=0 is invalid: must be an integer in [1, 100000]
    """

    cell: str = "gru"
    hidden_size: int = 32
    num_layers: int = 1
    n_features: int = 1
    k1: int = 8
    k2: int | str = 32
    mode: str = "stateful"
    optimizer: str = "adam"
    lr: float = 5e-3
    clip_norm: float | None = 1.0
    loss: str = "absolute"
    normalize: bool = True
    seed: int = 0
    dtype: str = "float32"
    replay_batch: int = 32
    history_size: int | None = None
    interval_level: float = 0.9
    residual: bool = True
    hybrid: bool = True
    season_length: int | list[int] | tuple[int, ...] | str | None = "auto"
    max_season_length: int = 336
    calibrated_horizon: int = 12
    warmup_updates: int | None = None
    k2_min: int = 8
    k2_max: int = 128
    truncation_bias: float = 0.1
    probe_every: int = 64
    probe_length: int | None = None
    guards: bool = True
    outlier_sigmas: float | None = 5.0
    outlier_run: int = 3
    flat_improbable: float | None = 1e-9

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # numpy scalars as Python's (a hostile test, session 48: np.float64
            value = getattr(self, field.name)  # was kept and its state_dict failed torch.load(weights_only=True);
            plain = _plain(value)  # np.float32 was refused as "must be a finite number")
            if plain is not value:
                object.__setattr__(self, field.name, plain)
        _check_choice("cell", self.cell, CELLS)
        _check_bounded("hidden_size", self.hidden_size)
        _check_bounded("num_layers", self.num_layers)
        _check_bounded("n_features", self.n_features)
        _check_bounded("k1", self.k1)
        _check_choice("mode", self.mode, MODES)
        if self.k2 == "adaptive":
            self._check_adaptive()
        elif isinstance(self.k2, str):  # fix: k2="Adaptive" was told "must be an integer"
            raise _bad("k2", self.k2, f'must be an integer in {list(INT_BOUNDS["k2"])} or "adaptive"')
        else:
            _check_bounded("k2", self.k2)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_in("lr", self.lr)
        if self.clip_norm is not None:
            _check_real("clip_norm", self.clip_norm, 0.0, strict=True)
        _check_choice("loss", self.loss, LOSSES)
        for flag in ("normalize", "residual"):
            if not isinstance(getattr(self, flag), bool):
                raise _bad(flag, getattr(self, flag), "must be true or false")
        _check_bounded("seed", self.seed)
        _check_choice("dtype", self.dtype, DTYPES)
        _check_bounded("replay_batch", self.replay_batch)
        if self.history_size is not None:
            _check_bounded("history_size", self.history_size, low=self.max_window)
        # fix: 0.9999999999999999 rounded to a quantile of 1 (infinite); 1e-320 to a quantile of 0;
        # 1e-9 scaled the other levels' intervals by 1.3e9. One message for every level outside
        _check_in("interval_level", self.interval_level)
        if not isinstance(self.hybrid, bool):
            raise _bad("hybrid", self.hybrid, "must be true or false")
        _check_bounded("max_season_length", self.max_season_length)
        _check_bounded("calibrated_horizon", self.calibrated_horizon)
        object.__setattr__(self, "season_length", _season_length(self.season_length, self.max_season_length))
        if self.warmup_updates is not None:
            _check_bounded("warmup_updates", self.warmup_updates, high=self.min_window)
        _check_in("truncation_bias", self.truncation_bias)
        _check_bounded("probe_every", self.probe_every)
        if self.probe_length is not None:
            _check_bounded("probe_length", self.probe_length)
        if not isinstance(self.guards, bool):
            raise _bad("guards", self.guards, "must be true or false")
        if self.outlier_sigmas is not None:
            _check_real("outlier_sigmas", self.outlier_sigmas, 1.0, strict=False)
        _check_bounded("outlier_run", self.outlier_run)
        if self.flat_improbable is not None:
            _check_real("flat_improbable", self.flat_improbable, 0.0, strict=True, high=1.0)

    def _check_adaptive(self) -> None:
        if self.mode != "stateful":
            raise _bad("k2", self.k2, 'adaptive truncation needs mode="stateful" (stateless windows have one length)')
        _check_bounded("k2_min", self.k2_min)
        _check_bounded("k2_max", self.k2_max, low=self.k2_min)
        if (self.k2_max - self.k2_min) % self.k1:
            raise _bad(
                "k2_max",
                self.k2_max,
                f"must be k2_min + a multiple of k1 (k2_min={self.k2_min}, k1={self.k1}): "
                "windows start where a state is kept",
            )

    # -- truncation ------------------------------------------------------------------
    @property
    def adaptive(self) -> bool:
        """``k2="adaptive"``: each update's window is chosen in [k2_min, k2_max] (see truncation.py)."""
        return self.k2 == "adaptive"

    @property
    def max_window(self) -> int:
        """The longest window an update replays: k2, or k2_max when adaptive."""
        return self.k2_max if self.adaptive else self.k2  # type: ignore[return-value]

    @property
    def min_window(self) -> int:
        """The shortest window an update replays: k2, or k2_min when adaptive."""
        return self.k2_min if self.adaptive else self.k2  # type: ignore[return-value]

    @property
    def window_candidates(self) -> list[int]:
        """The windows an update may use: k2, or k2_min, k2_min + k1, ... k2_max."""
        return list(range(self.min_window, self.max_window + 1, self.k1))

    @property
    def resolved_probe_length(self) -> int:
        """K_p, the truncation probe's window: twice the longest update window unless set."""
        return self.probe_length if self.probe_length is not None else 2 * self.max_window

    @property
    def resolved_history_size(self) -> int:
        """Observations retained per series: never fewer than ``k2``."""
        if self.history_size is not None:
            return self.history_size
        return self.max_window if self.mode == "stateful" else 4 * self.max_window

    @property
    def ring_size(self) -> int:
        """Slots of a series' history ring: the retained values plus the one before the
        oldest (the base of the residual head's first forecast in a window)."""
        return self.resolved_history_size + 1

    @property
    def output_size(self) -> int:
        """Width of ``predict``'s output: the mean, plus a variance head for gaussian."""
        return 2 * self.n_features if self.loss == "gaussian" else self.n_features

    @property
    def input_size(self) -> int:
        """Width of the network's input: the value, or the hybrid's features of each feature."""
        from tbptt_online.hybrid import FEATURES

        return FEATURES * self.n_features if self.hybrid else self.n_features

    @property
    def resolved_warmup_updates(self) -> int:
        """Stateful mode updates at every value up to this step (default: ``k2``, at most 32);
        stateless mode has no warm-up (its updates do not belong to one series)."""
        if self.mode != "stateful":
            return 0
        return min(self.min_window, 32) if self.warmup_updates is None else self.warmup_updates

    @property
    def season_table_size(self) -> int:
        """Seasonal indices kept per season: the longest season that can be used."""
        if self.season_length == "auto":
            return self.max_season_length
        return max([2, *(self.season_length or ())])

    @property
    def values_ring_size(self) -> int:
        """Raw values kept per series by the hybrid: three of the longest season (enough to
        find it and to difference twice by it), or 32 without seasons."""
        return 3 * self.season_table_size + 3 if self.season_length else 32

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_saved(cls, data: dict[str, Any], *, quiet: bool = False) -> ForecasterConfig:
        """``from_dict`` of a config saved by an earlier version: a value a bound tightened since
        refuses is moved to its nearest end, with a warning in the log (``migrated``); ``quiet``:
        without it, for the config of a state whose loading says so (``state_format.current_state``)."""
        moved, notes = migrated(data) if isinstance(data, dict) else (data, [])
        for note in notes if not quiet else ():
            log.warning("a saved config: %s", note)
        return cls.from_dict(moved)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ForecasterConfig:
        """Build from a plain mapping; unknown keys are an error naming them."""
        if not isinstance(data, Mapping):  # fix: from_dict(5) raised TypeError
            raise ValueError(f"a config must be a mapping of field names to values, not {_shown(data)}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:  # fix: a million unknown keys made a 2 MB error; name the first few
            named = sorted(unknown, key=str)[:5]
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            close = [f"{_shown(k)}: did you mean {m[0]!r}?" for k in named if (m := _close(k, known))]
            hint = f" ({'; '.join(close)})" if close else ""
            shown = "[" + ", ".join(_shown(k) for k in named) + "]"  # (a key of 1 MB was quoted whole, a review)
            raise ValueError(f"unknown config field(s) {shown}{more}{hint}: allowed are {sorted(known)}")
        return cls(**data)
