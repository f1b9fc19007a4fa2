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
which names them ("should be a finite number").

>>> [bool(_INTEGER.fullmatch(s)) for s in ("12", "+3", "-1", "1_000", " 12", "1.0")]
[True, True, True, False, False, False]
>>> [bool(_REAL.fullmatch(s)) for s in ("0.9", ".5", "8e-1", "1.", "0.9_5", " 0.9", "nan")]
[True, True, True, True, False, False, False]
"""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.exceptions import RequestValidationError

_INTEGER = re.compile(r"[+-]?[0-9]+")
_REAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NOT_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
_AN_INTEGER = (_INTEGER, "int_parsing", "an integer written in digits")
NUMBERS = {
    "horizon": _AN_INTEGER,
    "limit": _AN_INTEGER,
    "offset": _AN_INTEGER,
    "level": (_REAL, "float_parsing", "a number written as a decimal"),
}


async def plain_numbers(request: Request) -> None:
    """422 for the first numeric query parameter (``NUMBERS``) not written plainly."""
    for name, sent in request.query_params.multi_items():
        rule = NUMBERS.get(name)
        if rule is None or rule[0].fullmatch(sent) or (rule[1] == "float_parsing" and _NOT_FINITE.fullmatch(sent)):
            continue
        _, kind, what = rule
        error = {"type": kind, "loc": ("query", name), "msg": f"{sent[:40]!r} is not {what}", "input": sent}
        raise RequestValidationError([error])
