"""GET /v1/models/{model}/series/{series}/recent: the last values with the forecasts made for them.

What the dashboard draws: each recent value of a series next to the one-step
forecast (mean and interval) that the model had served for it before it arrived.
Read from the model's :class:`~tbptt_service.host.recent_results.RecentResults` (kept in
memory, the last ``DEFAULT_CAPACITY`` per series); no torch work runs here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from tbptt_service.api.deps import V1_DEPENDENCIES, V1_PREFIX, ModelDep
from tbptt_service.api.query_numbers import plain_numbers
from tbptt_service.api.schemas import ERROR_RESPONSES, PredictionOut, Row
from tbptt_service.api.series_path import SERIES
from tbptt_service.errors import NotFound
from tbptt_service.host.recent_results import DEFAULT_CAPACITY

router = APIRouter(prefix=V1_PREFIX, dependencies=V1_DEPENDENCIES, tags=["series"], responses=ERROR_RESPONSES)


class RecentPointOut(BaseModel):
    step: int = Field(description="The series' step count after this value.")
    timestamp: float | None = Field(description="Unix seconds, when the observation carried a timestamp.")
    value: Row
    forecast_made: PredictionOut = Field(description="The one-step forecast served for this value before it arrived.")
    outlier: bool = Field(
        default=False, description="The model learned from the value at its interval's bound (a spike to it)."
    )


class RecentOut(BaseModel):
    model: str
    series: str
    observations: list[RecentPointOut] = Field(description="Oldest first.")


@router.get(
    "/models/{model}/series/" + SERIES + "/recent", response_model=RecentOut, dependencies=[Depends(plain_numbers)]
)
async def get_recent(
    series: str,
    worker: ModelDep,
    limit: Annotated[int, Query(ge=1, le=DEFAULT_CAPACITY, description="How many of the last values.")] = 200,
) -> dict:
    if series not in worker.snapshot.view.slots:
        raise NotFound(f"series {series!r} is unknown in model {worker.name!r}")
    points = worker.recent.read(series, limit)
    return {
        "model": worker.name,
        "series": series,
        "observations": [
            {
                "step": p.step,
                "timestamp": p.timestamp,
                "value": p.value,
                "forecast_made": {
                    "mean": p.forecast_made.mean,
                    "lower": p.forecast_made.lower,
                    "upper": p.forecast_made.upper,
                },
                "outlier": p.outlier,
            }
            for p in points
        ],
    }
