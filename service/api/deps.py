"""Per-request resources, injected with ``Annotated[..., Depends(...)]``.

Each is ``async def``: they only read attributes, and FastAPI would run a plain
``def`` dependency in its threadpool (one thread hop per dependency per request).
The hot routes (observations, forecasts) use ``ModelDep`` alone, which checks
readiness itself, and read the settings off ``request.app.state`` (the metrics off the worker).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tbptt_service.api.query_numbers import plain_numbers
from tbptt_service.errors import NotReady
from tbptt_service.host.metrics import ServiceMetrics
from tbptt_service.host.model_worker import ModelWorker
from tbptt_service.host.registry import ModelRegistry
from tbptt_service.settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


def serving_registry(request: Request) -> ModelRegistry:
    """The models, once the state is loaded; ``NotReady`` (503) before."""
    if not request.app.state.ready:
        if request.app.state.load_error is not None:  # it will not become ready: say why
            raise NotReady(f"the service is not serving: {request.app.state.load_error}")
        raise NotReady("the service is still loading its state; retry shortly")
    return request.app.state.registry


async def get_registry(request: Request) -> ModelRegistry:
    """The models, once the state is loaded (503 before)."""
    return serving_registry(request)


RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]


async def get_model(model: str, request: Request) -> ModelWorker:
    """The model named in the path: 503 before the state is loaded, 404 naming it when unknown.
    It checks readiness itself rather than through ``RegistryDep``: one dependency less to
    solve on the hot paths (FastAPI's cost per dependency per request is tens of µs)."""
    return serving_registry(request).get(model)


V1_PREFIX = "/v1"
# every /v1 route answers 503 until the state is loaded, and 422 for a query parameter it does not read (since
# session 48 also the routes that read none: a hostile test's `?force=1` on a DELETE and `?lr=5` on
# reset-learning-rate were ignored without a word)
V1_DEPENDENCIES = [Depends(get_registry), Depends(plain_numbers)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
ModelDep = Annotated[ModelWorker, Depends(get_model)]
