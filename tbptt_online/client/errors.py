"""Errors the client raises: one for an HTTP answer that is not a success, one for no answer.

An :class:`ApiError` carries the status code and the server's ``detail`` message
(plus ``index``, the position of the bad observation in a batch, when the server
names one). Subclasses let callers catch the common cases by name.

>>> error = error_for_status(409, {"detail": "observation 2: timestamp 9.0 is older", "index": 2})
>>> isinstance(error, Conflict), error.status_code, error.index
(True, 409, 2)
>>> print(error)
409: observation 2: timestamp 9.0 is older
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Base of everything this client raises on purpose."""


class TransportFailure(ClientError):
    """No HTTP answer came back (connection refused, reset, timed out), after any retries."""


class UnexpectedAnswer(ClientError):
    """The server answered, but not as the tbptt-online API answers: not JSON, JSON with NaN or an
    infinity (the service sends null), nested past Python's recursion limit, or of another shape
    than the call's result (a proxy's page, another service at that address). Until session 49 each
    of these left the client as a ``KeyError``, ``TypeError`` or ``RecursionError`` (a hostile test),
    and a NaN forecast was returned as one."""


class ApiError(ClientError):
    """The server answered with a status that is not a success."""

    def __init__(self, status_code: int, detail: str, body: Any = None) -> None:
        super().__init__(f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail
        self.body = body
        self.index: int | None = body.get("index") if isinstance(body, dict) else None
        refused = body.get("refused") if isinstance(body, dict) else None
        # every element a 409 refused (the timestamp rule, the series cap), where the server lists them
        self.refused: list[int] | None = refused if isinstance(refused, list) else None
        self.offset = 0  # where the failed request began in the caller's list (``observe_many``'s batches)
        self.applied: list[Any] = []  # the results of the caller's earlier requests, applied (``observe_many``)

    def in_batches(self, offset: int, applied: list[Any]) -> ApiError:
        """This error of the request that began at element ``offset`` of the caller's list, after ``applied``
        (the earlier requests' results) were: ``index`` and ``refused`` become the caller's elements, and the
        message says so.
        (``errors``' ``loc`` keep the request's positions: add ``offset``.) A hostile test, session 57: element
        230 of 250 sent 100 a request was reported as "observation 30", an element applied before."""
        self.offset, self.applied = offset, applied
        if offset:
            if self.index is not None:
                self.index += offset
            if self.refused is not None:
                self.refused = [i + offset for i in self.refused]
            self.args = (
                f"{self.args[0]} (in the request of elements {offset}..; the {offset} before it were applied)",
            )
        return self


class Unauthorized(ApiError):
    """401: the API key is missing or wrong."""


class NotFound(ApiError):
    """404: no such model or series."""


class Conflict(ApiError):
    """409: contradicts the server's state (an older timestamp, a name taken, a cap reached)."""


class Unprocessable(ApiError):
    """422: the request is malformed or a value is invalid (``index`` names the element)."""


_BY_STATUS: dict[int, type[ApiError]] = {401: Unauthorized, 404: NotFound, 409: Conflict, 422: Unprocessable}


def error_for_status(status_code: int, body: Any) -> ApiError:
    """The exception for an error answer; ``body`` is the decoded JSON (or the raw text)."""
    if isinstance(body, dict) and "detail" in body:
        detail = _message(body["detail"])
    else:
        detail = str(body) if body not in (None, "") else "(no message)"
    return _BY_STATUS.get(status_code, ApiError)(status_code, detail, body)


def _message(detail: Any) -> str:
    """A string from ``detail``: FastAPI's own validation errors give a list of {loc, msg}."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list) and all(isinstance(item, dict) and "msg" in item for item in detail):
        return "; ".join(".".join(str(part) for part in item.get("loc", ())) + ": " + item["msg"] for item in detail)
    return repr(detail)
