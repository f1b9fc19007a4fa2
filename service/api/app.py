"""The app factory: settings in, a FastAPI app out, its models owned by its lifespan.

At start the lifespan sets torch's thread count (``torch_threads``, restored at the
end), makes the forecast lanes (:class:`~tbptt_service.host.forecast_lanes.ForecastLanes`: a thread per model),
creates the model registry and loads the state in the background; ``/readyz``
answers 503 and ``/v1`` routes 503 until that is done.
By default (``durable``) the state is :class:`~tbptt_service.host.durability.Durability`'s:
every change is journaled to ``state_dir/events.sqlite3`` before it is made, and
loading recovers the newest valid checkpoint plus the log after it. With
``durable=False``, or a ``journal`` or ``restore`` given by the caller, the state
lives in memory (``restore`` defaults to creating the model ``default``).
At shutdown every model worker drains the jobs already queued, then stops; a
durable app then writes a final checkpoint.

>>> import asyncio, tempfile, httpx
>>> async def first_step(state_dir: str) -> int:
...     app = create_app(Settings(state_dir=state_dir, default_model={"hidden_size": 4}))
...     async with app.router.lifespan_context(app):
...         await app.state.loading  # the background load of the state
...         transport = httpx.ASGITransport(app=app)
...         async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
...             response = await client.post("/v1/models/default/observations", json={"series": "a", "value": 1.0})
...     return response.json()["results"][0]["step"]
>>> with tempfile.TemporaryDirectory() as state_dir:
...     asyncio.run(first_step(state_dir))
1
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI

from tbptt_online import Forecaster, __version__
from tbptt_online.warm import warm_kernels
from tbptt_service.api.allowed_methods import AllowedMethodsMiddleware
from tbptt_service.api.auth import ApiKeyMiddleware
from tbptt_service.api.body_limit import BodyLimitMiddleware
from tbptt_service.api.body_timeout import BodyTimeoutMiddleware
from tbptt_service.api.cross_site import CrossSiteMiddleware
from tbptt_service.api.error_responses import install_error_handlers
from tbptt_service.api.openapi_security import declare_bearer_security
from tbptt_service.api.routes import add_routes
from tbptt_service.host.durability import Durability, StateDirectoryInUse, log_name
from tbptt_service.host.forecast_lanes import ForecastLanes
from tbptt_service.host.metrics import ServiceMetrics
from tbptt_service.host.registry import ForecasterFactory, ModelRegistry
from tbptt_service.settings import Settings
from tbptt_service.storage.journal import Journal, NullJournal
from tbptt_service.storage.state_lock import StateDirectoryLock

logger = logging.getLogger("tbptt_service.api.app")
Restore = Callable[[ModelRegistry], Awaitable[None]]


async def create_default_model(registry: ModelRegistry) -> None:
    """The default ``restore``: a fresh model named ``default`` configured from settings, unless
    ``create_default_model`` is false (it was created anyway without durability until session 36:
    a new user's ``TBPTT_DURABLE=false TBPTT_CREATE_DEFAULT_MODEL=false``)."""
    if registry.settings.create_default_model:
        await registry.create("default", registry.settings.default_config())


def create_app(
    settings: Settings | None = None,
    *,
    journal: Journal | None = None,
    restore: Restore | None = None,
    forecaster_factory: ForecasterFactory = Forecaster,
    state_lock: StateDirectoryLock | None = None,
) -> FastAPI:
    """Build the service. ``journal`` records each change before it is made;
    ``restore`` fills the registry at start. Neither given and ``settings.durable``:
    the event log and checkpoints of ``settings.state_dir`` (recovery), whose lock is
    ``state_lock`` when the caller took it already (``serve`` does, before binding), else
    taken at start (``StateDirectoryInUse`` fails the startup)."""
    settings = settings if settings is not None else Settings()
    metrics = ServiceMetrics()
    durable = journal is None and restore is None and settings.durable
    durability = Durability(settings, state_lock, metrics) if durable else None
    load_state: Restore = durability.restore if durability is not None else restore or create_default_model

    async def load(app: FastAPI, registry: ModelRegistry) -> None:
        try:
            # the compiled kernels (loaded from their cache, or compiled once on a new machine)
            # beside the state's loading: no request waits for them (warm_kernels uses no
            # forecaster and no random numbers, so it cannot disturb a recovery)
            seconds, _ = await asyncio.gather(asyncio.to_thread(warm_kernels), load_state(registry))
            logger.info("compiled kernels loaded in %.1f s", seconds)
            app.state.kernels_s = seconds
        except Exception as error:  # kept visible: logged, and /readyz reports it with 503
            logger.exception("loading the service state failed")
            app.state.load_error = f"loading the state failed: {error!r}"
            return
        app.state.ready = True
        logger.info("state loaded: models %s", registry.names())

    @asynccontextmanager
    async def serving(app: FastAPI) -> AsyncIterator[None]:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        opened = True
        if durability is not None:
            try:
                await asyncio.to_thread(durability.open)
            except StateDirectoryInUse:  # another process owns the directory: this one must not start
                raise
            except Exception as error:  # a damaged log file, a log database unreachable: /readyz says why (503), as
                # for a state that cannot be confirmed; it was a traceback and exit 3 at start (an operator's test,
                # session 58), a restart loop under compose's restart policy
                logger.exception("opening the event log failed")
                app.state.load_error = f"opening the event log {log_name(settings)} failed: {error}"
                opened = False
        registry = ModelRegistry(
            settings,
            journal=(durability.journal if durability is not None else journal) or NullJournal(),
            metrics=metrics,
            forecaster_factory=forecaster_factory,
        )
        app.state.registry = registry
        app.state.forecasts = ForecastLanes()  # a forecast thread per model, made on its first forecast
        # a task either way: its end is what callers await for "loading is over" (``ready`` set, or ``load_error``
        # saying why not: here the log that could not be opened, with nothing to load)
        app.state.loading = asyncio.create_task(load(app, registry) if opened else asyncio.sleep(0))
        try:
            yield
        finally:
            app.state.ready = False
            app.state.loading.cancel()
            await asyncio.gather(app.state.loading, return_exceptions=True)
            await asyncio.to_thread(app.state.forecasts.stop)  # the forecasts already asked for are answered
            if durability is not None:
                await durability.stop_checkpoints()
            await registry.close()  # drain: every queued observation is applied first
            if durability is not None:
                await durability.close(registry)  # the final checkpoint, then the log is closed

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threads_before = torch.get_num_threads()
        torch.set_num_threads(settings.torch_threads)  # process-wide: the workers' and forecasts' threads too
        try:
            async with serving(app):
                yield
        finally:
            torch.set_num_threads(threads_before)  # an app in a longer-lived process (tests) leaves it as it was

    app = FastAPI(
        title="tbptt-online",
        version=__version__,
        description="Online forecasting: observations in, TBPTT-trained recurrent forecasts out.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc: tbptt_service.api.routes.docs, with assets served here (no CDN)
        redoc_url=None,
        # FastAPI's native OpenTelemetry off: the service reports Prometheus metrics (/metrics), and asking
        # whether a tracer, meter or logger provider is configured cost ~3 % of the event loop per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.durability = durability
    app.state.metrics = metrics
    app.state.ready = False
    app.state.load_error = None
    app.state.kernels_s = None  # seconds the compiled kernels took to load, once loaded
    install_error_handlers(app)
    add_routes(app)
    app.add_middleware(AllowedMethodsMiddleware, routes=app.router.routes)
    app.add_middleware(CrossSiteMiddleware, allowed_hosts=settings.browser_hosts())  # before the body is read
    app.add_middleware(BodyTimeoutMiddleware, timeout_s=settings.body_timeout_s)
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_checkpoint_bytes=settings.max_checkpoint_bytes,
    )
    if settings.api_key is not None:
        if not settings.api_key.isascii():  # matched as curl sends it; this project's CLI and dashboard cannot
            logging.getLogger("tbptt_service.api").warning(
                "TBPTT_API_KEY holds characters past ASCII: curl can send it, but the CLI, the Python client and the "
                "dashboard cannot (an HTTP header is ASCII to them)"
            )
        app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key)  # outermost: nothing runs unauthenticated
        declare_bearer_security(app)
    return app
