"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.responses import JSONResponse

from tbptt_service.api.deps import MetricsDep
from tbptt_service.host.metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict:
    """The process is alive (200 while it serves at all)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Still loading state"}})
async def readyz(request: Request) -> JSONResponse:
    """200 once the state is loaded and the models accept requests; 503 before."""
    state = request.app.state
    if state.ready:
        quarantined = state.registry.quarantined
        return JSONResponse(
            {"status": "ready", "quarantined": dict(quarantined)} if quarantined else {"status": "ready"}
        )
    if state.load_error is not None:
        return JSONResponse({"status": "failed", "detail": state.load_error}, status_code=503)
    body = {"status": "loading", "detail": "the service is still loading its state"}
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


@router.get("/metrics", response_class=Response)
async def metrics(metrics: MetricsDep) -> Response:
    """Prometheus text exposition of this app's metrics."""
    return Response(metrics.exposition(), media_type=CONTENT_TYPE)
