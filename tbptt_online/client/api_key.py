"""The API key a request carries as ``Authorization: Bearer <key>``: which keys can be sent at all.

An HTTP header's value is ASCII, and a server reads it without its leading and trailing spaces: a
key holding a space, a control character or a character past ASCII can never be matched. A hostile
test (session 50) started a server with ``TBPTT_API_KEY="s3cret "`` (a trailing space, as a key
read from a file may have): it started without a word and refused every request from then on, the
operator's own CLI included; a key of ``sécret`` made ``Client(...)`` raise a bare
``UnicodeEncodeError``. The server (``TBPTT_API_KEY``) and the client refuse such a key at once.

>>> checked_api_key("s3cret")
's3cret'
>>> checked_api_key("s3cret ")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: api_key is invalid: a space at position 6; a key is visible ASCII (33-126) only: ...
"""

from __future__ import annotations


def checked_api_key(key: str) -> str:
    """``key`` when every character of it is visible ASCII (33 to 126), else ``ValueError`` naming the first
    that is not and where it is."""
    for i, char in enumerate(key):
        if not 33 <= ord(char) <= 126:
            what = "a space" if char == " " else f"the character {char!r}"
            raise ValueError(
                f"api_key is invalid: {what} at position {i}; a key is visible ASCII (33-126) only: an HTTP header "
                "is ASCII, and a server reads it without its leading and trailing spaces"
            )
    return key
