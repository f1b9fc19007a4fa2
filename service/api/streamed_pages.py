"""A page of forecasts sent as it is encoded, a few series at a time, each part after the client took the one before.

A page was built whole (its forecasts as Python lists, their dicts, then the JSON) and handed to the
connection at once; a client that asked and did not read held all of it: 60 such clients of pages of 100
series 1,000 steps ahead took the process from 0.95 to 3.48 GB, 2.39 GB still held while they were
connected (a hostile test, session 60: F6). Here a page's forecasts are packed into ``array('d')`` s (8
bytes a number, 32 as a ``float`` in a list), and a :class:`PageStream` encodes them in parts of about
``PART_NUMBERS`` numbers (a series' forecast at least): uvicorn waits for the client to take what was
written before it asks for the next part (its flow control), so a client that does not read holds the
packed forecasts left and one part, about 2.7 MB for the largest page (``MAX_PAGE_STEPS``). The bytes are those
``orjson.dumps`` makes of the whole page (a missing number, None, is packed as NaN, which orjson writes
as ``null`` as it writes None).

>>> import asyncio
>>> from tbptt_online.results import Forecast
>>> one = Forecast("a", 2, 0.9, [1.5, None], [1.0, None], [2.0, None], 7, 3)
>>> def answer(packed: PackedForecast) -> dict:
...     f = packed.unpacked()
...     return {"series": f.series, "mean": f.mean, "lower": f.lower}
>>> stream = PageStream([pack(one, None)], answer, {"total": 1, "next_offset": None})
>>> async def whole() -> bytes:
...     return b"".join([part async for part in stream])
>>> asyncio.run(whole())
b'{"forecasts":[{"series":"a","mean":[1.5,null],"lower":[1.0,null]}],"total":1,"next_offset":null}'
"""

from __future__ import annotations

import asyncio
import math
from array import array
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from tbptt_online.results import Forecast
from tbptt_service.api.json_answers import OFF_LOOP_NUMBERS
from tbptt_service.host.admission import SeriesMark

# A part holds about this many numbers (about 0.3 MB of JSON, a few ms to encode, on the event loop as
# json_answer encodes an answer under OFF_LOOP_NUMBERS; a part past that, one series' forecast of a wide
# model, is encoded on a worker thread). Parts of 3,000 numbers made the largest page 20 % slower to send.
PART_NUMBERS = OFF_LOOP_NUMBERS // 2


@dataclass(frozen=True)
class PackedForecast:
    """A series' forecast with its columns packed: ``mean``, ``lower``, ``upper`` each ``horizon * d`` float64s
    (step-major; NaN where the library said None, ``missing`` when it did)."""

    series: str
    features: int  # d: 1 answers each step's number, more a list of d
    forecast: Forecast  # its lists emptied: the other fields as they were
    columns: tuple[array, array, array]
    mark: SeriesMark | None
    missing: bool = False  # a None among the numbers (NaN in the columns): only then is each number looked at

    @property
    def numbers(self) -> int:
        return 3 * len(self.columns[0])

    def unpacked(self) -> Forecast:
        """The forecast as the library gave it, its lists made again from the packed columns."""
        d = self.features
        rows = [column.tolist() for column in self.columns]
        if self.missing:
            rows = [[None if math.isnan(x) else x for x in values] for values in rows]
        if d > 1:  # step-major rows of d
            rows = [[values[k : k + d] for k in range(0, len(values), d)] for values in rows]
        f = self.forecast
        return Forecast(f.series, f.horizon, f.level, rows[0], rows[1], rows[2], f.step, f.update_count)


def _packed(flat: list) -> tuple[array, bool]:
    """``flat`` as float64s, and whether it held a None (packed as NaN)."""
    try:
        return array("d", flat), False  # (in C: the common case, no None)
    except TypeError:
        return array("d", [math.nan if x is None else x for x in flat]), True


def pack(forecast: Forecast, mark: SeriesMark | None) -> PackedForecast:
    """``forecast`` with its columns packed (see :class:`PackedForecast`)."""
    first = forecast.mean[0] if forecast.mean else None
    features = len(first) if isinstance(first, list) else 1
    columns, missing = [], False
    for column in (forecast.mean, forecast.lower, forecast.upper):
        packed, held_none = _packed([x for row in column for x in row] if features > 1 else column)
        columns.append(packed)
        missing = missing or held_none
    bare = Forecast(forecast.series, forecast.horizon, forecast.level, [], [], [], forecast.step, forecast.update_count)
    return PackedForecast(forecast.series, features, bare, (columns[0], columns[1], columns[2]), mark, missing)


class PageStream:
    """The JSON of ``{"forecasts": [answer(p) for p in packed], **tail}``, part by part (an async iterator of
    bytes, for a ``StreamingResponse``); each forecast is let go once encoded."""

    def __init__(
        self, packed: list[PackedForecast], answer: Callable[[PackedForecast], dict[str, Any]], tail: dict[str, Any]
    ) -> None:
        self.packed = packed
        self.answer = answer
        self.tail = tail

    def _encode(self, group: list[PackedForecast]) -> bytes:
        return b",".join(orjson.dumps(self.answer(p)) for p in group)

    async def whole(self) -> bytes:
        """All the parts joined: for an HTTP/1.0 client, which knows no chunked answer (uvicorn sent one to it)."""
        return b"".join([part async for part in self])

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"forecasts":['
        first = True
        while self.packed:
            group, numbers = [], 0
            while self.packed and numbers < PART_NUMBERS:
                packed = self.packed.pop(0)  # let go: what a slow client holds shrinks as it reads
                group.append(packed)
                numbers += packed.numbers
            encode: Callable[[], bytes] = lambda group=group: self._encode(group)  # noqa: E731
            part = encode() if numbers < OFF_LOOP_NUMBERS else await asyncio.to_thread(encode)
            yield part if first else b"," + part
            first = False
        yield b"]," + orjson.dumps(self.tail)[1:]  # the tail's keys after the list, as orjson orders a dict
