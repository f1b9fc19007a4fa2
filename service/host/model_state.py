"""ModelState: everything a checkpoint keeps of one model, and its plain (checkpointable) form.

A model's state is its Forecaster's ``state_dict()`` (weights, optimizer, normalisers,
carried states, histories, counters, random generator state, config), the worker's
per-series marks (the last timestamp and its result: a retried observation is still
recognised after a restart), the recent idempotency keys, the recent results the dashboard
draws (``recent``: each series' last values beside the forecasts made for them) and ``seq``,
the last log record the state includes.
The plain form holds tensors and plain values only (``torch.load(weights_only=True)``).

One model's state is also what ``GET /v1/models/{model}/checkpoint`` exports: the
checkpoint encoding of :mod:`tbptt_service.storage.checkpoints` around ``{"format": 1, "model": ...}``.

>>> from tbptt_online import Forecaster, ForecasterConfig
>>> f = Forecaster(ForecasterConfig(hidden_size=4))
>>> r = f.observe("a", 1.0)
>>> state = ModelState("m", 7, f.state_dict(), {"a": SeriesMark(60.0, r.value, r)})
>>> back = decode_model_checkpoint(encode_model_checkpoint(state))
>>> back.name, back.seq, back.marks["a"] == state.marks["a"], back.config.hidden_size
('m', 7, True, 4)
>>> config_mismatch(ForecasterConfig(hidden_size=4), ForecasterConfig(hidden_size=8, k1=2))
'hidden_size is 4 in the checkpoint, 8 in the model; k1 is 8 in the checkpoint, 2 in the model'
"""

from __future__ import annotations

import base64
import dataclasses
import math
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from tbptt_online import Forecaster, ForecasterConfig, Prediction, StepResult
from tbptt_online.state_check import MAX_COUNT, check_state
from tbptt_service.errors import Conflict
from tbptt_service.host.admission import SeriesMark
from tbptt_service.host.applied_keys import KeyedAnswer
from tbptt_service.host.cadence import MULTIPLES_RUN, UNKNOWN, Cadence
from tbptt_service.host.memory_budget import SeriesLimit
from tbptt_service.host.recent_results import SavedRings
from tbptt_service.storage.checkpoints import decode_checkpoint, encode_checkpoint
from tbptt_service.storage.observation import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelState:
    name: str
    seq: int  # the last event-log record this state includes (0: none)
    forecaster: dict[str, Any]  # Forecaster.state_dict()
    marks: Mapping[str, SeriesMark]
    keys: tuple[tuple[str, KeyedAnswer], ...] = ()  # the recent idempotency keys and answers, oldest first
    recent: SavedRings | None = None  # the recent results' rings (None: none; a checkpoint before session 50)

    @property
    def config(self) -> ForecasterConfig:
        # a bound tightened since moves a value, said once: by load_state (build), not by each read of this
        return ForecasterConfig.from_saved(self.forecaster["config"], quiet=True)

    def build(self, factory: Callable[[ForecasterConfig], Forecaster] = Forecaster) -> Forecaster:
        """A forecaster from ``factory`` holding this state (ValueError when the state does not fit)."""
        forecaster = factory(self.config)
        forecaster.load_state(self.forecaster)
        return forecaster


def _result_row(result: StepResult) -> list[Any]:
    made, nxt = result.forecast_made, result.forecast_next
    return [result.step, result.value, made.mean, made.lower, made.upper, nxt.mean, nxt.lower, nxt.upper]


def _keys_plain(keys: tuple[tuple[str, KeyedAnswer], ...]) -> dict[str, Any]:
    """The keys as columns: one entry per key, their results one after the other (``sizes`` each)."""
    results = [r for _, answer in keys for r in answer.results]
    return {
        "keys": [key for key, _ in keys],
        "digests": [answer.digest for _, answer in keys],
        "update_counts": [answer.update_count for _, answer in keys],
        "sizes": [len(answer.results) for _, answer in keys],
        "series": [r.series for r in results],
        "results": [_result_row(r) for r in results],
        "updated": [r.updated for r in results],
        "update_count": [r.update_count for r in results],
        **_flags_plain(results),
    }


