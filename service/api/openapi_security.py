"""The OpenAPI of a service with an API key: the bearer scheme, required by every protected operation.

With ``TBPTT_API_KEY`` set, :class:`~tbptt_service.api.auth.ApiKeyMiddleware` answers 401 on every
path but the open ones (``tbptt_service.api.auth.OPEN_PATHS``); the document says so: a
``bearer`` HTTP security scheme, ``security`` on each protected operation and its 401
response (the error body). Without a key nothing is protected and nothing is declared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from tbptt_service.api.auth import OPEN_PATHS, OPEN_PREFIXES

SCHEME = "bearer"
UNAUTHORIZED = {
    "description": "Missing or wrong API key (send 'Authorization: Bearer <key>')",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
}
ERROR_OUT = {"properties": {"detail": {"type": "string", "title": "Detail"}}, "type": "object", "required": ["detail"]}


def declare_bearer_security(app: FastAPI) -> None:
    """Make ``app.openapi()`` declare the bearer scheme on every protected operation."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {})[SCHEME] = {
            "type": "http",
            "scheme": "bearer",
            "description": "The service's API key (TBPTT_API_KEY).",
        }
        components.setdefault("schemas", {}).setdefault("ErrorOut", ERROR_OUT)
        for path, operations in schema.get("paths", {}).items():
            if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
                continue
            for operation in operations.values():
                operation["security"] = [{SCHEME: []}]
                operation.setdefault("responses", {}).setdefault("401", UNAUTHORIZED)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
