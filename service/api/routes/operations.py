"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.responses import JSONResponse

from tbptt_service.api.auth import bearer_matches
from tbptt_service.api.deps import MetricsDep
from tbptt_service.errors import LogDown
from tbptt_service.host.log_refusal import refusal
from tbptt_service.host.metrics import CONTENT_TYPE
from tbptt_service.version import VERSION

router = APIRouter(tags=["operations"])
_SEND_KEY = "send the API key (Authorization: Bearer <key>) for the reasons"


@router.get("/healthz")
async def healthz() -> dict:
    """The process is alive (200 while it serves at all), and its version."""
    return {"status": "ok", "version": VERSION}


@router.get("/readyz", responses={503: {"description": "Still loading state"}})
async def readyz(request: Request) -> JSONResponse:
    """200 once the state is loaded and the models accept requests; 503 before. With an API key set, the
    reasons (a quarantined model's, a failed load's, the log's refusal of the last write, a model refusing changes
    since its batch's fsync failed) are given only to a request that carries it."""
    state = request.app.state
    key = state.settings.api_key
    told = key is None or bearer_matches(request.scope, key.encode())  # the reasons need the key, when set
    log = getattr(state.durability, "log", None)
    superseded = getattr(log, "superseded", None)  # a PostgreSQL log's stream taken over by a newer writer
    if state.ready and superseded is not None:  # every write is refused (503): a balancer should stop sending
        detail = str(superseded) if told else f"this server's log stream was taken over; {_SEND_KEY}"
        return JSONResponse({"status": "superseded", "detail": detail}, status_code=503)
    if state.ready:
        body: dict[str, object] = {"status": "ready"}
        failure = getattr(log, "write_failure", None)  # the log refused the last write: ready to read, not to write
        if failure is not None:  # (until session 59 a refusing log read "ready" alone: an operator's test)
            status = (refusal(failure) or LogDown).status_code  # (an OSError: never None)
            detail = str(failure) if told else f"the event log refused the last write; {_SEND_KEY}"
            body["log_write_failure"] = {"status": status, "detail": detail}
        quarantined = dict(state.registry.quarantined)  # at recovery; and since session 60 those quarantined since:
        quarantined.update({w.name: w.quarantined for w in state.registry.workers() if w.quarantined is not None})
        if quarantined and not told:
            body.update(quarantined_models=len(quarantined), detail=_SEND_KEY)
        elif quarantined:
            body["quarantined"] = dict(sorted(quarantined.items()))
        # a model whose batch's fsync failed refuses every change until a restart (until session 60 unsaid here)
        unconfirmed = {w.name: w.unconfirmed for w in state.registry.workers() if w.unconfirmed is not None}
        if unconfirmed and not told:
            body.update(unconfirmed_models=len(unconfirmed), detail=_SEND_KEY)
        elif unconfirmed:
            body["unconfirmed"] = dict(sorted(unconfirmed.items()))
        return JSONResponse(body)
    if state.load_error is not None:
        detail = state.load_error if told else f"the state failed to load; {_SEND_KEY}"
        return JSONResponse({"status": "failed", "detail": detail}, status_code=503)
    body = {"status": "loading", "detail": "the service is still loading its state"}
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


@router.get("/metrics", response_class=Response)
async def metrics(metrics: MetricsDep) -> Response:
    """Prometheus text exposition of this app's metrics."""
    return Response(metrics.exposition(), media_type=CONTENT_TYPE)
