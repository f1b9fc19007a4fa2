"""POST /v1/models/{model}/observations: ingest one observation or a batch.

The request is queued to the model's worker and answered once its batch is
applied (read-your-writes): a GET right after the response sees it. The answer
is built straight from the batch's result lists and encoded by orjson: no
``StepResult`` per element, and no second validation against ``ObservationsOut``
(which documents the shape).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body
from starlette.responses import Response

from service.deps import ModelDep, SettingsDep
from service.errors import Unprocessable
from service.model_snapshot import ObserveOutcome
from service.observation import Observation
from service.schemas import ERROR_RESPONSES, ObservationBatchIn, ObservationsBody, ObservationsOut
from service.strict_json import StrictJSONRoute
from tbptt_online import Prediction, StepResult
from tbptt_online.results import StepResults, TickColumns, TickLists

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


def results_out(outcome: ObserveOutcome, observations: list[Observation]) -> list[dict[str, Any]]:
    """One ``StepResultOut`` dict per observation, read from the batch's tick lists (the worker
    built them); an idempotent repeat of an earlier batch answers with the result it repeats."""
    batch, out = outcome.batch, []
    tick: TickColumns | None = None
    c: TickLists | None = None
    for obs, source in zip(observations, outcome.sources, strict=True):
        if not isinstance(source, int) or not isinstance(batch, StepResults):
            out.append(step_result_out(source if not isinstance(source, int) else batch[source], obs.timestamp))
            continue
        where, i = batch.locate(source)
        if where is not tick:
            tick, c = where, where.lists()
        assert c is not None
        out.append(
            {
                "series": c.names[i],
                "step": c.steps[i],
                "timestamp": obs.timestamp,
                "value": c.values[i],
                "forecast_made": {"mean": c.made_mean[i], "lower": c.made_lower[i], "upper": c.made_upper[i]},
                "forecast_next": {"mean": c.next_mean[i], "lower": c.next_lower[i], "upper": c.next_upper[i]},
                "updated": c.updated[i],
                "update_count": c.update_count,
            }
        )
    return out


@router.post("/models/{model}/observations", response_model=ObservationsOut)
async def post_observations(
    body: Annotated[ObservationsBody, Body()], worker: ModelDep, settings: SettingsDep
) -> Response:
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
    payload = {"results": results_out(outcome, observations), "update_count": outcome.update_count}
    return Response(orjson.dumps(payload), media_type="application/json")
