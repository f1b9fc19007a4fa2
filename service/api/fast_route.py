"""fast_path: a route class whose common requests skip FastAPI's generic request handling.

For every request FastAPI solves the endpoint's dependencies, reads and validates its
parameters and body through generic code, then calls the endpoint: on the two hot
routes (a single-observation POST, a forecast GET) that took about a third of the event
loop's time per request, more than the route's own work. A route of the class
``fast_path(handler)`` first hands the request to ``handler``, a plain coroutine of the
``Request`` that checks the common shape with a few plain tests and answers it, or
returns None. Anything it does not answer (every error, every rarer shape) goes through
FastAPI's full handler exactly as before, so errors are reported as before and the
route's OpenAPI documentation is its endpoint's, unchanged. A handler raises
``ApiError`` s the way an endpoint does (the app's handlers render them).

Both paths get the same :class:`~tbptt_service.api.strict_json.StrictJSONRequest` (orjson parsing),
so a body the handler read is not read again.

>>> import asyncio, httpx
>>> from fastapi import FastAPI
>>> from starlette.responses import PlainTextResponse
>>> async def shortcut(request: Request) -> Response | None:
...     return PlainTextResponse("fast") if request.query_params.get("n") == "1" else None
>>> app = FastAPI()
>>> def double(n: int) -> int:
...     return 2 * n
>>> app.router.add_api_route("/double", double, methods=["GET"], route_class_override=fast_path(shortcut))
>>> async def ask(query: str) -> str:
...     async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as client:
...         return (await client.get(f"/double?{query}")).text
>>> asyncio.run(ask("n=1")), asyncio.run(ask("n=21")), asyncio.run(ask("n=x"))[:10]
('fast', '42', '{"detail":')
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from tbptt_service.api.strict_json import StrictJSONRequest, check_json_content_type

FastHandler = Callable[[StrictJSONRequest], Awaitable[Response | None]]


def fast_path(handler: FastHandler) -> type[APIRoute]:
    """An ``APIRoute`` class that tries ``handler`` first and falls back to FastAPI's handler
    when it returns None (pass it as ``route_class`` or ``route_class_override``)."""

    class FastPathRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            full = super().get_route_handler()
            json_body = self.body_field is not None

            async def route_handler(request: Request) -> Response:
                if json_body:
                    check_json_content_type(request.scope["headers"])
                strict = StrictJSONRequest(request.scope, request.receive)
                response = await handler(strict)
                return response if response is not None else await full(strict)

            return route_handler

    FastPathRoute.__qualname__ = FastPathRoute.__name__ = f"FastPathRoute[{handler.__name__}]"
    return FastPathRoute
