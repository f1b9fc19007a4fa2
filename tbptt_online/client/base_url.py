"""The server address a client is made with: one httpx can send requests to, else ``ValueError`` naming it.

A hostile test (session 51): ``Client("http://[::1")`` (a bracket left open, as ``tbptt-online feed --url`` or
``TBPTT_URL`` handed it on) raised httpx's ``InvalidURL``, neither a ``ValueError`` nor a ``ClientError``, and the
CLI printed its traceback. An address without ``http://`` (``localhost:8000``, read as the scheme ``localhost``)
was taken, and each request then failed as a transport failure, retried, that said nothing of the address.

>>> checked_base_url("http://127.0.0.1:8000/"), base_url_problem("http://[::1]:8000")
('http://127.0.0.1:8000', None)
>>> checked_base_url("http://[::1")
Traceback (most recent call last):
...
ValueError: base_url 'http://[::1' is invalid: Invalid port: ':1'
>>> base_url_problem("localhost:8000")
'must start with http:// or https:// and name a host, e.g. http://127.0.0.1:8000'
"""

from __future__ import annotations

import httpx


def base_url_problem(url: object) -> str | None:
    """Why ``url`` cannot be a client's base URL (httpx's reason for one it cannot parse), None when it can."""
    if not isinstance(url, str):
        return f"must be text, not {type(url).__name__}"
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        return str(error)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return "must start with http:// or https:// and name a host, e.g. http://127.0.0.1:8000"
    if parsed.port is not None and not 1 <= parsed.port <= 65535:  # (a review: :99999 and :-1 were taken)
        return f"port {parsed.port} is not one of 1 to 65535"
    if "%" in parsed.host:  # a space or another character no host name has, escaped by httpx (a review's)
        return f"host {parsed.host!r} is not a host name or address"
    return None


def checked_base_url(url: str) -> str:
    """``url`` without its trailing slashes, or ``ValueError`` naming it and what is wrong (``base_url_problem``)."""
    problem = base_url_problem(url)
    if problem is not None:
        raise ValueError(f"base_url {url!r:.200} is invalid: {problem}")
    return url.rstrip("/")
