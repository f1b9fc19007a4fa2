"""StrictJSONRoute: request bodies parsed by orjson, which follows RFC 8259 strictly.

Python's ``json`` accepts ``NaN``, ``Infinity`` and ``1e400`` (read as infinity);
orjson refuses all three, so non-finite numbers are malformed JSON (422) before
any validation runs; a ``NaN``, ``Infinity`` or ``-Infinity`` token is told to be
sent as ``null``. Its ``JSONDecodeError`` is the stdlib's, so FastAPI reports
it as a ``json_invalid`` validation error with the position. A leading UTF-8 byte
order mark is skipped (RFC 8259 lets a parser ignore it).

A route with a JSON body refuses a body declared as anything but JSON with 415 naming
the type, or saying it is missing (``curl -d`` sends ``application/x-www-form-urlencoded``,
and a body without the header is not read as JSON either: FastAPI answered "Input should
be a valid dictionary", index 0). A body sent compressed (``Content-Encoding`` other than
``identity``) is refused with 415 naming the coding (RFC 9110, 15.5.16): gzip was read as
JSON text and told "the body is not UTF-8: byte 0x8b at byte 1", a hostile test.

>>> try:
...     check_json_content_type([(b"content-type", b"application/x-www-form-urlencoded")])
... except UnsupportedMediaType as error:
...     print(error.status_code, error.detail[:60])
415 Content-Type 'application/x-www-form-urlencoded' is not JSON
>>> check_json_content_type([(b"content-type", b"application/json; charset=utf-8")])
>>> try:
...     check_json_content_type([(b"content-type", b"application/json"), (b"content-encoding", b"gzip")])
... except UnsupportedMediaType as error:
...     print(error.status_code, error.detail)
415 Content-Encoding 'gzip' is not supported: send the body uncompressed (identity)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from tbptt_service.errors import ApiError


class UnsupportedMediaType(ApiError):
    status_code = 415


def check_json_content_type(headers: list[tuple[bytes, bytes]]) -> None:
    """``UnsupportedMediaType`` (415) unless the last Content-Type is JSON (``application/json`` or
    ``application/*+json``, parameters allowed), as FastAPI reads a body as JSON, and every
    Content-Encoding is ``identity`` (none is the same)."""
    declared = None
    for name, value in headers:  # the last one counts
        if name == b"content-type":
            declared = value
        elif name == b"content-encoding":
            for coding in value.split(b","):  # a list, in the order applied; every header counts
                if coding.strip().lower() not in (b"", b"identity"):
                    raise UnsupportedMediaType(
                        f"Content-Encoding {coding.strip().decode('latin-1')!r} is not supported: "
                        "send the body uncompressed (identity)"
                    )
    if declared is None:  # FastAPI's strict content type: such a body is not read as JSON
        raise UnsupportedMediaType(
            "the body has no Content-Type: send it as JSON with 'Content-Type: application/json'"
        )
    kind = declared.partition(b";")[0].strip().lower()
    if kind == b"application/json" or (kind.startswith(b"application/") and kind.endswith(b"+json")):
        return
    raise UnsupportedMediaType(
        f"Content-Type {declared.decode('latin-1')!r} is not JSON: send the body as JSON with "
        "'Content-Type: application/json'"
    )


UTF8_BOM = b"\xef\xbb\xbf"


def without_bom(body: bytes) -> bytes:
    """``body`` without a leading UTF-8 byte order mark, which RFC 8259 (8.1) lets a parser ignore:
    Windows tools write one (PowerShell's ``Out-File``, Notepad), and orjson refused such a body (422).

    >>> without_bom(UTF8_BOM + b'{"a": 1}'), without_bom(b"{}")
    (b'{"a": 1}', b'{}')
    """
    return body[3:] if body[:3] == UTF8_BOM else body


def parse(body: bytes) -> Any:
    """The JSON ``body`` (after a byte order mark) by orjson; a body that is not UTF-8 is
    refused naming the first bad byte and its offset (orjson says "str is not valid UTF-8:
    surrogates not allowed" at character 0, whatever the byte and wherever it is).

    >>> parse(b'{"a": [1, 2]}')
    {'a': [1, 2]}
    >>> try:
    ...     parse(b'{"series":"\\xe9","value":1}'.decode("unicode_escape").encode("latin-1"))
    ... except orjson.JSONDecodeError as error:
    ...     print(error.pos, error.msg)
    11 the body is not UTF-8: byte 0xe9 at byte 11 (send JSON text as UTF-8)
    """
    text = without_bom(body)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        try:
            text.decode("utf-8")
        except UnicodeDecodeError as bad:
            byte = text[bad.start]
            offset = bad.start + len(body) - len(text)
            message = f"the body is not UTF-8: byte 0x{byte:02x} at byte {offset} (send JSON text as UTF-8)"
            raise orjson.JSONDecodeError(message, text.decode("utf-8", "replace"), offset) from None
        raise _non_finite_hint(error) from None


# what any body's NaN is told: the observations' missing value is null, and a config's number is a number (a new
# user's config sent with NaN read "send null for a missing value", which is no config's fix)
NOT_JSON_HINT = "(JSON has no NaN or infinities): an observation's missing value is null"
_NON_FINITE = re.compile(r"-?(?:NaN|Infinity)(?![A-Za-z0-9_])")  # as Python's json.dumps writes them


def _non_finite_hint(error: orjson.JSONDecodeError) -> orjson.JSONDecodeError:
    """``error`` told what to do where its position holds ``NaN``, ``Infinity`` or ``-Infinity``, which
    Python's ``json.dumps`` writes by default and JSON has not (a new user's gateway, session 56: told only
    "unexpected character, expected a JSON value"); named at the token's first character (orjson names
    the one after a sign). Any other error as it is.

    >>> hinted = _non_finite_hint(orjson.JSONDecodeError("no digit after sign", '{"v": -Infinity}', 7))
    >>> hinted.pos, hinted.msg
    (6, "-Infinity is not JSON (JSON has no NaN or infinities): an observation's missing value is null")
    """
    doc, pos = error.doc, error.pos
    for start in (pos - 1, pos):  # (a sign before the position first)
        token = _NON_FINITE.match(doc, start) if start >= 0 else None
        if token is not None and token.end() > pos:
            return orjson.JSONDecodeError(f"{token.group()} is not JSON {NOT_JSON_HINT}", doc, start)
    return error


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        json_body = self.body_field is not None

        async def strict_handler(request: Request) -> Response:
            if json_body:
                check_json_content_type(request.scope["headers"])
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler
