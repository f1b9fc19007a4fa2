"""/v1/models/{model}/series: list (paged), read statistics, forget; /v1/models/{model}/series-stats: the
statistics of many series, a page at a time."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Response, status
from starlette.concurrency import run_in_threadpool

from tbptt_service.api.deps import V1_DEPENDENCIES, V1_PREFIX, ModelDep
from tbptt_service.api.query_numbers import plain_numbers
from tbptt_service.api.schemas import ERROR_RESPONSES, SeriesList, SeriesStatsOut, SeriesStatsPage
from tbptt_service.api.series_pages import After, Limit, Offset, page
from tbptt_service.api.series_path import SERIES
from tbptt_service.api.strict_json import StrictJSONRoute
from tbptt_service.errors import NotFound
from tbptt_service.host.model_snapshot import ModelSnapshot

router = APIRouter(
    prefix=V1_PREFIX,
    dependencies=V1_DEPENDENCIES,
    tags=["series"],
    responses=ERROR_RESPONSES,
    route_class=StrictJSONRoute,
)


@router.get("/models/{model}/series", response_model=SeriesList, dependencies=[Depends(plain_numbers)])
async def list_series(worker: ModelDep, offset: Offset = 0, limit: Limit = 100, after: After = None) -> dict:
    """Series names in sorted order, ``limit`` at a time from ``offset`` or from the first name after ``after``."""
    snapshot = worker.snapshot
    names = await run_in_threadpool(lambda: snapshot.sorted_series)  # sorting 100k names stays off the loop
    listed, following, cursor = page(names, offset, limit, after)
    return {"series": listed, "total": len(names), "next_offset": following, "next_after": cursor}


@router.get("/models/{model}/series/" + SERIES, response_model=SeriesStatsOut)
async def get_series(series: str, worker: ModelDep) -> Response:
    """Count, last timestamp and prequential accuracy (MAE/RMSE vs the naive forecast, coverage)."""
    snapshot = worker.snapshot
    if series not in snapshot.view.slots:
        raise NotFound(f"series {series!r} is unknown in model {worker.name!r}")
    body = await run_in_threadpool(lambda: orjson.dumps(_stats_out(snapshot, series)))
    return Response(body, media_type="application/json")  # SeriesStatsOut documents it


@router.get("/models/{model}/series-stats", response_model=SeriesStatsPage, dependencies=[Depends(plain_numbers)])
async def list_series_stats(worker: ModelDep, offset: Offset = 0, limit: Limit = 100, after: After = None) -> Response:
    """Each series' statistics (as ``GET .../series/{series}``), in sorted order, ``limit`` at a time from
    ``offset``: which series a model serves poorly, in one request a page (a new user, session 55, read them one
    GET per series). Made and encoded on a worker thread: FastAPI validated a returned dict against the
    response model on the event loop, 0.5 s for a page of 1,000, and 8 readers of pages held every other
    request for up to 4.8 s (a hostile test, session 57)."""
    snapshot = worker.snapshot
    if after is not None and offset:
        page([], offset, limit, after)  # its 422, on the event loop (a thread's raise would be a 500)

    def stats_page() -> bytes:  # (on a worker thread: sorting the names, reading a page of stats, encoding it)
        names = snapshot.sorted_series
        listed, following, cursor = page(names, offset, limit, after)
        stats = [_stats_out(snapshot, name) for name in listed]
        return orjson.dumps({"series": stats, "total": len(names), "next_offset": following, "next_after": cursor})

    return Response(await run_in_threadpool(stats_page), media_type="application/json")  # SeriesStatsPage documents it


def _stats_out(snapshot: ModelSnapshot, series: str) -> dict:
    """The statistics answer of one series known to the model's ``snapshot``."""
    stats = snapshot.view.series_stats(series)
    mark = snapshot.marks.get(series)
    return {
        "series": series,
        "count": stats.count,
        "last_timestamp": None if mark is None else mark.timestamp,
        "mae": stats.mae,
        "rmse": stats.rmse,
        "naive_mae": stats.naive_mae,
        "naive_rmse": stats.naive_rmse,
        "coverage": stats.coverage,
        "interval_level": stats.interval_level,
        "recent_mae": stats.recent_mae,
        "recent_naive_mae": stats.recent_naive_mae,
        "flat_run": stats.flat_run,
        "held": stats.held,
        "seasons": stats.seasons,
        "multiplicative": stats.multiplicative,
        "never_negative": stats.never_negative,
        "members": [{"name": m.name, "mae": m.mae, "weight": m.weight} for m in stats.members],
        "outliers": stats.outliers,
        "restarts": stats.restarts,
        "cadence": mark.cadence.step if mark is not None and mark.cadence.known else None,
        "coverage_by_horizon": [
            {"horizon": c.horizon, "coverage": c.coverage, "scored": c.scored, "recent": c.recent}
            for c in stats.coverage_by_horizon
        ],
    }


@router.delete("/models/{model}/series/" + SERIES, status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_series(series: str, worker: ModelDep) -> Response:
    """Forget a series and everything the model keeps for it (the weights stay)."""
    await worker.forget(series)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
