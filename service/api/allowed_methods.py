"""AllowedMethodsMiddleware: ``OPTIONS`` answered, ``HEAD`` served wherever ``GET`` is, and every
405 names all the methods a path takes.

Starlette answers a method that a path's first matching route does not take with 405
and that one route's methods in ``Allow`` (``PUT /v1/models`` said ``Allow: POST``,
though ``GET`` is served there too), and has no ``OPTIONS``. Here ``OPTIONS`` gets 204
with ``Allow`` holding the methods of every route whose path matches, and a 405's
``Allow`` is rewritten the same way. FastAPI's routes take no ``HEAD`` (405, though HTTP
asks that ``HEAD`` be served where ``GET`` is): a ``HEAD`` of a path that takes ``GET`` runs
as that ``GET`` and its response goes out without its body (status and headers, the
``content-length`` of the body included, as the ``GET`` would answer). Other requests pass
with nothing looked up: only ``OPTIONS``, ``HEAD`` and a response that starts with 405 scan the routes.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def allowed_methods(routes: list[BaseRoute], scope: Scope) -> list[str]:
    """The methods of the routes whose path matches ``scope`` (any method), sorted; [] for none."""
    methods: set[str] = set()
    for route in routes:
        route_methods = getattr(route, "methods", None)
        if not route_methods:
            continue  # a mount (static files) or a websocket: not ours to describe
        match, _ = route.matches({**scope, "method": next(iter(route_methods))})
        if match == Match.FULL:
            methods |= set(route_methods)
    if "GET" in methods:
        methods.add("HEAD")  # served as the GET without its body (AllowedMethodsMiddleware)
    return sorted(methods | {"OPTIONS"}) if methods else []


class AllowedMethodsMiddleware:
    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self.routes = routes  # the app's route list (read per request: routes added later count)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            allowed = allowed_methods(self.routes, scope)
            if allowed:
                headers = [(b"allow", ", ".join(allowed).encode()), (b"content-length", b"0")]
                await send({"type": "http.response.start", "status": 204, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return
        if scope["method"] == "HEAD" and "GET" in allowed_methods(self.routes, scope):
            await self.app({**scope, "method": "GET"}, receive, _without_body(send))
            return

        async def completing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                allowed = allowed_methods(self.routes, scope)
                if allowed:
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                    message = {**message, "headers": [*headers, (b"allow", ", ".join(allowed).encode())]}
            await send(message)

        await self.app(scope, receive, completing_send)


def _without_body(send: Send) -> Send:
    """``send`` for a ``HEAD`` answered by its ``GET``: the status and headers as they are, every
    body part empty."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return sending
