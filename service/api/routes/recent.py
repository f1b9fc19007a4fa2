"""GET /v1/models/{model}/series/{series}/recent: the last values with the forecasts made for them.

What the dashboard draws: each recent value of a series next to the one-step
forecast (mean and interval) that the model had served for it before it arrived.
Read from the model's :class:`~tbptt_service.host.recent_results.RecentResults` (kept in
memory, the last ``DEFAULT_CAPACITY`` per series); no torch work runs here.
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from starlette.responses import Response

from tbptt_service.api.deps import V1_DEPENDENCIES, V1_PREFIX, ModelDep
from tbptt_service.api.json_answers import json_answer
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
    held: bool = Field(
        default=False,
        description="A stuck value's repeat, held back as missing: neither learned from nor scored "
        "(`flat_improbable`).",
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
) -> Response:
    if series not in worker.snapshot.view.slots:
        raise NotFound(f"series {series!r} is unknown in model {worker.name!r}")

    def encode() -> bytes:
        points = worker.recent.read(series, limit)
        return orjson.dumps(
            {
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
                        "held": p.held,
                    }
                    for p in points
                ],
            }
        )

    # read and encoded off the event loop when large: 500 values of a 1,024-feature series are 35.5 MB, which
    # held /healthz for up to 0.47 s on the loop (a hostile test, session 50)
    numbers = limit * (3 + 4 * worker.snapshot.view.config.n_features)
    return await json_answer(encode, numbers)  # RecentOut documents it