FLAGS = ("outlier", "held")  # StepResult's flags, each a column of a checkpoint where one is set


def _flags_plain(results: list[StepResult]) -> dict[str, list[bool]]:
    """The results' flags (``FLAGS``) as columns, each only when one is set (a checkpoint written
    before a flag existed has none: all False)."""
    columns = {name: [getattr(r, name) for r in results] for name in FLAGS}
    return {name: flags for name, flags in columns.items() if any(flags)}


def _flags_from_plain(plain: Mapping[str, Any], n: int, field: str) -> list[tuple[bool, ...]]:
    """Back from :func:`_flags_plain`: ``n`` rows of flags (``ValueError`` naming ``field`` when malformed)."""
    columns = []
    for name in FLAGS:
        flags = plain.get(name, [False] * n)
        if not isinstance(flags, list) or len(flags) != n or not all(isinstance(flag, bool) for flag in flags):
            raise ValueError(f"{field}.{name} is invalid: must be a list of {n} booleans")
        columns.append(flags)
    return list(zip(*columns, strict=True)) if n else []


def _cadences_plain(marks: Mapping[str, SeriesMark]) -> dict[str, list]:
    """The series' cadences (tbptt_service.host.cadence) as two columns, only when one was seen (a
    checkpoint written before cadences existed has none: each series learns its own again)."""
    cadences = [mark.cadence for mark in marks.values()]
    if all(c == UNKNOWN for c in cadences):
        return {}
    plain = {"cadence_steps": [c.step for c in cadences], "cadence_runs": [c.run for c in cadences]}
    if any(c.multiples for c in cadences):  # (since session 54; a checkpoint without them reads 0)
        plain["cadence_multiples"] = [c.multiples for c in cadences]
    return plain


def _cadences_from_plain(plain: Mapping[str, Any], n: int) -> list[Cadence]:
    """Back from :func:`_cadences_plain`: ``n`` cadences (``ValueError`` naming the field when malformed).
    ``cadence_off_grid`` is the name a checkpoint from sessions 54-60 gave ``cadence_multiples``."""
    steps, runs = plain.get("cadence_steps", [None] * n), plain.get("cadence_runs", [0] * n)
    named = "cadence_multiples" if "cadence_multiples" in plain else "cadence_off_grid"
    multiples = plain.get(named, [0] * n)
    for field, column in (("cadence_steps", steps), ("cadence_runs", runs), (named, multiples)):
        if not isinstance(column, list) or len(column) != n:
            raise ValueError(f"marks.{field} is invalid: must be a list of {n} items")
    for i, (step, run) in enumerate(zip(steps, runs, strict=True)):
        if step is not None and (
            isinstance(step, bool) or not isinstance(step, int | float) or not 0 < step < math.inf
        ):
            raise ValueError(f"marks.cadence_steps[{i}]={step!r} is invalid: must be null or a positive number")
        whole = not isinstance(run, bool) and isinstance(run, int) and 0 <= run <= MAX_COUNT
        if not whole or (run == 0) != (step is None):
            raise ValueError(
                f"marks.cadence_runs[{i}]={run!r} is invalid: must be an integer in [1, {MAX_COUNT}] beside a "
                "step, 0 beside null"
            )
    for i, (step, count) in enumerate(zip(steps, multiples, strict=True)):
        whole = not isinstance(count, bool) and isinstance(count, int) and 0 <= count < MULTIPLES_RUN
        if not whole or (step is None and count):
            raise ValueError(
                f"marks.{named}[{i}]={count!r} is invalid: must be an integer in [0, {MULTIPLES_RUN - 1}] "
                "beside a step, 0 beside null"
            )
    return [
        Cadence(None if step is None else float(step), run, count)
        for step, run, count in zip(steps, runs, multiples, strict=True)
    ]


