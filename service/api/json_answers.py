"""A route's JSON answer, encoded on the event loop when small and on a worker thread when large.

An answer holds a few numbers per feature per step or value: a wide model's is many megabytes,
and building and encoding it on the event loop held every other request (a hostile test, session
48: a 203 MB answer to a batch of 1,024 features held ``/healthz`` for 2.84 s; 8 forecasts of
43.7 MB each, 0.79 s). Small answers, the common case, stay on the loop: a worker thread's
hand-off costs more than they do.

>>> import asyncio
>>> asyncio.run(json_answer(lambda: b'{"a": 1}', 10)).body
b'{"a": 1}'
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.responses import Response

# An answer of at least this many numbers (values or steps times the model's features) is made on a worker
# thread: a batch's holds 6 numbers a feature per result, a forecast's 3 a step (about 2.4 MB here)
OFF_LOOP_NUMBERS = 20_000


async def json_answer(encode: Callable[[], bytes], numbers: int) -> Response:
    """``encode()``'s bytes as an ``application/json`` response, made on a worker thread when the answer
    holds ``numbers`` or more numbers (``OFF_LOOP_NUMBERS``)."""
    body = encode() if numbers < OFF_LOOP_NUMBERS else await asyncio.to_thread(encode)
    return Response(body, media_type="application/json")
