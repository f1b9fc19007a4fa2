"""Numbers written plainly, as text: an integer in digits, a real as a decimal (an optional
sign, digits, a point, an exponent), ``nan`` and ``inf`` spelled as words.

Python's ``int()`` and ``float()`` also take ``1_000``, spaces around the digits and other
scripts' digits (``"١٢"`` is 12), which no client and no export means. The query strings
(``api/query_numbers``) and the CSV cells of ``feed`` and ``advise`` (``cli/csv_source``) take
only these.

>>> [bool(INTEGER.fullmatch(s)) for s in ("12", "+3", "-1", "1_000", " 12", "1.0")]
[True, True, True, False, False, False]
>>> [bool(REAL.fullmatch(s)) for s in ("0.9", ".5", "8e-1", "1.", "0.9_5", " 0.9", "nan")]
[True, True, True, True, False, False, False]
>>> plain_float("1.5e2"), plain_float("-inf")
(150.0, -inf)
>>> plain_float("1_0")
Traceback (most recent call last):
...
ValueError: '1_0' is not a number written plainly
"""

from __future__ import annotations

import re

INTEGER = re.compile(r"[+-]?[0-9]+")
REAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
NOT_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)


def plain_float(text: str) -> float:
    """``float(text)`` for a real written plainly (``REAL``, or ``NOT_FINITE``'s words), else
    ``ValueError``."""
    if not (REAL.fullmatch(text) or NOT_FINITE.fullmatch(text)):
        raise ValueError(f"{text!r} is not a number written plainly")
    return float(text)