def _keys_from_plain(plain: Any) -> tuple[tuple[str, KeyedAnswer], ...]:
    """Back from :func:`_keys_plain`; ``ValueError`` naming what is malformed."""
    try:
        keys, digests, counts, sizes = (plain[k] for k in ("keys", "digests", "update_counts", "sizes"))
        rows = list(zip(plain["series"], plain["results"], plain["updated"], plain["update_count"], strict=True))
        if not len(keys) == len(digests) == len(counts) == len(sizes) or sum(sizes) != len(rows):
            raise ValueError("columns of different lengths")
        flags = _flags_from_plain(plain, len(rows), "keys")
        results = [
            StepResult(series, row[0], row[1], Prediction(*row[2:5]), Prediction(*row[5:8]), updated, count, *flag)
            for (series, row, updated, count), flag in zip(rows, flags, strict=True)
        ]
        out, start = [], 0
        for key, digest, count, size in zip(keys, digests, counts, sizes, strict=True):
            if not isinstance(key, str) or not isinstance(digest, str) or isinstance(count, bool):
                raise ValueError(f"key {key!r} is malformed")
            answer = KeyedAnswer(digest, tuple(results[start : start + size]), tuple(range(size)), int(count))
            out.append((key, answer))
            start += size
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise ValueError(f"the model state's idempotency keys are invalid: {error}") from None
    return tuple(out)


def _recent_plain(saved: SavedRings) -> dict[str, Any]:
    """The rings as columns: the series, their row counts and every row in one float64 tensor."""
    rows = torch.frombuffer(saved.rows, dtype=torch.float64).view(-1, saved.width)  # [sum(counts), 3 + 4 d]
    return {"features": saved.features, "series": list(saved.series), "counts": list(saved.counts), "rows": rows}


def _recent_from_plain(plain: Any, features: Any) -> SavedRings:
    """Back from :func:`_recent_plain` for a model of ``features`` features; ``ValueError`` naming
    what is malformed."""
    try:
        d, series, counts, rows = (plain[key] for key in ("features", "series", "counts", "rows"))
    except (KeyError, TypeError) as error:
        raise ValueError(f"the model state's recent results lack {error}") from None
    if d != features or isinstance(d, bool) or not isinstance(d, int):
        raise ValueError(f"recent.features={d!r} is invalid: the model has {features} feature(s)")
    if (
        not isinstance(series, list)
        or not all(isinstance(name, str) for name in series)
        or len(set(series)) != len(series)
    ):
        raise ValueError("recent.series is invalid: must be a list of distinct names")
    whole = isinstance(counts, list) and all(not isinstance(c, bool) and isinstance(c, int) and c >= 1 for c in counts)
    if not whole or len(counts) != len(series):
        raise ValueError(f"recent.counts is invalid: must be a list of {len(series)} integers >= 1")
    width = 3 + 4 * d
    if not isinstance(rows, torch.Tensor) or rows.dtype != torch.float64 or tuple(rows.shape) != (sum(counts), width):
        shape = tuple(rows.shape) if isinstance(rows, torch.Tensor) else type(rows).__name__
        raise ValueError(f"recent.rows is invalid: must be float64 of shape ({sum(counts)}, {width}), not {shape}")
    steps = rows[:, 0]
    if not bool((steps >= 1).all() and (steps == steps.round()).all() and (steps <= MAX_COUNT).all()):
        raise ValueError("recent.rows is invalid: its steps must be whole numbers >= 1")
    floats = array("d")
    floats.frombytes(memoryview(rows.contiguous().numpy()).cast("B"))  # one copy (tobytes made two: a review's)
    return SavedRings(d, tuple(series), tuple(counts), floats)


