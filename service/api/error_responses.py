"""How errors become responses: always ``{"detail": "<message naming the problem>", ...}``.

Request validation errors (FastAPI's 422) are rewritten from pydantic's list into
one message naming the field, plus ``index`` when an observation is at fault, the
first ``MAX_LISTED_ERRORS`` of pydantic's ``errors`` and their total ``error_count``.

>>> describe_location(("body", "batch", "observations", 3, "value"))
('observations[3].value', 3)
>>> describe_location(("query", "horizon"))
('horizon', None)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import JSONResponse

from tbptt_online.config import level_hint
from tbptt_service.api.schemas import MODEL_NAME_PATTERN, MODEL_NAME_RULE
from tbptt_service.errors import MAX_LISTED_ERRORS, ApiError, Busy, NotReady, quoted

_SOURCES = ("body", "query", "path", "header", "cookie")
_BODY_TAGS = ("batch", "single")  # the discriminated union of the observations body


def describe_location(loc: Sequence[Any]) -> tuple[str, int | None]:
    """A readable field path, and the index of the observation it lies in (if any)."""
    parts = list(loc)
    source = parts.pop(0) if parts and parts[0] in _SOURCES else ""
    index = None
    if source == "body" and parts and parts[0] in _BODY_TAGS:
        index = 0 if parts.pop(0) == "single" else None
    text = ""
    for i, part in enumerate(parts):
        if isinstance(part, int):
            text += f"[{part}]"
            if index is None and i > 0 and parts[i - 1] == "observations":
                index = part
        else:
            text += f".{part}" if text else str(part)
    return text or source or "request", index


def public_location(loc: Sequence[Any]) -> list[str]:
    """An error's ``loc`` as the answer gives it: the observations body's union tag left out, a single
    observation as element 0 of the batch it is read as, so that a 422's element is where a 409's is
    (``["body", "observations", "3", "value"]``; a hostile test, session 57: a 422 said
    ``["body", "batch", "observations", "3", "value"]`` and ``feed`` found no index in it).

    >>> public_location(("body", "batch", "observations", 3, "value")), public_location(("body", "single", "value"))
    (['body', 'observations', '3', 'value'], ['body', 'observations', '0', 'value'])
    """
    parts = list(loc)
    if len(parts) > 1 and parts[0] == "body" and parts[1] in _BODY_TAGS:
        parts[1:2] = [] if parts[1] == "batch" else ["observations", 0]
    return [str(part) for part in parts]


def _message(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "invalid JSON")
        position = error["loc"][-1] if len(error["loc"]) > 1 else "?"
        return f"malformed JSON body at character {position}: {reason}"
    where, _ = describe_location(error.get("loc", ()))
    if error.get("type") == "string_pattern_mismatch" and (error.get("ctx") or {}).get("pattern") == MODEL_NAME_PATTERN:
        # (a new user, session 48: "String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'")
        return f"{where}: {quoted(error.get('input'))} is invalid: {MODEL_NAME_RULE}"
    return f"{where}: {str(error.get('msg', 'invalid')).removeprefix('Value error, ')}{_hint(error)}"


def _hint(error: dict[str, Any]) -> str:
    """What a new user most likely meant, for two mistakes of theirs (a new user's report).

    >>> _hint({"loc": ("query", "level"), "type": "less_than_equal", "input": "90"})
    ' (a level is a fraction: 0.9 for 90 %)'
    >>> _hint({"loc": ("body", "single"), "type": "model_attributes_type", "input": [{"series": "a", "value": 1}]})
    ' (a list of observations goes in an object: {"observations": [...]})'
    """
    loc, kind, given = tuple(error.get("loc", ())), error.get("type"), error.get("input")
    if loc[-1:] == ("level",) and kind == "less_than_equal":
        return level_hint(given)  # (the config's interval_level gets the same)
    if loc in (("body",), ("body", "single"), ("body", "batch")) and isinstance(given, list):
        return ' (a list of observations goes in an object: {"observations": [...]})'
    return ""


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    body: dict[str, Any] = {"detail": _message(errors[0]) if errors else "invalid request"}
    if errors and errors[0].get("type") != "json_invalid":
        _, index = describe_location(errors[0].get("loc", ()))
        if index is not None:
            body["index"] = index
    body["errors"] = [
        {"loc": public_location(e.get("loc", ())), "msg": _message(e), "type": e.get("type")}
        for e in errors[:MAX_LISTED_ERRORS]
    ]
    body["error_count"] = len(errors)
    return JSONResponse(body, status_code=422)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = {"Retry-After": "1"} if isinstance(exc, NotReady | Busy) else None
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """An unexpected exception (a bug): 500 with the error body, and ``Connection: close``, because
    the server closes the connection after it (Starlette re-raises the exception to it, which logs
    the traceback)."""
    detail = f"internal error ({type(exc).__name__}); the server's log has the details"
    return JSONResponse({"detail": detail}, status_code=500, headers={"Connection": "close"})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(Exception, _internal_error)  # Starlette's ServerErrorMiddleware calls it
