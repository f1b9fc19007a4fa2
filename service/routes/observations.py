"""POST /v1/models/{model}/observations: ingest one observation or a batch.

The request is queued to the model's worker and answered once its batch is
applied (read-your-writes): a GET right after the response sees it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from service.deps import ModelDep, SettingsDep
from service.errors import Unprocessable
from service.schemas import ERROR_RESPONSES, ObservationBatchIn, ObservationsBody, ObservationsOut
from service.strict_json import StrictJSONRoute
from tbptt_online import Prediction, StepResult

router = APIRouter(tags=["observations"], responses=ERROR_RESPONSES, route_class=StrictJSONRoute)


def _prediction(p: Prediction) -> dict:
    return {"mean": p.mean, "lower": p.lower, "upper": p.upper}


def step_result_out(result: StepResult, timestamp: float | None) -> dict:
    return {
        "series": result.series,
        "step": result.step,
        "timestamp": timestamp,
        "value": result.value,
        "forecast_made": _prediction(result.forecast_made),
        "forecast_next": _prediction(result.forecast_next),
        "updated": result.updated,
        "update_count": result.update_count,
    }


@router.post("/models/{model}/observations", response_model=ObservationsOut)
async def post_observations(body: Annotated[ObservationsBody, Body()], worker: ModelDep, settings: SettingsDep) -> dict:
    """Apply ``{series, value, timestamp?}`` or ``{observations: [...]}`` atomically, in order.

    Per observation: the forecast that had been made for it, the new one-step
    forecast and the model's update counter. A repeated timestamp with the same
    value returns the first result and learns nothing twice.
    """
    items = body.observations if isinstance(body, ObservationBatchIn) else [body]
    if len(items) > settings.max_batch_observations:
        raise Unprocessable(
            f"observations has {len(items)} elements; max_batch_observations={settings.max_batch_observations}"
        )
    observations = [item.to_observation() for item in items]
    outcome = await worker.observe(observations)
    return {
        "results": [
            step_result_out(result, obs.timestamp) for result, obs in zip(outcome.results, observations, strict=True)
        ],
        "update_count": outcome.update_count,
    }