def to_plain(state: ModelState) -> dict[str, Any]:
    """The checkpointable form: marks as columns (one list per field, not one object per series);
    the idempotency keys and the recent results, when there are any, likewise."""
    marks = state.marks
    results = [mark.result for mark in marks.values()]
    keys = {"keys": _keys_plain(state.keys)} if state.keys else {}
    recent = {"recent": _recent_plain(state.recent)} if state.recent is not None else {}
    return {
        **keys,
        **recent,
        "name": state.name,
        "seq": state.seq,
        "forecaster": state.forecaster,
        "marks": {
            "series": list(marks),
            "timestamps": [mark.timestamp for mark in marks.values()],
            "results": [_result_row(r) for r in results],  # type: ignore[arg-type]
            "updated": [r.updated for r in results],  # type: ignore[union-attr]
            "update_count": [r.update_count for r in results],  # type: ignore[union-attr]
            **_flags_plain(results),  # type: ignore[arg-type]
            **_cadences_plain(marks),
        },
    }


def from_plain(plain: Any, imported: bool = False) -> ModelState:
    """Back from :func:`to_plain`; ``ValueError`` naming what is missing or malformed (an ``imported``
    state's marks also as observations are held: ``_check_mark``)."""
    try:
        name, seq, forecaster, marks = plain["name"], plain["seq"], plain["forecaster"], plain["marks"]
        columns = [marks[key] for key in ("series", "timestamps", "results", "updated", "update_count")]
    except (KeyError, TypeError) as error:
        raise ValueError(f"the model state lacks {error}: not a model checkpoint") from None
    if (
        not isinstance(name, str)
        or isinstance(seq, bool)
        or not isinstance(seq, int)
        or not isinstance(forecaster, dict)
    ):
        raise ValueError("the model state's name, seq or forecaster has the wrong type")
    if not all(isinstance(column, list) for column in columns) or len({len(column) for column in columns}) != 1:
        raise ValueError("the model state's marks have columns of different lengths")
    rebuilt: dict[str, SeriesMark] = {}
    flags = _flags_from_plain(marks, len(columns[0]), "marks")
    cadences = _cadences_from_plain(marks, len(columns[0]))
    config = forecaster.get("config")
    features = config.get("n_features") if isinstance(config, dict) else None  # (the config is checked at load)
    for i, (series, timestamp, row, updated, update_count) in enumerate(zip(*columns, strict=True)):
        _check_mark(i, series, timestamp, row, updated, update_count, rebuilt, features, imported)
        step, value, *predictions = row
        made, following = Prediction(*predictions[:3]), Prediction(*predictions[3:])
        result = StepResult(series, step, value, made, following, updated, update_count, *flags[i])
        rebuilt[series] = SeriesMark(timestamp, value, result, cadence=cadences[i])
    keys = _keys_from_plain(plain["keys"]) if "keys" in plain else ()
    recent = _recent_from_plain(plain["recent"], features) if "recent" in plain else None
    return ModelState(name, seq, forecaster, rebuilt, keys, recent)


def _is_number(value: Any, finite: bool | None = True) -> bool:
    """A number, not NaN (the library formats a NaN as None), and ``finite`` (an observation's value;
    a forecast of a network gone astray may not be, though an answer holds none); None: any number."""
    plain = isinstance(value, int | float) and not isinstance(value, bool)
    return plain and (finite is None or (math.isfinite(value) if finite else not math.isnan(value)))


def _is_row(value: Any, features: Any = None, finite: bool | None = True) -> bool:
    """A value or prediction as the library formats it for a model of ``features`` features (None:
    not known): a number or None (one feature), None or a list of ``features`` of those."""
    if isinstance(value, list):
        wide = features != 1 and (not isinstance(features, int) or len(value) == features)
        return wide and all(item is None or _is_number(item, finite) for item in value)
    return value is None or _is_number(value, finite)


