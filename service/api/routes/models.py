"""/v1/models: create, list, read and delete models."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from service.api.deps import V1_DEPENDENCIES, V1_PREFIX, ModelDep, RegistryDep
from service.api.schemas import ERROR_RESPONSES, JSON_BODY_RESPONSES, ModelCreate, ModelInfo, ModelList
from service.api.strict_json import StrictJSONRoute
from service.errors import Unprocessable
from service.host.model_worker import ModelWorker
from tbptt_online import ForecasterConfig

router = APIRouter(
    prefix=V1_PREFIX,
    dependencies=V1_DEPENDENCIES,
    tags=["models"],
    responses=ERROR_RESPONSES,
    route_class=StrictJSONRoute,
)


def model_info(worker: ModelWorker) -> dict:
    snapshot = worker.snapshot
    stats = snapshot.updates
    return {
        "name": worker.name,
        "config": snapshot.view.config.to_dict(),
        "series_count": snapshot.series_count,
        "observations": snapshot.observations,
        "updates": {
            "updates": stats.updates,
            "skipped": stats.skipped,
            "last_loss": stats.last_loss,
            "last_grad_norm": stats.last_grad_norm,
        },
    }


@router.post("/models", status_code=status.HTTP_201_CREATED, response_model=ModelInfo, responses=JSON_BODY_RESPONSES)
async def create_model(body: ModelCreate, registry: RegistryDep, response: Response) -> dict:
    """Create a model; ``config`` holds ForecasterConfig fields (409 if the name is taken)."""
    try:
        config = ForecasterConfig.from_dict(body.config)
    except (ValueError, TypeError) as error:
        raise Unprocessable(f"config: {error}") from None
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


@router.delete("/models/{model}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_model(model: str, registry: RegistryDep) -> Response:
    """Delete a model once the observations already queued for it are applied (a quarantined
    model too: the way to start it afresh)."""
    if model not in registry.quarantined:
        registry.get(model)  # 404 when unknown
    await registry.delete(model)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
