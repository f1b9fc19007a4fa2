"""StrictJSONRoute: request bodies parsed by orjson, which follows RFC 8259 strictly.

Python's ``json`` accepts ``NaN``, ``Infinity`` and ``1e400`` (read as infinity);
orjson refuses all three, so non-finite numbers are malformed JSON (422) before
any validation runs. Its ``JSONDecodeError`` is the stdlib's, so FastAPI reports
it as a ``json_invalid`` validation error with the position.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler
