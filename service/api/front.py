"""The cluster's front: a stateless HTTP tier that routes each request to the shard owning its model.

No model lives here. A request about a model (``/v1/models/{model}/...``, or ``POST /v1/models``
naming it in its body) goes to ``shard_of(model)``; ``GET /v1/models`` asks every shard and merges
the lists (sorted by name: the shards do not know each other's creation order); ``GET /metrics``
asks every shard and merges their samples (:mod:`tbptt_service.api.metrics_merge`); the rest (the
dashboard, the OpenAPI document, ``/readyz``) goes to shard 0. The shards run
today's app, so answers, status codes and error bodies are the in-process service's, byte for byte.

Requests for one shard that arrive within ``coalesce_ms`` of each other travel in one call (an
actor call costs milliseconds: one per request would cap the throughput), with a fresh
idempotency key; a call that fails because the shard is down (a process or a node lost) is
retried with the *same* key until ``retry_s`` runs out, so the shard applies it at most once.

``call(index, key, requests)`` is the transport: a Ray actor call in the cluster
(:mod:`tbptt_service.host.ray_shards`), or a direct call on an in-process
:class:`~tbptt_service.host.shard.ShardHost` in tests.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any
from urllib.parse import quote

import orjson
from fastapi.exception_handlers import http_exception_handler
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import tbptt_service.api.series_path  # noqa: F401  (registers the 'series_path' convertor)
from tbptt_service.api.body_limit import BodyLimitMiddleware
from tbptt_service.api.body_timeout import BodyTimeoutMiddleware
from tbptt_service.api.cross_site import host_name
from tbptt_service.api.metrics_merge import merge_expositions
from tbptt_service.api.strict_json import without_bom
from tbptt_service.host.metrics import CONTENT_TYPE
from tbptt_service.host.shard import ForwardedRequest, ForwardedResponse, shard_of
from tbptt_service.host.shard_pairs import ShardCall
from tbptt_service.settings import Settings
from tbptt_service.version import VERSION

logger = logging.getLogger("tbptt_service.api.front")
MODELS_PREFIX = "/v1/models/"
HOP_HEADERS = {"content-length", "transfer-encoding", "connection", "keep-alive"}
# A call to a restarting shard fails at once; the front tries again after 0.05 s, doubling up to this.
# A longer pause would land after the shard is back (it restarts in about 4 s), adding up to the pause.
RETRY_PAUSE_MAX_S = 0.25


class ShardUnavailable(Exception):
    """A shard did not answer within the retry window."""


class Coalescer:
    """The requests bound for one shard, gathered for ``wait_s`` after the first, then sent as one call."""

    def __init__(self, index: int, call: ShardCall, wait_s: float, retry_s: float, retryable: tuple[type, ...]):
        self.index, self.call, self.wait_s, self.retry_s, self.retryable = index, call, wait_s, retry_s, retryable
        self._pending: list[tuple[ForwardedRequest, asyncio.Future[ForwardedResponse]]] = []
        self._flushing: asyncio.Task[None] | None = None
        self.calls = 0  # calls made (a retry is not counted again)

    async def send(self, request: ForwardedRequest) -> ForwardedResponse:
        future: asyncio.Future[ForwardedResponse] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush_soon())
        return await future

    async def _flush_soon(self) -> None:
        if self.wait_s > 0:
            await asyncio.sleep(self.wait_s)
        batch, self._pending, self._flushing = self._pending, [], None
        self.calls += 1
        try:
            responses = await self._call_with_retries(uuid.uuid4().hex, [request for request, _ in batch])
        except Exception as error:
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), response in zip(batch, responses, strict=True):
            if not future.done():
                future.set_result(response)

    async def _call_with_retries(self, key: str, requests: list[ForwardedRequest]) -> list[ForwardedResponse]:
        deadline = time.monotonic() + self.retry_s
        pause = 0.05
        overran = False  # an attempt begun in the window answered after it: one more is sent
        while True:
            began = time.monotonic()
            try:
                return await self.call(self.index, key, requests)
            except self.retryable as error:  # the shard is restarting: the same key, so at most once
                now = time.monotonic()
                if began <= deadline < now and not overran:
                    # A frozen owner's call times out (60 s, as long as the window) and the standby is
                    # promoted meanwhile: without this the call was answered 503 and never re-sent
                    # (a hostile test, session 36).
                    overran = True
                elif now + pause > deadline:
                    raise ShardUnavailable(
                        f"shard {self.index} did not answer within {self.retry_s} s: {error}"
                    ) from error
                logger.warning("shard %d unavailable (%s); retrying call %s", self.index, type(error).__name__, key)
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_PAUSE_MAX_S)


def model_of(method: str, path: str, body: bytes) -> str | None:
    """The model a request is about, or None (it goes to shard 0, or to all for the list); ``path``
    is the request's path as the app reads it (percent-decoded, no query).

    >>> model_of("GET", "/v1/models/m1/series/q?x=1/forecast", b""), model_of("POST", "/v1/models", b'{"name": "m2"}')
    ('m1', 'm2')
    """
    if path.startswith(MODELS_PREFIX):
        return path[len(MODELS_PREFIX) :].split("/", 1)[0]
    if method == "POST" and path == "/v1/models":
        try:
            name = orjson.loads(without_bom(body)).get("name")  # as the shard reads it
        except (orjson.JSONDecodeError, AttributeError):
            return None
        return name if isinstance(name, str) else None
    return None


def create_front(
    call: ShardCall,
    shards: int,
    coalesce_ms: float = 2.0,
    retry_s: float = 60.0,
    retryable: tuple[type, ...] = (),
    limits: Settings | None = None,
) -> Starlette:
    """The front's ASGI app over ``shards`` shards reached through ``call``; ``retryable`` are the
    transport's errors that mean "the shard is down, try again" (Ray's actor errors). ``limits``:
    the settings whose body limits (size, deadline) the front applies before it reads a body, as
    the app does (the defaults' when None): without them the front read a 64 MiB body whole
    before the shard's 413, and waited for good on a body that stalled (a hostile test, session 36); and its
    ``browser_hosts``, which the shards check a browser's ``Host`` against for each request this front
    forwards (:data:`~tbptt_service.api.cross_site.FRONT_HOSTS`)."""
    coalescers = [Coalescer(i, call, coalesce_ms / 1000.0, retry_s, retryable) for i in range(shards)]
    limits = limits if limits is not None else Settings()
    # The shards check a browser's Host against this front's names, each front its own (it listens on its node),
    # compared as ``host_name``s: written so here, once, not at each request
    browser_hosts = tuple(sorted({host_name(h) for h in limits.browser_hosts()}))

    async def forward(request: Request) -> Response:
        body = await request.body()
        decoded = request.scope["path"]  # what the app reads: a series name's '?', '#', '%' or newline as is
        query = request.scope["query_string"].decode("latin-1")
        path = forwarded_path(decoded) + (f"?{query}" if query else "")
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_HEADERS]
        forwarded = ForwardedRequest(request.method, path, headers, body, browser_hosts)
        try:
            if request.method == "GET" and decoded == "/v1/models":
                return await list_everywhere(forwarded)
            if request.method == "GET" and decoded == "/metrics":
                return await metrics_everywhere(forwarded)
            if request.method == "GET" and decoded == "/readyz":
                return await ready_everywhere(forwarded)
            model = model_of(request.method, decoded, body)
            index = 0 if model is None else shard_of(model, shards)
            answer = await coalescers[index].send(forwarded)
        except ShardUnavailable as error:
            return JSONResponse({"detail": str(error)}, status_code=503)
        return respond(answer, head=request.method == "HEAD")

    async def list_everywhere(request: ForwardedRequest) -> Response:
        answers = await asyncio.gather(*(c.send(request) for c in coalescers))
        failed = next((a for a in answers if a.status != 200), None)
        if failed is not None:  # 401 and the like: the same on every shard
            return respond(failed)
        merged: dict[str, list[Any]] = {"models": [], "quarantined": []}
        for answer in answers:
            part = orjson.loads(answer.body)
            merged["models"] += part["models"]
            merged["quarantined"] += part.get("quarantined", [])
        merged["models"].sort(key=lambda m: m["name"])
        merged["quarantined"].sort(key=lambda m: m["name"])
        return Response(orjson.dumps(merged), media_type="application/json")

    async def metrics_everywhere(request: ForwardedRequest) -> Response:
        answers = await asyncio.gather(*(c.send(request) for c in coalescers), return_exceptions=True)
        refused = next((a for a in answers if isinstance(a, ForwardedResponse) and a.status == 401), None)
        if refused is not None:  # a missing or wrong API key: the same on every shard
            return respond(refused)
        for answer in answers:
            if isinstance(answer, BaseException) and not isinstance(answer, ShardUnavailable):
                raise answer
        texts = [a.body if isinstance(a, ForwardedResponse) and a.status == 200 else None for a in answers]
        return Response(merge_expositions(texts), media_type=CONTENT_TYPE)

    async def ready_everywhere(request: ForwardedRequest) -> Response:
        """Ready when every shard is: the first shard that is not answers for all (its status and
        body, with ``shard``: i), and the quarantined models of all shards are merged (their
        reasons, or their count where the request did not carry the API key), and the first shard's
        ``log_write_failure`` is given with its ``shard``. It answered shard
        0's: a model quarantined on shard 1, or a shard that could not recover, read "ready"."""
        answers = await asyncio.gather(*(c.send(request) for c in coalescers), return_exceptions=True)
        for i, answer in enumerate(answers):
            if isinstance(answer, ShardUnavailable):
                return JSONResponse({"status": "unavailable", "detail": str(answer), "shard": i}, status_code=503)
            if isinstance(answer, BaseException):
                raise answer
            if answer.status != 200:
                if answer.status == 503:
                    body = {**orjson.loads(answer.body), "shard": i}
                    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})
                return respond(answer)
        parts = [orjson.loads(a.body) for a in answers if isinstance(a, ForwardedResponse)]
        merged: dict[str, Any] = {"status": "ready"}
        reasons = {name: why for part in parts for name, why in part.get("quarantined", {}).items()}
        count = sum(part.get("quarantined_models", 0) for part in parts)
        if reasons:
            merged["quarantined"] = dict(sorted(reasons.items()))
        elif count:
            merged["quarantined_models"] = count
            merged["detail"] = next(part["detail"] for part in parts if "detail" in part)
        refused = [(i, part["log_write_failure"]) for i, part in enumerate(parts) if "log_write_failure" in part]
        if refused:  # the first shard whose log refused its last write (a 507 or 503 of each write to it)
            merged["log_write_failure"] = {**refused[0][1], "shard": refused[0][0]}
        return JSONResponse(merged)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": VERSION})

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
    # Every path, a newline in it too: Starlette's 'path' convertor stops at one (404 for a series
    # named "a\nb"); the routes' own 'series_path' convertor matches any character.
    everything = Route("/{path:series_path}", forward, methods=methods)
    # An HTTPException (a body that did not arrive in time: 408) answered as the in-process (FastAPI) app
    # answers it, {"detail": ...} as JSON; Starlette's own handler answered text/plain (a hostile test, session 58)
    handlers = {HTTPException: http_exception_handler}
    app = Starlette(routes=[Route("/healthz", healthz), everything], exception_handlers=handlers)
    app.add_middleware(BodyTimeoutMiddleware, timeout_s=limits.body_timeout_s)
    app.add_middleware(
        BodyLimitMiddleware, max_body_bytes=limits.max_body_bytes, max_checkpoint_bytes=limits.max_checkpoint_bytes
    )
    app.state.coalescers = coalescers
    return app


def forwarded_path(decoded: str) -> str:
    """The decoded path ``decoded`` encoded again for the shard's client, which decodes it once: the
    app there reads ``decoded``, as the in-process app does. A name's '?', '#' or '%' would otherwise
    be read as a query, a fragment or an escape, and every '.' is escaped so that no client removes a
    '.' or '..' segment on the way.

    >>> forwarded_path("/v1/models/m/series/q?x=1#%/../y")
    '/v1/models/m/series/q%3Fx%3D1%23%25/%2E%2E/y'
    """
    return quote(decoded, safe="/").replace(".", "%2E")


def respond(answer: ForwardedResponse, head: bool = False) -> Response:
    """The shard's answer as the front's response; for a ``HEAD`` (no body) with the shard's
    ``content-length``: the length of the body a ``GET`` gets, as the in-process app answers."""
    headers = {}
    response = Response(answer.body, status_code=answer.status)
    for key, value in answer.headers:
        if key.lower() in HOP_HEADERS and not (head and key.lower() == "content-length"):
            continue
        if key.lower() in headers:
            response.headers.append(key, value)
        else:
            response.headers[key] = value
            headers[key.lower()] = True
    return response