def _check_mark(
    i: int,
    series: Any,
    timestamp: Any,
    row: Any,
    updated: Any,
    count: Any,
    seen: Mapping,
    features: Any = None,
    imported: bool = False,
) -> None:
    """One series' mark, as ``to_plain`` writes it (``ValueError`` naming the field otherwise). An
    ``imported`` one also as an observation is held (session 49, a hostile test's import: a timestamp
    past the year 9999 made every later value of its series 409, "older"): its timestamp within the
    years 1 to 9999, its value finite, no NaN, one number per feature. A model's own checkpoint is not
    held to those (a review's: a mark of before session 35 may be 1.7e12, milliseconds taken as
    seconds, and its model would be quarantined at recovery)."""
    if not isinstance(series, str) or series in seen:
        raise ValueError(f"marks.series[{i}]={series!r} is invalid: must be a series name, once")
    if not _is_number(timestamp) or (imported and not EARLIEST_TIMESTAMP <= timestamp <= LATEST_TIMESTAMP):
        raise ValueError(
            f"marks.timestamps[{i}]={timestamp!r} is invalid: must be unix seconds"
            + (" within the years 1 to 9999" if imported else "")
        )
    if not isinstance(row, list) or len(row) != 8:
        raise ValueError(f"marks.results[{i}] is invalid: must be [step, value, 3 numbers made, 3 numbers next]")
    step = row[0]
    if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= MAX_COUNT:
        raise ValueError(f"marks.results[{i}][0]={step!r} is invalid: must be a step in [1, {MAX_COUNT}]")
    for j, item in enumerate(row[1:], start=1):
        if not (_is_row(item, features, finite=j == 1) if imported else _is_row(item, None, finite=None)):
            number = "a finite number" if j == 1 else "a number (not NaN)"
            shape = "a list of them" if features is None else f"a list of {features} of them" if features != 1 else ""
            raise ValueError(
                f"marks.results[{i}][{j}]={item!r} is invalid: must be {number} or null"
                + (f", or {shape}" if shape else " (the model has one feature)")
            )
    if not isinstance(updated, bool):
        raise ValueError(f"marks.updated[{i}]={updated!r} is invalid: must be true or false")
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COUNT:
        raise ValueError(f"marks.update_count[{i}]={count!r} is invalid: must be an integer in [0, {MAX_COUNT}]")


def encode_model_checkpoint(state: ModelState) -> bytes:
    """The bytes ``GET /v1/models/{model}/checkpoint`` serves (checksummed, see tbptt_service.storage.checkpoints):
    the model's state without its idempotency keys (another model importing it has requests of its own)
    and without its recent results (an import starts the dashboard's history afresh, and its journal
    record, which holds the bytes, stays the state's size)."""
    plain = to_plain(dataclasses.replace(state, keys=(), recent=None))
    return encode_checkpoint(state.seq, {"format": FORMAT_VERSION, "model": plain})


def decode_model_checkpoint(data: bytes, imported: bool = True) -> ModelState:
    """Verify and read exported bytes: ``CorruptCheckpointError`` (a ``ValueError``) or ``ValueError`` says why
    (``imported``: its marks also as observations are held, ``from_plain``)."""
    state = decode_checkpoint(data).state
    if state.get("format") != FORMAT_VERSION or "model" not in state:
        raise ValueError(f"not a model checkpoint: format={state.get('format')!r}, keys {sorted(state)}")
    model = state["model"]
    if isinstance(model, dict):  # an export holds no recent results (encode_model_checkpoint): any here are not read
        model = {key: value for key, value in model.items() if key != "recent"}
    found = from_plain(model, imported=imported)
    try:
        found.config  # noqa: B018 - validated here, so a bad config is a clear 422
    except (ValueError, TypeError) as error:
        raise ValueError(f"the checkpoint's config is invalid: {error}") from None
    return found


