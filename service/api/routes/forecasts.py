"""GET /v1/models/{model}/series/{series}/forecast: a multi-step forecast with intervals.

Computed on the model's forecast thread (its lane, :class:`~tbptt_service.host.forecast_lanes.ForecastLanes`,
batched with the model's other forecasts waiting at the same moment) from the model's latest
published snapshot, so it never waits for an update in progress
and the event loop runs no torch work. The answer is encoded by orjson straight from the
forecast's lists (``ForecastOut`` documents it). A query of plain ``horizon`` and
``level`` takes the route's fast path (:mod:`tbptt_service.api.fast_route`); anything else,
errors included, goes through FastAPI's validation as before.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from tbptt_online.config import MAX_LEVEL
from tbptt_online.results import Forecast
from tbptt_service.api.deps import V1_PREFIX, ModelDep, serving_registry
from tbptt_service.api.fast_route import fast_path
from tbptt_service.api.json_answers import json_answer
from tbptt_service.api.query_numbers import plain_numbers
from tbptt_service.api.schemas import ERROR_RESPONSES, ForecastOut
from tbptt_service.api.series_path import SERIES
from tbptt_service.errors import NotFound, Unprocessable
from tbptt_service.host.admission import SeriesMark
from tbptt_service.host.model_worker import ModelWorker
from tbptt_service.settings import Settings
from tbptt_service.storage.observation import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP

_HORIZON = re.compile(rb"[1-9][0-9]{0,8}")
_LEVEL = re.compile(rb"0\.[0-9]{1,17}")


def plain_query(query: bytes) -> tuple[int, float | None] | None:
    """``horizon`` and ``level`` from a query string holding nothing else, each at most once, in
    plain digits (``horizon=12&level=0.8``); None for anything else (FastAPI's full path).

    >>> plain_query(b"horizon=12&level=0.8"), plain_query(b""), plain_query(b"horizon=012"), plain_query(b"level=0.0")
    ((12, 0.8), (1, None), None, None)
    >>> plain_query(b"level=0.9999999999999999")  # over MAX_LEVEL: the full path answers 422
    """
    horizon, level = 1, None
    if not query:
        return horizon, level
    seen = set()
    for pair in query.split(b"&"):
        name, _, raw = pair.partition(b"=")
        if name in seen:
            return None
        seen.add(name)
        if name == b"horizon" and _HORIZON.fullmatch(raw):
            horizon = int(raw)
        elif name == b"level" and _LEVEL.fullmatch(raw) and 0.0 < float(raw) <= MAX_LEVEL:
            level = float(raw)
        else:
            return None
    return horizon, level


# A forecast's query parameters (this route's and the page route's, ``forecast_pages``)
Horizon = Annotated[int, Query(ge=1, description="Steps ahead (at most max_horizon).")]
Level = Annotated[
    float | None,
    Query(
        gt=0,
        le=MAX_LEVEL,
        allow_inf_nan=False,  # fix: level=nan was told "less than or equal to 0.999999999"
        description=f"Interval level in (0, {MAX_LEVEL}] (default: the model's).",
    ),
]


def check_horizon(request: Request, horizon: int) -> None:
    """422 for a ``horizon`` past ``TBPTT_MAX_HORIZON``."""
    settings: Settings = request.app.state.settings  # read here: a dependency costs more per request
    if horizon > settings.max_horizon:
        raise Unprocessable(f"horizon={horizon} is over TBPTT_MAX_HORIZON={settings.max_horizon}")


async def forecast_response(
    request: Request, worker: ModelWorker, series: str, horizon: int, level: float | None
) -> Response:
    """Compute a forecast from the model's latest snapshot and answer it (both paths)."""
    check_horizon(request, horizon)
    if level is not None and not 0.0 < level <= MAX_LEVEL:  # both paths refuse it before; kept as the rule's home
        raise Unprocessable(f"level={level!r} is invalid: must be in (0, {MAX_LEVEL}]")
    snapshot = worker.snapshot  # one consistent moment, whatever the worker does next
    if series not in snapshot.view.slots:
        raise NotFound(f"series {series!r} is unknown in model {worker.name!r}")
    started = time.perf_counter()
    try:
        forecast = await request.app.state.forecasts.forecast(
            worker.name, snapshot.view, series, horizon, level, refused=worker.refused
        )
    except ValueError as error:  # the library's refusal of this request alone (the others of its batch are answered)
        raise Unprocessable(str(error)) from None
    worker.metrics.record_forecast(worker.name, time.perf_counter() - started)
    payload = forecast_out(worker.name, series, forecast, snapshot.marks.get(series))
    numbers = horizon * worker.forecaster.config.n_features  # a wide model's long forecast: encoded off the loop
    return await json_answer(lambda: orjson.dumps(payload), numbers)  # ForecastOut documents it


def forecast_out(model: str, series: str, forecast: Forecast, mark: SeriesMark | None) -> dict[str, Any]:
    """The answer of one series' forecast (``ForecastOut``): each step's values and when it is due."""
    horizon = len(forecast.mean)
    moments = _moments(mark, forecast.step, horizon)
    return {
        "model": model,
        "series": series,
        "horizon": horizon,
        "level": forecast.level,
        "step": forecast.step,
        "update_count": forecast.update_count,
        "forecast": [
            {
                "step": k + 1,
                "timestamp": moments[k],
                "mean": forecast.mean[k],
                "lower": forecast.lower[k],
                "upper": forecast.upper[k],
            }
            for k in range(horizon)
        ],
    }


def _moments(mark: SeriesMark | None, step: int, horizon: int) -> list[float | None]:
    """When each forecast step is due: the series' last timestamp plus whole steps of its cadence,
    when the cadence is known and the forecast starts at that timestamped value (else nulls); null
    past the year 9999, which no timestamp sent may pass (a hostile test, session 48: a cadence of
    2.5e10 s served due times up to 2.5e13 at h = 1,000, which the API refuses when sent back), and
    where it is not after the step before (a cadence too fine for the timestamp's float)."""
    if mark is None or not mark.cadence.known or mark.result is None or mark.result.step != step:
        return [None] * horizon
    cadence = mark.cadence.step
    assert cadence is not None
    out: list[float | None] = []
    before = mark.timestamp
    for k in range(1, horizon + 1):
        moment = mark.timestamp + k * cadence
        # null where a step does not move the time (a cadence below the timestamp's resolution: a
        # cadence of 1e-300 kept across a gap, or imported, served every step the same due time)
        placed = before < moment and EARLIEST_TIMESTAMP <= moment <= LATEST_TIMESTAMP
        out.append(moment if placed else None)
        before = moment if placed else before
    return out


async def get_plain_forecast(request: Request) -> Response | None:
    """The fast path: a query of plain ``horizon`` / ``level`` (``plain_query``); None for anything
    else, which FastAPI's full handler validates and answers (errors included)."""
    query = plain_query(request.scope["query_string"])
    if query is None:
        return None
    params = request.path_params
    worker = serving_registry(request).get(params["model"])  # 503 / 404, as ModelDep
    return await forecast_response(request, worker, params["series"], *query)


# No router-level readiness dependency: the route checks it (ModelDep, or the fast path itself).
# No StrictJSONRoute: a GET has no body to parse.
router = APIRouter(
    prefix=V1_PREFIX, tags=["forecasts"], responses=ERROR_RESPONSES, route_class=fast_path(get_plain_forecast)
)


@router.get(
    "/models/{model}/series/" + SERIES + "/forecast", response_model=ForecastOut, dependencies=[Depends(plain_numbers)]
)
async def get_forecast(
    series: str,
    worker: ModelDep,
    request: Request,
    horizon: Horizon = 1,
    level: Level = None,
) -> Response:
    return await forecast_response(request, worker, series, horizon, level)
