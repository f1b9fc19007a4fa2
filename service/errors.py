"""Errors the service answers with, and the storage error a journal may raise.

An :class:`ApiError` carries its HTTP status, a ``detail`` message naming the
problem and optional extra fields (``index`` of the bad observation, ...). It is
raised wherever the problem is found (a route, the model worker) and rendered as
``{"detail": ..., **extra}`` by the app's exception handler.

>>> e = Unprocessable("observation 2: value has 2 feature(s), expected n_features=1", index=2)
>>> e.status_code, e.body()
(422, {'detail': 'observation 2: value has 2 feature(s), expected n_features=1', 'index': 2})

A body naming several problems (a 422 of bad elements, a 409 of elements the timestamp
rule refuses) lists the first ``MAX_LISTED_ERRORS`` as ``errors``, each ``{"loc", "msg",
"type"}``, and counts them all in ``error_count``.
"""

from __future__ import annotations

import json
import reprlib
from typing import Any

from tbptt_online.config import ConfigValueError

MAX_LISTED_ERRORS = 5  # an error body names a few problems, never one per element of a large batch


class _JsonShaped(reprlib.Repr):
    """``reprlib.Repr`` writing what a JSON body can hold as JSON writes it: true, false, null and
    double-quoted strings (a client sent JSON, and ``True`` or ``'1.5'`` quoted it back in Python)."""

    def repr_bool(self, x: bool, level: int) -> str:
        return "true" if x else "false"

    def repr_NoneType(self, x: None, level: int) -> str:
        return "null"

    def repr_str(self, x: str, level: int) -> str:
        if len(x) <= self.maxstring:
            return json.dumps(x, ensure_ascii=False)
        return json.dumps(x[: self.maxstring], ensure_ascii=False)[:-1] + '..."'


_SHORT = _JsonShaped()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict = 2, 4, 4
_SHORT.maxstring = _SHORT.maxother = _SHORT.maxlong = 60


def quoted(value: Any) -> str:
    """A bad value as an error message shows it: as JSON writes it (``true``, ``null``,
    ``"1.5"``), cut short in length and depth, so a 1,000-deep list is no ``RecursionError``
    (a 500) and a 10^6-element one no 8 MB message.

    >>> quoted([[[[1.0]]]]), quoted(list(range(10**6))), quoted("x" * 100)[:12], quoted([True, None, "a"])
    ('[[[...]]]', '[0, 1, 2, 3, ...]', '"xxxxxxxxxxx', '[true, null, "a"]')
    >>> quoted({"k": "v"}), quoted("x" * 100)[-6:]
    ('{"k": "v"}', 'xx..."')
    """
    return _SHORT.repr(value)


def config_problem(error: ValueError | TypeError) -> str:
    """The library's refusal of a config as the service says it: a refused field's value
    (``ConfigValueError``) quoted as JSON writes it, not as Python does (``season_length='weekly'``
    beside ``"auto"``; a hostile test, session 57); any other refusal as the library wrote it.

    >>> from tbptt_online import ConfigValueError
    >>> config_problem(ConfigValueError("season_length", "weekly", 'must be "auto", null or an integer'))
    'season_length="weekly" is invalid: must be "auto", null or an integer'
    >>> config_problem(ConfigValueError("guards", None, "must be true or false"))
    'guards=null is invalid: must be true or false'
    >>> config_problem(ValueError("unknown config field(s) ['x']"))
    "unknown config field(s) ['x']"
    """
    if isinstance(error, ConfigValueError):
        return f"{error.field}={quoted(error.value)} is invalid: {error.allowed}"
    return str(error)


class StorageFullError(OSError):
    """Raised by a journal that cannot record a batch (disk full): the batch is refused (507)."""


class LogUnavailable(OSError):
    """Raised by a journal whose log cannot be reached (its database is down, its connection lost):
    the change is refused (503) and nothing of it is applied."""


class ApiError(Exception):
    status_code = 500

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, **self.extra}


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    """The request is well formed but contradicts the model's state (timestamps, caps, names)."""

    status_code = 409


class Unprocessable(ApiError):
    status_code = 422


class InsufficientStorage(ApiError):
    status_code = 507


class NotReady(ApiError):
    status_code = 503


class Busy(ApiError):
    """The model holds as many observations waiting as it may (``TBPTT_MAX_QUEUED_OBSERVATIONS``): nothing of
    the request was applied; retry after a second (answered with ``Retry-After``)."""

    status_code = 503


class LogDown(ApiError):
    """The journal's log cannot be reached: nothing was applied; retry once it is back."""

    status_code = 503


class ReportFailed(ApiError):
    """A report the model makes beside its work (the truncation advisor's) failed: logged with its
    traceback; the model goes on, and the report is made again when its inputs change."""

    status_code = 503


class Quarantined(ApiError):
    """The model's state could not be rebuilt from the log (or a batch failed to apply): it refuses
    every request, saying why, until it is deleted."""

    status_code = 503

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"model {name!r} is quarantined: {reason}; delete it to start it afresh")
