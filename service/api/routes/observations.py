"""POST /v1/models/{model}/observations: ingest one observation or a batch.

The body is validated by :mod:`tbptt_service.api.observation_body` (a plain body straight
into ``Observation`` s, anything else through ``ObservationsBody`` and its errors).
A plain JSON body takes the route's fast path (:mod:`tbptt_service.api.fast_route`): checked
and answered without FastAPI's generic handling, which cost more than the route's
own work; everything else, errors included, goes through FastAPI as before.
The request is queued to the model's worker and answered once its batch is
applied (read-your-writes): a GET right after the response sees it. The answer
is built straight from the batch's result lists and encoded by orjson: no
``StepResult`` per element, and no second validation against ``ObservationsOut``
(which documents the shape).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from tbptt_online import Prediction, StepResult
from tbptt_online.results import StepResults, TickColumns
from tbptt_service.api.deps import V1_PREFIX, ModelDep, serving_registry
from tbptt_service.api.fast_route import fast_path
from tbptt_service.api.json_answers import json_answer
from tbptt_service.api.observation_body import ObservationsBodyIn, plain_observations
from tbptt_service.api.query_numbers import plain_numbers
from tbptt_service.api.schemas import ERROR_RESPONSES, JSON_BODY_RESPONSES, ObservationsOut
from tbptt_service.api.strict_json import StrictJSONRequest
from tbptt_service.errors import Unprocessable
from tbptt_service.host.model_snapshot import ObserveOutcome
from tbptt_service.host.model_worker import ModelWorker
from tbptt_service.settings import Settings
from tbptt_service.storage.observation import Observation


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
        "outlier": result.outlier,
        "held": result.held,
    }


def results_out(outcome: ObserveOutcome, observations: list[Observation]) -> list[dict[str, Any]]:
    """One ``StepResultOut`` dict per observation, read from the batch's tick lists (the worker
    built them); an idempotent repeat of an earlier batch answers with the result it repeats."""
    batch = outcome.batch
    if not isinstance(batch, StepResults):  # nothing was applied: every element repeats a known result
        return [_out(batch, source, obs.timestamp) for obs, source in zip(observations, outcome.sources, strict=True)]
    if len(batch.ticks) != 1:  # a series more than once in the micro-batch: rows spread over ticks
        return [
            _row_out(*batch.locate(source), obs.timestamp)
            if type(source) is int
            else step_result_out(source, obs.timestamp)
            for obs, source in zip(observations, outcome.sources, strict=True)
        ]
    c = batch.ticks[0].lists()  # the common case: row i of the one tick is element i of the batch
    names, steps, updated, values = c.names, c.steps, c.updated, c.values
    made_mean, made_lower, made_upper = c.made_mean, c.made_lower, c.made_upper
    next_mean, next_lower, next_upper, update_count = c.next_mean, c.next_lower, c.next_upper, c.update_count
    flags, held = c.outlier, c.held
    return [
        {
            "series": names[i],
            "step": steps[i],
            "timestamp": obs.timestamp,
            "value": values[i],
            "forecast_made": {"mean": made_mean[i], "lower": made_lower[i], "upper": made_upper[i]},
            "forecast_next": {"mean": next_mean[i], "lower": next_lower[i], "upper": next_upper[i]},
            "updated": updated[i],
            "update_count": update_count,
            "outlier": flags[i],
            "held": held[i],
        }
        if type(i) is int
        else step_result_out(i, obs.timestamp)
        for obs, i in zip(observations, outcome.sources, strict=True)
    ]


def _out(batch: Sequence[StepResult], source: int | StepResult, timestamp: float | None) -> dict[str, Any]:
    return step_result_out(batch[source] if type(source) is int else source, timestamp)


def _row_out(tick: TickColumns, i: int, timestamp: float | None) -> dict[str, Any]:
    c = tick.lists()
    return {
        "series": c.names[i],
        "step": c.steps[i],
        "timestamp": timestamp,
        "value": c.values[i],
        "forecast_made": {"mean": c.made_mean[i], "lower": c.made_lower[i], "upper": c.made_upper[i]},
        "forecast_next": {"mean": c.next_mean[i], "lower": c.next_lower[i], "upper": c.next_upper[i]},
        "updated": c.updated[i],
        "update_count": c.update_count,
        "outlier": c.outlier[i],
        "held": c.held[i],
    }


def check_count(count: int, settings: Settings) -> None:
    """The count limit, checked before any element is validated (a 3 MB body of 10^6 empty elements
    used to be validated element by element: 40 s of the event loop and a 250 MB error body)."""
    if count > settings.max_batch_observations:
        raise Unprocessable(
            f"observations has {count} elements; TBPTT_MAX_BATCH_OBSERVATIONS={settings.max_batch_observations}"
        )


MAX_KEY_LENGTH = 255


def idempotency_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The request's ``Idempotency-Key``, or None; 422 when it is empty, too long or sent more than once.

    A key is one value (RFC 9110: a sender must not repeat a singleton field). Two of them were
    read as the last one, while a proxy that joins repeated fields sends ``a, b``, another key:
    the same request, retried through it, was applied twice.

    >>> idempotency_key([(b"idempotency-key", b"k1")])
    'k1'
    >>> try:
    ...     idempotency_key([(b"idempotency-key", b"a"), (b"idempotency-key", b"b")])
    ... except Unprocessable as error:
    ...     print(error.detail)
    Idempotency-Key was sent 2 times: send one key per request
    >>> try:
    ...     idempotency_key([(b"idempotency-key", b"   ")])
    ... except Unprocessable as error:
    ...     print(error.detail)
    Idempotency-Key is invalid: must be 1 to 255 characters, got 0
    """
    keys = [value for name, value in headers if name == b"idempotency-key"]
    if not keys:
        return None
    if len(keys) > 1:
        raise Unprocessable(f"Idempotency-Key was sent {len(keys)} times: send one key per request")
    key = keys[0].strip(b" \t")  # a field's surrounding whitespace is no part of it (RFC 9110, 5.5)
    if not 1 <= len(key) <= MAX_KEY_LENGTH:  # a blank one too: a client whose key is empty is told
        raise Unprocessable(f"Idempotency-Key is invalid: must be 1 to {MAX_KEY_LENGTH} characters, got {len(key)}")
    return key.decode("latin-1")


