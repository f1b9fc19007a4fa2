"""The API key a request carries as ``Authorization: Bearer <key>``: which keys can be matched and sent.

A server reads a header's value without its leading and trailing spaces, and a header holds no control
character: a key with either can never be matched. A hostile test (session 50) started a server with
``TBPTT_API_KEY="s3cret "`` (a trailing space, as a key read from a file may have): it started without a
word and refused every request from then on, the operator's own CLI included. The server refuses such a
key at start (``ascii_only=False``: a key with a space inside, or past ASCII, is matched as sent, as curl
sends it); the client refuses it too, and a key past ASCII, which httpx cannot send (``sécret`` made
``Client(...)`` raise a bare ``UnicodeEncodeError``).

>>> checked_api_key("my secret"), checked_api_key("sécret", ascii_only=False)
('my secret', 'sécret')
>>> checked_api_key("s3cret ")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: api_key is invalid: a space at its end; ...
"""

from __future__ import annotations

_WHY = (
    "a server reads a header's value without its leading and trailing spaces, and a header holds no control character"
)


def checked_api_key(key: str, ascii_only: bool = True) -> str:
    """``key`` when a request can carry it and a server match it, else ``ValueError`` naming what is wrong
    and where: a space at either end, a control character, or (``ascii_only``, the client's) a character
    past ASCII."""
    if key != key.strip(" \t"):  # (what a server strips from a header's value: spaces and tabs)
        end = "start" if key[0] in " \t" else "end"
        what = "a space" if " " in (key[0], key[-1]) else "a tab"
        raise ValueError(f"api_key is invalid: {what} at its {end}; {_WHY}")
    for i, char in enumerate(key):
        if ord(char) < 32 or ord(char) == 127:
            raise ValueError(f"api_key is invalid: the control character {char!r} at position {i}; {_WHY}")
        if ascii_only and ord(char) > 126:
            raise ValueError(
                f"api_key is invalid: {char!r} at position {i} is not ASCII, which this client (httpx) cannot send"
            )
    return key