def config_differences(found: ForecasterConfig, expected: ForecasterConfig) -> list[tuple[str, Any, Any]]:
    """(field, found's value, expected's value) of each field where the two configs differ, in field order."""
    pairs = [(f.name, getattr(found, f.name), getattr(expected, f.name)) for f in dataclasses.fields(ForecasterConfig)]
    return [(name, a, b) for name, a, b in pairs if a != b]


def config_mismatch(found: ForecasterConfig, expected: ForecasterConfig) -> str | None:
    """``None`` when equal, else each differing field with both values."""
    differences = [
        f"{name} is {a!r} in the checkpoint, {b!r} in the model" for name, a, b in config_differences(found, expected)
    ]
    return "; ".join(differences) or None


# Base64 a piece of this many bytes at a time (a multiple of 3: the pieces' encodings join into
# the whole's). One b64encode of a 256 MiB import held the GIL for 0.75 s, and with it the event
# loop (a /healthz polled from another process waited 1.0 s during such an import).
IMPORT_ENCODE_PIECE = 3 * 2**18


def import_payload(data: bytes) -> dict[str, Any]:
    """The event-log payload of an imported checkpoint: its exact bytes (base64), applied again as they
    came. Encoded a piece at a time, so that the thread running it lets the event loop in between.

    >>> data = bytes(range(256)) * 10_000  # 2.56 MB: several pieces, the last one short
    >>> import_payload(data) == {"checkpoint": base64.b64encode(data).decode("ascii")}
    True
    """
    view, step = memoryview(data), IMPORT_ENCODE_PIECE
    return {
        "checkpoint": "".join(base64.b64encode(view[i : i + step]).decode("ascii") for i in range(0, len(data), step))
    }


def over_limit(series: int, slots: int, limit: SeriesLimit) -> Conflict:
    """The 409 of an import whose state holds more ``slots`` (its ``series`` and its free slots, each a row
    of the store) than the model may hold series."""
    free = slots - series
    held = f"{series} series" + (f" and {free} free slots" if free else "")
    return Conflict(
        f"checkpoint: it holds {held} and this model may hold {max(limit.count, 0)} here ({limit.reason}); "
        "nothing was imported"
    )


def read_import(
    data: bytes,
    config: ForecasterConfig,
    factory: Callable[[ForecasterConfig], Forecaster] = Forecaster,
    journaled: bool = False,
    slots: SeriesLimit | None = None,
) -> tuple[ModelState, Forecaster]:
    """Exported bytes checked for a model with ``config``: the state and a forecaster holding it.
    ``ValueError`` says what is wrong (a bad checksum, a truncated file, another config). A ``journaled``
    import (recovery replaying the log) is not held to the marks' checks of an import, which it passed or
    came before (session 49: an import journaled earlier, its marks past the years, would have quarantined
    its model at recovery, a review's). ``slots``: how many series the model may hold; a state of more
    slots, live or free, is refused before its forecaster is built, as it would make that many rows
    (a state holds its rows up to its last series, and a load makes the free slots past them blank: a
    hostile test's 0.18 MB state of no series and 5,000 free slots made 300 MB of rows)."""
    state = decode_model_checkpoint(data, imported=not journaled)
    mismatch = config_mismatch(state.config, config)
    if mismatch is not None:
        raise ValueError(f"the checkpoint's config differs from the model's: {mismatch}")
    check_state(state.forecaster)  # every field's meaning, not just its shape (issue 11 defect 6)
    names = state.forecaster["store"]["names"]
    live = {name for name in names if name is not None}
    if slots is not None and len(names) > slots.count:
        raise over_limit(len(live), len(names), slots)
    for i, series in enumerate(state.marks):
        if series not in live:
            raise ValueError(f"marks.series[{i}]={series!r} is invalid: the checkpoint holds no such series")
    try:
        return state, state.build(factory)
    except (TypeError, KeyError, IndexError, RuntimeError) as error:  # checked above; kept a 422 if a case slipped
        raise ValueError(f"the checkpoint's state does not load: {error!r}") from None
