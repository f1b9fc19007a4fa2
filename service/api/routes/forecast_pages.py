"""GET /v1/models/{model}/forecasts: the forecasts of many series, a page at a time.

A dashboard of many series read each one's forecast with a GET of its own (a new user, session 56:
300 series' day-ahead forecasts took 300 requests, 0.51 s a round). A page of series in sorted
order (``offset``, ``limit``, as ``GET .../series-stats``) is forecast in one computation on the
model's forecast lane, from one snapshot of the model, each series' answer as
``GET .../series/{series}/forecast`` gives it (``ForecastOut``: batched with other rows, equal to
it to rounding, as forecasts asked at the same moment are). The answer is sent as it is encoded, a part
after the client took the one before (:mod:`tbptt_service.api.streamed_pages`): a client that does not
read holds the page's packed numbers, not its JSON.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from tbptt_service.api.deps import V1_DEPENDENCIES, V1_PREFIX, ModelDep
from tbptt_service.api.json_answers import OFF_LOOP_NUMBERS
from tbptt_service.api.routes.forecasts import Horizon, Level, check_horizon, forecast_out
from tbptt_service.api.schemas import ERROR_RESPONSES, ForecastPage
from tbptt_service.api.series_pages import After, Limit, Offset, page
from tbptt_service.api.streamed_pages import PackedForecast, PageStream, pack
from tbptt_service.api.strict_json import StrictJSONRoute
from tbptt_service.errors import Unprocessable

# The steps of a page, its series times the horizon times the model's features: 1,000 series a day ahead
# at 15 minutes (96 steps) fit; a page of 1,000 series 1,000 steps ahead (3 million numbers, about 60 MB
# of JSON) is refused, naming the limit.
MAX_PAGE_STEPS = 100_000

router = APIRouter(
    prefix=V1_PREFIX,
    dependencies=V1_DEPENDENCIES,
    tags=["forecasts"],
    responses=ERROR_RESPONSES,
    route_class=StrictJSONRoute,
)


@router.get("/models/{model}/forecasts", response_model=ForecastPage)
async def list_forecasts(
    worker: ModelDep,
    request: Request,
    horizon: Horizon = 1,
    level: Level = None,
    offset: Offset = 0,
    limit: Limit = 100,
    after: After = None,
) -> Response:
    """Each series' forecast (as ``GET .../series/{series}/forecast``), in sorted order, ``limit`` at a time
    from ``offset`` or after the name ``after``; at most ``MAX_PAGE_STEPS`` (100,000) series times horizon times
    features a page."""
    check_horizon(request, horizon)
    features = worker.forecaster.config.n_features
    if limit * horizon * features > MAX_PAGE_STEPS:
        most = MAX_PAGE_STEPS // (horizon * features)  # series a page at this horizon (0: not even one)
        fewer = (
            f"ask for fewer series a page (limit <= {most})"
            if most >= 1
            else f"one series is over it already: ask for horizon <= {MAX_PAGE_STEPS // features:,} a page, or "
            f"for each series' forecast (GET .../series/{{series}}/forecast)"
        )
        raise Unprocessable(
            f"limit={limit} series x horizon={horizon}{f' x {features} features' if features > 1 else ''} is "
            f"{limit * horizon * features:,} forecast steps, over {MAX_PAGE_STEPS:,} a page: {fewer}"
        )
    snapshot = worker.snapshot  # one consistent moment for the whole page
    names = await run_in_threadpool(lambda: snapshot.sorted_series)  # sorting 100k names stays off the loop
    listed, following, cursor = page(names, offset, limit, after)
    started = time.perf_counter()
    requests = [(name, horizon, level) for name in listed]
    answers = await request.app.state.forecasts.forecast_many(
        worker.name, snapshot.view, requests, refused=worker.refused
    )
    worker.metrics.record_forecast(worker.name, time.perf_counter() - started)
    for name, answer in zip(listed, answers, strict=True):
        if isinstance(answer, ValueError):  # (the request was checked above: not expected)
            raise Unprocessable(f"series {name!r}: {answer}")
    marks = snapshot.marks

    def packed() -> list:
        return [pack(answer, marks.get(name)) for name, answer in zip(listed, answers, strict=True)]

    numbers = len(listed) * horizon * features
    pages = packed() if numbers < OFF_LOOP_NUMBERS else await asyncio.to_thread(packed)
    model = worker.name

    def answer(packed: PackedForecast) -> dict:  # ForecastOut, as GET .../series/{series}/forecast answers
        return forecast_out(model, packed.series, packed.unpacked(), packed.mark)

    stream = PageStream(pages, answer, {"total": len(names), "next_offset": following, "next_after": cursor})
    if request.scope.get("http_version") == "1.0":  # no chunked answer: whole, with its length
        return Response(await stream.whole(), media_type="application/json")
    return StreamingResponse(stream, media_type="application/json")  # ForecastPage documents it
