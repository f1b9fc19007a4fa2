"""/v1/models: create, list, read and delete models."""

from __future__ import annotations

import dataclasses
import math

from fastapi import APIRouter, Request, Response, status

from tbptt_online import ConfigValueError, ForecasterConfig, TruncationReport
from tbptt_service.api.config_schema import type_problem
from tbptt_service.api.deps import V1_DEPENDENCIES, V1_PREFIX, ModelDep, RegistryDep
from tbptt_service.api.schemas import (
    ERROR_RESPONSES,
    JSON_BODY_RESPONSES,
    ModelCreate,
    ModelInfo,
    ModelList,
    TruncationOut,
)
from tbptt_service.api.strict_json import StrictJSONRoute
from tbptt_service.errors import ReportFailed, Unprocessable, config_problem
from tbptt_service.host.model_worker import ModelWorker

router = APIRouter(
    prefix=V1_PREFIX,
    dependencies=V1_DEPENDENCIES,
    tags=["models"],
    responses=ERROR_RESPONSES,
    route_class=StrictJSONRoute,
)


def model_info(worker: ModelWorker) -> dict:
    snapshot = worker.snapshot
    return {
        "name": worker.name,
        "config": snapshot.view.config.to_dict(),
        "series_count": snapshot.series_count,
        "observations": snapshot.observations,
        "updates": dataclasses.asdict(snapshot.updates),
    }


def truncation_info(report: TruncationReport) -> dict:
    info = dataclasses.asdict(report)
    if info["relative_bias"] is not None and not math.isfinite(info["relative_bias"]):
        info["relative_bias"] = None  # unbounded: JSON has no infinity (the verdict says it)
    return info


@router.post("/models", status_code=status.HTTP_201_CREATED, response_model=ModelInfo, responses=JSON_BODY_RESPONSES)
async def create_model(body: ModelCreate, registry: RegistryDep, response: Response) -> dict:
    """Create a model; ``config`` holds ForecasterConfig fields (409 if the name is taken)."""
    problem = type_problem(body.config)  # a value of the wrong JSON type, quoted as JSON writes it
    if problem is not None:
        name, why = problem
        message = f"config.{name}: {why}"
        error = {"loc": ["body", "config", name], "msg": message, "type": "config_type"}
        raise Unprocessable(message, errors=[error], error_count=1)
    try:
        config = ForecasterConfig.from_dict(body.config)
    except (ValueError, TypeError) as error:
        message = f"config: {config_problem(error)}"
        if isinstance(error, ConfigValueError):  # the field refused, located as a wrong type is
            refused = {"loc": ["body", "config", error.field], "msg": message, "type": "config_value"}
            raise Unprocessable(message, errors=[refused], error_count=1) from None
        raise Unprocessable(message) from None
    worker = await registry.create(body.name, config)
    response.headers["Location"] = f"/v1/models/{worker.name}"
    return model_info(worker)


@router.get("/models", response_model=ModelList)
async def list_models(registry: RegistryDep) -> dict:
    quarantined = [{"name": name, "reason": reason} for name, reason in registry.quarantined.items()]
    return {"models": [model_info(registry.get(name)) for name in registry.names()], "quarantined": quarantined}


@router.get("/models/{model}", response_model=ModelInfo)
async def get_model(worker: ModelDep) -> dict:
    """Config, counts and update statistics, from the model's latest snapshot."""
    return model_info(worker)


@router.get("/models/{model}/truncation", response_model=TruncationOut)
async def get_truncation(worker: ModelDep) -> dict:
    """The truncation advisor: the gradient's reach, the data's dependency length, whether k2 is
    long enough and what a longer one would cost (from the model's latest snapshot)."""
    report = worker.snapshot.truncation
    if report is None:  # fix: recomputed here, a failed report answered 500 (and ran again on the worker each GET)
        raise ReportFailed(
            f"model {worker.name!r}: the truncation advisor's report failed (the server logged why); "
            "it is made again at the model's next probe"
        )
    return truncation_info(report)


@router.post("/models/{model}/reset-learning-rate", response_model=ModelInfo)
async def reset_learning_rate(worker: ModelDep) -> dict:
    """Undo the instability guards' learning-rate back-offs: the configured ``lr`` again (journaled)."""
    await worker.reset_learning_rate()
    return model_info(worker)


@router.delete("/models/{model}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_model(model: str, registry: RegistryDep, request: Request) -> Response:
    """Delete a model once the observations already queued for it are applied (a quarantined
    model too: the way to start it afresh)."""
    if model not in registry.quarantined:
        registry.get(model)  # 404 when unknown
    await registry.delete(model)
    request.app.state.forecasts.retire(model)  # its forecast thread ends once its queued forecasts are answered
    return Response(status_code=status.HTTP_204_NO_CONTENT)
