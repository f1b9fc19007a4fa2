"""Per-request resources, injected with ``Annotated[..., Depends(...)]``.

Each is ``async def``: they only read attributes, and FastAPI would run a plain
``def`` dependency in its threadpool (one thread hop per dependency per request).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.errors import NotReady
from service.metrics import ServiceMetrics
from service.model_worker import ModelWorker
from service.registry import ModelRegistry
from service.settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


async def get_registry(request: Request) -> ModelRegistry:
    """The models, once the state is loaded (503 before)."""
    if not request.app.state.ready:
        if request.app.state.load_error is not None:  # it will not become ready: say why
            raise NotReady(f"the service is not serving: {request.app.state.load_error}")
        raise NotReady("the service is still loading its state; retry shortly")
    return request.app.state.registry


RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]


async def get_model(model: str, registry: RegistryDep) -> ModelWorker:
    return registry.get(model)  # 404 naming the model when unknown


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
ModelDep = Annotated[ModelWorker, Depends(get_model)]