async def ingest(
    worker: ModelWorker, observations: list[Observation], settings: Settings, key: str | None = None
) -> Response:
    """Apply a request's validated observations and answer with their results (both paths); a
    request whose ``key`` the model knows gets the first answer to it, and nothing is applied."""
    check_count(len(observations), settings)
    outcome = await worker.observe(observations, key)
    numbers = len(observations) * worker.forecaster.config.n_features  # a wide model's answer: off the loop
    return await json_answer(lambda: _answer(outcome, observations), numbers)


def _answer(outcome: ObserveOutcome, observations: list[Observation]) -> bytes:
    """The encoded answer to a batch: its results and the model's update count."""
    return orjson.dumps({"results": results_out(outcome, observations), "update_count": outcome.update_count})


async def post_plain_observations(request: StrictJSONRequest) -> Response | None:
    """The fast path: a JSON body of the plain shape (``plain_observations``); None for anything
    else, which FastAPI's full handler validates and answers (errors included). Every body FastAPI
    would read as JSON has its count limit checked here first, before any element is validated."""
    headers = request.scope["headers"]
    if request.scope["query_string"]:  # the route reads no query parameter: the full path answers 422
        return None
    try:
        body = await request.body()
    except ClientDisconnect:  # the client left mid-body: FastAPI's handler ends it quietly, as on other routes
        return None  # (let out of the app, it was logged as an ASGI error of 65 lines: a hostile test's log flood)
    if not body or not read_as_json(headers):
        return None
    try:
        raw = await request.json()  # parsed once: the full path reads the same request's cached body
    except orjson.JSONDecodeError:
        return None  # the full path reports it (422, with the position)
    if type(raw) is dict and type(elements := raw.get("observations")) is list:
        check_count(len(elements), request.app.state.settings)
    if not declares_json(headers):
        return None
    observations = plain_observations(raw)
    if observations is None:
        return None
    worker = serving_registry(request).get(request.path_params["model"])  # 503 / 404, as ModelDep
    return await ingest(worker, observations, request.app.state.settings, idempotency_key(headers))


def _content_type(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    declared = None
    for name, value in headers:  # the last one counts
        if name == b"content-type":
            declared = value
    return declared


def read_as_json(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether FastAPI reads the body as JSON: no Content-Type, or ``application/json`` or
    ``application/*+json`` (parameters allowed)."""
    declared = _content_type(headers)
    if declared is None:
        return True
    kind = declared.partition(b";")[0].strip().lower()
    return kind == b"application/json" or (kind.startswith(b"application/") and kind.endswith(b"+json"))


def declares_json(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the last Content-Type header is plain ``application/json`` (FastAPI reads the body as
    JSON for more types, ``+json`` ones and parameters: those take its full path)."""
    declared = _content_type(headers)
    return declared is not None and declared.lower() == b"application/json"


# No router-level readiness dependency: the route checks it (ModelDep, or the fast path itself).
router = APIRouter(
    prefix=V1_PREFIX,
    tags=["observations"],
    responses=ERROR_RESPONSES,
    route_class=fast_path(post_plain_observations),
)


@router.post(
    "/models/{model}/observations",
    response_model=ObservationsOut,
    responses=JSON_BODY_RESPONSES,
    dependencies=[Depends(plain_numbers)],  # it reads no query parameter: one sent is 422 (session 48)
)
async def post_observations(
    body: Annotated[ObservationsBodyIn, Body()], worker: ModelDep, request: Request
) -> Response:
    """Apply ``{series, value, timestamp?}`` or ``{observations: [...]}`` atomically, in order.

    Per observation: the forecast that had been made for it, the new one-step
    forecast and the model's update counter. A repeated timestamp with the same
    value returns the first result and learns nothing twice; so does a request repeated
    with the same ``Idempotency-Key`` header (timestamped or not, also after a restart).
    """
    observations: list[Observation] = body  # type: ignore[assignment]  # documented as ObservationsBody
    key = idempotency_key(request.scope["headers"])
    return await ingest(worker, observations, request.app.state.settings, key)
