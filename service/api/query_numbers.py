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
from fastapi.exceptions import RequestValidationError

from tbptt_service.plain_numbers import INTEGER, NOT_FINITE, REAL

_AN_INTEGER = (INTEGER, "int_parsing", "an integer written in digits")
NUMBERS = {
    "horizon": _AN_INTEGER,
    "limit": _AN_INTEGER,
    "offset": _AN_INTEGER,
    "level": (REAL, "float_parsing", "a number written as a decimal"),
}


async def plain_numbers(request: Request) -> None:
    """422 for the first numeric query parameter (``NUMBERS``) not written plainly."""
    for name, sent in request.query_params.multi_items():
        rule = NUMBERS.get(name)
        if rule is None or rule[0].fullmatch(sent) or (rule[1] == "float_parsing" and NOT_FINITE.fullmatch(sent)):
            continue
        _, kind, what = rule
        error = {"type": kind, "loc": ("query", name), "msg": f"{sent[:40]!r} is not {what}", "input": sent}
        raise RequestValidationError([error])
