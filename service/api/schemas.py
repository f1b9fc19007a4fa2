"""The JSON shapes of the API (requests checked here; responses documented here).

Numbers are checked strictly: a value is a finite JSON number, a list of them
(``null`` for a missing feature) or ``null``; strings and booleans are refused,
not coerced. (JSON ``NaN``/``Infinity`` never get this far: the body parser
refuses them as malformed JSON.)

>>> ObservationIn.model_validate({"series": "a", "value": [1, None], "timestamp": "1970-01-01T00:01:00Z"})
ObservationIn(series='a', value=[1.0, None], timestamp=60.0)
>>> try:
...     ObservationIn.model_validate({"series": "a", "value": "1.5"})
... except ValueError as error:
...     print(error.errors()[0]["msg"])
Value error, "1.5" is not a number, a list of numbers or null
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, WithJsonSchema

from tbptt_online.config import INT_BOUNDS
from tbptt_online.series_store import MAX_NAME_LENGTH
from tbptt_online.values import MAX_ABS_VALUE
from tbptt_service.api.config_schema import config_json_schema
from tbptt_service.api.series_names import series_name_problem
from tbptt_service.errors import quoted
from tbptt_service.storage.observation import Observation, parse_timestamp

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MODEL_NAME_RULE = "1 to 64 letters, digits, '_', '.' or '-', the first a letter or digit"  # the pattern, said
Row = float | list[float | None] | None  # as the library formats values: a float when d = 1
MAX_FEATURES = INT_BOUNDS["n_features"][1]  # the most numbers a value's list may hold


def _finite(item: Any, value: Any) -> float:
    if isinstance(item, bool) or not isinstance(item, int | float):
        raise ValueError(f"{quoted(value)} is not a number, a list of numbers or null")
    try:
        number = float(item)
    except OverflowError:
        raise ValueError(f"{quoted(value)} is too large for a 64-bit float") from None
    if not math.isfinite(number):
        raise ValueError(f"{quoted(value)} is not finite; only finite numbers or null")
    if abs(number) > MAX_ABS_VALUE:  # fix: 1e308 then -1e308 made the series serve null forever
        raise ValueError(f"{quoted(value)} is out of range: a value's magnitude must be at most {MAX_ABS_VALUE:g}")
    return number


def _check_value(value: Any) -> float | list[float | None] | None:
    if value is None:
        return None
    if isinstance(value, list):
        if len(value) > MAX_FEATURES:  # fix: 2,000,000 numbers held the event loop 3-10 s before a 422
            raise ValueError(too_many_features(len(value)))
        return [None if item is None else _finite(item, value) for item in value]
    return _finite(value, value)


def too_many_features(count: int) -> str:
    return f"a value is a list of {count} numbers: at most {MAX_FEATURES} (a model's largest n_features)"


def _check_series(name: str) -> str:
    problem = series_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return name


def _check_timestamp(value: Any) -> float | None:
    return None if value is None else parse_timestamp(value)


ValueIn = Annotated[
    Any,
    BeforeValidator(_check_value),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": -MAX_ABS_VALUE, "maximum": MAX_ABS_VALUE},
                {
                    "type": "array",
                    "maxItems": MAX_FEATURES,
                    "items": {
                        "anyOf": [
                            {"type": "number", "minimum": -MAX_ABS_VALUE, "maximum": MAX_ABS_VALUE},
                            {"type": "null"},
                        ]
                    },
                },
                {"type": "null"},
            ],
            "description": "A number (n_features = 1), a list of n_features numbers (null = missing), or null; "
            f"a number's magnitude is at most {MAX_ABS_VALUE:g}.",
        }
    ),
]
TimestampIn = Annotated[
    Any,
    BeforeValidator(_check_timestamp),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}, {"type": "null"}],
            "description": "Unix seconds or ISO-8601; must increase per series (a repeat with the same value "
            "is idempotent). Returned as unix seconds.",
        }
    ),
]


class ObservationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    series: Annotated[str, AfterValidator(_check_series)] = Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="The series' name: 1 to 200 characters, not ending in '/forecast' or '/recent', not '.' or '..'.",
    )
    value: ValueIn
    timestamp: TimestampIn = None

    def to_observation(self) -> Observation:
        return Observation(self.series, self.value, self.timestamp)


class ObservationBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    observations: list[ObservationIn] = Field(min_length=1)


def _body_kind(body: Any) -> str:
    return "batch" if isinstance(body, dict) and "observations" in body else "single"


ObservationsBody = Annotated[
    Annotated[ObservationBatchIn, Tag("batch")] | Annotated[ObservationIn, Tag("single")],
    Discriminator(_body_kind),
]


class ModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=MODEL_NAME_PATTERN, description="Letters, digits, '_', '.', '-'; at most 64.")
    # the library checks the values; the schema names the fields (an unknown one is refused)
    config: Annotated[dict[str, Any], WithJsonSchema(config_json_schema())] = Field(default_factory=dict)


class UpdateStatsOut(BaseModel):
    updates: int
    skipped: int
    last_loss: float | None
    last_grad_norm: float | None
    last_window: int | None = Field(None, description="K_t: the window of the last update (k2, or the adaptive one).")
    lr: float | None = Field(None, description="The learning rate in force (the guards may have backed it off).")
    explosions: int = Field(0, description="Updates whose gradient was clipped harder (far above its running median).")
    divergences: int = Field(0, description="Loss or served error trending up: rolled back.")
    blowups: int = Field(0, description="Forecasts beyond a sane multiple of the targets: rolled back.")
    rollbacks: int = Field(0, description="Weights restored to the last good copy.")


class TruncationOut(BaseModel):
    k1: int
    k2: int | str
    window: int = Field(description="The window the updates use now.")
    probe_length: int
    probes: int
    reach: list[float] = Field(description="Mean ||dL_t/dh_{t-k}||, k = 1 .. probe_length ([] before a probe).")
    decay_rate: float | None
    relative_bias: float | None = Field(description="Of the window in force; null before a probe or when unbounded.")
    measured_bias: float | None = Field(
        None, description="The same, measured on the probe's windows (within its probe_length steps); null before."
    )
    dependencies: dict[str, int] = Field(
        description="Followed series -> dependency length: its longest season or significant lag (0: none)."
    )
    seasons: dict[int, int] = Field(description="First season length -> series (hybrid; 0: none).")
    recommended_k2: int
    cost_ratio: float
    extra_bytes_per_series: int
    too_short: bool = Field(description="The window cannot reach a dependency found in the data: a wall.")
    biased: bool = Field(
        description="The window's estimated relative truncation bias is not below truncation_bias "
        "(the gradient leaves out a share of the full one: learning is slowed, not walled)."
    )
    verdict: str
    recent_windows: list[int]


class ModelInfo(BaseModel):
    name: str
    config: dict[str, Any]
    series_count: int
    observations: int
    updates: UpdateStatsOut


class QuarantinedModel(BaseModel):
    name: str
    reason: str = Field(description="Why recovery could not rebuild its state; it answers 503 until deleted.")


class ModelList(BaseModel):
    models: list[ModelInfo]
    quarantined: list[QuarantinedModel] = Field(default_factory=list)


class PredictionOut(BaseModel):
    mean: Row
    lower: Row
    upper: Row


class StepResultOut(BaseModel):
    series: str
    step: int = Field(description="The series' step count after this value.")
    timestamp: float | None
    value: Row
    forecast_made: PredictionOut = Field(description="What had been forecast for this value before it arrived.")
    forecast_next: PredictionOut = Field(description="The new one-step forecast, made after any update.")
    updated: bool
    update_count: int
    outlier: bool = Field(
        default=False,
        description="The value (any of its features) was far outside the interval served for it (a spike, by the "
        "model's judgement): the model learned from it at the interval's bound; it is still scored as it came "
        "(the hybrid's outliers).",
    )
    held: bool = Field(
        default=False,
        description="The value (any of its features) repeated a stuck reading past what the series' own repeats "
        "make probable: held back as missing (neither learned from nor scored), reported as sent "
        "(`flat_improbable`; the series' stats count them in `held`).",
    )


class ObservationsOut(BaseModel):
    results: list[StepResultOut]
    update_count: int = Field(description="The model's update counter after the batch that applied the request.")


class ForecastStep(BaseModel):
    step: int
    timestamp: float | None = Field(
        default=None,
        description="When the step is due (unix seconds): the series' last timestamp plus whole steps of its cadence, "
        "once the cadence is known and the series' last value was timestamped; else null.",
    )
    mean: Row
    lower: Row
    upper: Row


class ForecastOut(BaseModel):
    model: str
    series: str
    horizon: int
    level: float
    step: int = Field(description="The series' step count the forecast was made from.")
    update_count: int = Field(description="The model's update counter the forecast was made from.")
    forecast: list[ForecastStep]


class ForecastPage(BaseModel):
    """One page of a model's forecasts, in the series' sorted order (``GET .../forecasts``)."""

    forecasts: list[ForecastOut]
    total: int
    next_offset: int | None
    next_after: str | None = Field(
        default=None,
        description="The page's last name when more follow (null: the last page): the next page's `after`.",
    )


class SeriesList(BaseModel):
    series: list[str]
    total: int
    next_offset: int | None
    next_after: str | None = Field(
        default=None,
        description="The page's last name when more follow (null: the last page): the next page's `after`.",
    )


class MemberOut(BaseModel):
    name: str = Field(description="A member of the hybrid's combination (an expert, or 'network').")
    mae: float | None = Field(description="Its one-step MAE so far (None until scored).")
    weight: float = Field(description="Its weight in the one-step forecast now.")


class HorizonCoverageOut(BaseModel):
    horizon: int = Field(
        description="Steps ahead: 1 .. calibrated_horizon, then the far horizons (2 and 4 times it, up to 1,000)."
    )
    coverage: float | None = Field(
        description="The share of the values (as sent) that fell within the interval served for them this many steps "
        "before, at the model's interval_level (None until one was scored)."
    )
    scored: int = Field(
        description="The forecasts scored at this horizon: those served with a width of the horizon's own (its first "
        "ones, served a shorter horizon's width, are not counted), over the series' whole life."
    )
    recent: float | None = Field(
        description="The coverage over about the last 100 scored at this horizon (each earlier one weighs 0.99 times "
        "the next): where the calibration stands now."
    )


class SeriesStatsOut(BaseModel):
    series: str
    count: int
    last_timestamp: float | None
    mae: float | None
    rmse: float | None
    naive_mae: float | None
    naive_rmse: float | None
    coverage: float | None
    interval_level: float
    recent_mae: float | None = Field(
        default=None,
        description="The one-step MAE over about the last 100 values (each earlier one weighs 0.99 times the next; of "
        "the values that had a value before them): how the model does now, where `mae` is the whole life's.",
    )
    recent_naive_mae: float | None = Field(
        default=None, description="The naive (last value) forecast's MAE over the same values, weighed alike."
    )
    flat_run: int = Field(
        default=0,
        description="The values in a row now equal to the one before (any feature's longest run; 0 never makes one).",
    )
    held: int = Field(
        default=0,
        description="The values held back as missing so far: repeats of a stuck value, a run improbable for the "
        "series' own rate of repeats and longer than twice its longest before (all features).",
    )
    seasons: list[int] = Field(default_factory=list, description="Season lengths in use ([] = none found yet).")
    multiplicative: bool | None = Field(
        default=None,
        description="Whether the log (multiplicative) members are on: every value so far > 0 (as the model took "
        "it: an outlier at its interval's bound).",
    )
    never_negative: bool | None = Field(
        default=None,
        description="Whether every value so far was >= 0 (as the model took it; the first feature's): while it "
        "holds, no forecast and no interval's lower bound is served below 0.",
    )
    members: list[MemberOut] = Field(default_factory=list, description="The hybrid's members: MAE and weight.")
    outliers: int | None = Field(
        default=None,
        description="Values (per feature) flagged far outside their served interval: learned from at the "
        "interval's bound (a spike; a run of them on one side is a level shift and is learned from as it came), or "
        "taken as they came where past errors as large let them through but they lay more than 3 times the bound's "
        "sigmas away.",
    )
    restarts: int = Field(
        default=0,
        description="Times the series' model state started again: because its forecast blew up (not finite, or "
        "beyond 1e6 times its scale), or, at its fifth value, from its second, its first a glitch (more than 10 times "
        "the next changes away): its statistics and step go on.",
    )
    cadence: float | None = Field(
        default=None,
        description="Seconds between the series' timestamped values, once known (8 in a row within 25 %): a value "
        "that comes whole steps later is preceded by the missing steps (null values). null: not known (no "
        "timestamps, too few, or irregular).",
    )
    coverage_by_horizon: list[HorizonCoverageOut] = Field(
        default_factory=list,
        description="The interval's coverage at each horizon (the hybrid's; `coverage` is the one-step one): a series "
        "poorly served at the horizons you alert on shows here.",
    )


class SeriesStatsPage(BaseModel):
    """One page of a model's series statistics, in the series' sorted order (``GET .../series-stats``)."""

    series: list[SeriesStatsOut]
    total: int
    next_offset: int | None
    next_after: str | None = Field(
        default=None,
        description="The page's last name when more follow (null: the last page): the next page's `after`.",
    )


class ErrorOut(BaseModel):
    detail: str = Field(description="What is wrong, naming the field or element.")
    index: int | None = Field(None, description="The first bad element of an observations batch.")
    errors: list[dict[str, Any]] | None = Field(
        None, description="The first 5 problems, each {loc, msg, type} (a 422's, or a 409's refused elements)."
    )
    error_count: int | None = Field(None, description="How many problems there are in all.")
    refused: list[int] | None = Field(
        None, description="A 409 of a batch's elements: every refused element's index (drop them, send the rest)."
    )


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text}
    for code, text in {
        401: "Missing or wrong API key",
        404: "Unknown model or series",
        409: "Conflicts with the model's state (timestamps, caps, names)",
        413: "Body over max_body_bytes",
        422: "Invalid input (the body names the problem and the element index)",
        503: "Still loading state, or the journal's log cannot be written (an I/O error) or reached",
        507: "The journal cannot record the batch (disk full, disk quota, file size limit)",
    }.items()
}
JSON_BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    415: {"model": ErrorOut, "description": "The body is declared as something else than JSON (Content-Type)"}
}
