"""Numbers in a query string, written plainly: an integer in digits, a real as a decimal.

FastAPI reads a query parameter typed ``int`` or ``float`` through pydantic's lax mode, which
takes a string as Python's ``int()`` and ``float()`` do: ``horizon=1_000`` was 1000,
``level=0.9_5`` 0.95, ``limit=%2012`` (a space, then 12) 12. No client means those; a typo
should be told, not guessed. :func:`plain_numbers`, a dependency of the routes that take
such parameters, checks the strings first (an optional sign and digits; a real also a point
and an exponent) and answers 422 in the shape of FastAPI's own validation errors; the
parameter's type and bounds are checked by FastAPI as before (a validator in the parameter's
type would do the same, but FastAPI then writes its bounds into the OpenAPI as ``ge``/``le``
instead of ``minimum``/``maximum``). ``nan`` and ``inf`` are left to the parameter's own check,
which names them ("should be a finite number"). What "plainly" means: ``plain_numbers``
(the module of that name, shared with the CSV cells of ``feed`` and ``advise``).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from tbptt_service.plain_numbers import INTEGER, NOT_FINITE, REAL

_AN_INTEGER = (INTEGER, "int_parsing", "an integer written in digits")
NUMBERS = {
    "horizon": _AN_INTEGER,
    "limit": _AN_INTEGER,
    "offset": _AN_INTEGER,
    "level": (REAL, "float_parsing", "a number written as a decimal"),
}


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route reads: its endpoint's and its dependencies'."""
    names = {param.alias for param in dependant.query_params}
    for inner in dependant.dependencies:
        names |= _query_names(inner)
    return names


async def plain_numbers(request: Request) -> None:
    """422 for a query parameter the route does not read or sent twice (``?h=5`` was ignored and
    the default horizon served, ``?horizon=3&horizon=5`` read as 5: a new user's and a hostile
    test's reports), then for the first numeric one (``NUMBERS``) not written plainly. Every /v1
    route depends on it (``deps.V1_DEPENDENCIES``), those that read no parameter too."""
    route = request.scope.get("route")
    if isinstance(route, APIRoute):
        known, seen = _query_names(route.dependant), set()
        for name, _ in request.query_params.multi_items():
            if name not in known:
                reads = f"it reads {', '.join(sorted(known))}" if known else "it reads none"
                error = {"type": "extra_forbidden", "loc": ("query", name), "input": name}
                error["msg"] = f"{name[:40]!r} is no parameter of this route: {reads}"
                raise RequestValidationError([error])
            if name in seen:
                error = {"type": "too_many", "loc": ("query", name), "input": name}
                error["msg"] = "sent more than once: send each parameter once"
                raise RequestValidationError([error])
            seen.add(name)
    for name, sent in request.query_params.multi_items():
        rule = NUMBERS.get(name)
        if rule is None or rule[0].fullmatch(sent) or (rule[1] == "float_parsing" and NOT_FINITE.fullmatch(sent)):
            continue
        _, kind, what = rule
        error = {"type": kind, "loc": ("query", name), "msg": f"{sent[:40]!r} is not {what}", "input": sent}
        raise RequestValidationError([error])
