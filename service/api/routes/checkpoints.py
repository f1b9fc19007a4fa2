"""/v1/models/{model}/checkpoint: download a model's checkpoint, or restore one.

The file is the checksummed checkpoint encoding of :mod:`tbptt_service.storage.checkpoints` around
one model's complete state (:mod:`tbptt_service.host.model_state`): weights, optimizer,
normalisers, carried states, histories, counters, random generator state, config
and the per-series marks that keep retries idempotent. It is read back with
``torch.load(weights_only=True)`` only, after its checksum is verified.

A restore is refused with 422 when the file is damaged or was written by a model
with another config (the message names each differing field), and with 409 when it holds
more series than the model may hold here (``max_series_per_model`` or the memory budgets,
as a batch adding series is: an import must not be a way around them). An accepted one is
journaled (the file's bytes) before it replaces the model's state, after the
observations already queued, so recovery after a crash applies it in order.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from tbptt_service.api.deps import V1_DEPENDENCIES, V1_PREFIX, ModelDep, RegistryDep
from tbptt_service.api.routes.models import model_info
from tbptt_service.api.schemas import ERROR_RESPONSES, ModelInfo
from tbptt_service.api.series_names import series_name_problem
from tbptt_service.errors import Unprocessable
from tbptt_service.host.model_state import encode_model_checkpoint, import_payload, over_limit, read_import
from tbptt_service.storage.journal import IMPORT_CHECKPOINT

router = APIRouter(prefix=V1_PREFIX, dependencies=V1_DEPENDENCIES, tags=["models"], responses=ERROR_RESPONSES)
MEDIA_TYPE = "application/octet-stream"
# An export is sent a piece of this many bytes at a time, each once the connection has taken the one before:
# sent whole, the event loop copied it into the transport's buffer at once (0.5 s for 894 MB, a hostile test,
# session 47), and every other request waited
EXPORT_PIECE = 2**20


@router.get(
    "/models/{model}/checkpoint",
    response_class=Response,
    responses={200: {"content": {MEDIA_TYPE: {}}, "description": "The model's checkpoint file."}},
)
async def download_checkpoint(worker: ModelDep) -> Response:
    """The model's complete state at one moment between two batches."""
    state = await worker.capture_job()  # on the worker thread: never half a batch
    data = await run_in_threadpool(encode_model_checkpoint, state)
    headers = {
        "content-disposition": f'attachment; filename="{worker.name}-{state.seq}.ckpt"',
        "content-length": str(len(data)),
    }
    return StreamingResponse(_pieces(data), media_type=MEDIA_TYPE, headers=headers)


async def _pieces(data: bytes) -> AsyncIterator[memoryview]:
    """``data`` in pieces of ``EXPORT_PIECE`` bytes (views: no copy)."""
    view = memoryview(data)
    for start in range(0, len(view), EXPORT_PIECE):
        yield view[start : start + EXPORT_PIECE]


@router.post(
    "/models/{model}/checkpoint",
    response_model=ModelInfo,
    openapi_extra={"requestBody": {"required": True, "content": {MEDIA_TYPE: {"schema": {"type": "string"}}}}},
)
async def restore_checkpoint(request: Request, worker: ModelDep, registry: RegistryDep) -> dict:
    """Replace the model's state by a downloaded checkpoint's (same config: 422 otherwise)."""
    data = await request.body()
    config = worker.snapshot.view.config
    try:
        slots = registry.series_limit(worker)  # (checked again on the worker thread, beside the models then)
        state, forecaster = await run_in_threadpool(read_import, data, config, registry.forecaster_factory, slots=slots)
    except ValueError as error:
        raise Unprocessable(f"checkpoint: {error}") from None
    live = (name for name in forecaster.store.names if name is not None)  # (a mark's series is one: read_import)
    problem = next((why for name in live if (why := series_name_problem(name)) is not None), None)
    if problem is not None:  # (a new import only: recovery reads one journaled earlier as it came)
        raise Unprocessable(f"checkpoint: a series' name is invalid: {problem}")
    payload = await run_in_threadpool(import_payload, data)  # not on the event loop: 0.75 s at 256 MiB

    def install() -> None:  # on the worker thread, after the jobs already queued
        # one model at a time admits series, and the imported ones count from now on, as a batch's do (a review,
        # session 51: another model's batch of new series, admitted while this import was journaled, counted this
        # model's old series, and both went past TBPTT_MAX_PROCESS_BYTES)
        with worker.admitting or contextlib.nullcontext():
            limit = registry.series_limit(worker)  # beside the other models as they are now
            if len(forecaster.store.names) > limit.count:  # its slots, each a row (fix: a limit of 5 series took 60)
                raise over_limit(len(forecaster.store), len(forecaster.store.names), limit)
            before, worker.pending_series = worker.pending_series, max(worker.pending_series, len(forecaster.store))
        try:
            seq = worker.record_change(IMPORT_CHECKPOINT, payload)  # journaled first: 507 when full
        except BaseException:
            worker.pending_series = before  # nothing of it installed
            raise
        worker.load(forecaster, state.marks, seq)
        worker.publish()

    await worker.call(install)
    return model_info(worker)
