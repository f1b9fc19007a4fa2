"""GET /v1/models/{model}/series/{series}/forecast: a multi-step forecast with intervals.

Computed on the app's forecast thread (:class:`~service.forecast_runner.ForecastRunner`)
from the model's latest published snapshot, so it never waits for an update in progress
and the event loop runs no torch work. The answer is encoded by orjson straight from the
forecast's lists (``ForecastOut`` documents it).
"""

from __future__ import annotations

import time
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from service.deps import V1_PREFIX, ModelDep
from service.errors import NotFound, Unprocessable
from service.schemas import ERROR_RESPONSES, ForecastOut
from service.settings import Settings

# No router-level readiness dependency: ModelDep checks it (one dependency per request less).
# No StrictJSONRoute: a GET has no body to parse.
router = APIRouter(prefix=V1_PREFIX, tags=["forecasts"], responses=ERROR_RESPONSES)


@router.get("/models/{model}/series/{series:path}/forecast", response_model=ForecastOut)
async def get_forecast(
    series: str,
    worker: ModelDep,
    request: Request,
    horizon: Annotated[int, Query(ge=1, description="Steps ahead (at most max_horizon).")] = 1,
    level: Annotated[float | None, Query(gt=0, lt=1, description="Interval level (default: the model's).")] = None,
) -> Response:
    settings: Settings = request.app.state.settings  # read here: a dependency costs more per request
    if horizon > settings.max_horizon:
        raise Unprocessable(f"horizon={horizon} is over max_horizon={settings.max_horizon}")
    snapshot = worker.snapshot  # one consistent moment, whatever the worker does next
    if series not in snapshot.view.slots:
        raise NotFound(f"series {series!r} is unknown in model {worker.name!r}")
    started = time.perf_counter()
    forecast = await request.app.state.forecasts.run(snapshot.view.forecast, series, horizon, level)
    worker.metrics.record_forecast(worker.name, time.perf_counter() - started)
    payload = {
        "model": worker.name,
        "series": series,
        "horizon": horizon,
        "level": forecast.level,
        "step": forecast.step,
        "update_count": forecast.update_count,
        "forecast": [
            {"step": k + 1, "mean": forecast.mean[k], "lower": forecast.lower[k], "upper": forecast.upper[k]}
            for k in range(horizon)
        ],
    }
    return Response(orjson.dumps(payload), media_type="application/json")  # ForecastOut documents it
