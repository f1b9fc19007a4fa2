"""The API's routes: ``/v1`` resources (models, observations, forecasts, series) and the
operations probes (``/healthz``, ``/readyz``, ``/metrics``).

Each ``/v1`` module's router carries the prefix and the readiness dependency itself, so
that its routes can join the app's own route list flat (``add_routes``): an included
router is one more level that FastAPI matches on every request, twice, and a route
behind it is not seen by ``AllowedMethodsMiddleware`` (``OPTIONS /healthz`` and
``HEAD /healthz`` answered 405).
"""

from fastapi import FastAPI

from tbptt_service.api.routes import (
    checkpoints,
    dashboard,
    docs,
    forecast_pages,
    forecasts,
    models,
    observations,
    operations,
    recent,
    series,
)

# The order routes are matched in: the hot paths first; forecast and recent before
# series, whose '/series/{series:path}' would swallow '.../forecast' and '.../recent'.
V1_ROUTERS = (
    observations.router,
    forecasts.router,
    forecast_pages.router,
    models.router,
    checkpoints.router,
    recent.router,
    series.router,
)
OTHER_ROUTERS = (operations.router, dashboard.router, docs.router)


def add_routes(app: FastAPI) -> None:
    """Append every route to ``app``'s own routes, in matching order: ``/v1``'s, then the
    probes, the dashboard and the docs."""
    for router in (*V1_ROUTERS, *OTHER_ROUTERS):
        app.router.routes.extend(router.routes)


__all__ = ["add_routes"]
