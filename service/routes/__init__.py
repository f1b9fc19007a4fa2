"""The API's routes: ``/v1`` resources (models, observations, forecasts, series) and the
operations probes (``/healthz``, ``/readyz``, ``/metrics``)."""

from fastapi import APIRouter, Depends

from service.deps import get_registry
from service.routes import checkpoints, dashboard, forecasts, models, observations, operations, recent, series

v1 = APIRouter(prefix="/v1", dependencies=[Depends(get_registry)])
v1.include_router(models.router)
v1.include_router(checkpoints.router)
v1.include_router(observations.router)
v1.include_router(forecasts.router)  # before series: '/series/{series:path}' would swallow '.../forecast'
v1.include_router(recent.router)  # likewise before series
v1.include_router(series.router)

__all__ = ["dashboard", "operations", "v1"]
