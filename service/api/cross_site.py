"""CrossSiteMiddleware: a change sent by a browser from another site's page is refused (403).

The service sends no CORS headers, so another site's page can read nothing from it, but a
browser still *sends* a "simple" cross-origin request (a ``POST`` whose ``Content-Type`` is
``text/plain``, a form's, or none) without asking first, and the service acted on it: a
hostile test replaced a model's state with a page's ``fetch(..., {mode: "no-cors"})`` of a
checkpoint import (the model's forecast went from 0.42 to 999,999.99), and could back off
nothing but reset the learning rate the same way. The JSON routes refuse ``text/plain``
(415); the import and the bodiless ``POST``s cannot.

A browser says where a request comes from: ``Sec-Fetch-Site`` (``same-origin``,
``same-site``, ``cross-site``, or ``none`` for one the user typed), and ``Origin`` on every
``POST``, ``PUT``, ``PATCH`` and ``DELETE`` it sends across origins (and on most it sends to its
own). A request with any other method than ``GET``, ``HEAD`` and ``OPTIONS`` is refused when
``Sec-Fetch-Site`` names another origin, or when it carries an ``Origin`` whose host is not
the request's own ``Host`` nor a host a proxy names (``X-Forwarded-Host``, ``Forwarded:
host=``; ``null`` included: a sandboxed page or a file). A proxy that rewrites ``Host`` must
send one of those for the dashboard's changes to pass (nginx's ``proxy_set_header Host
$proxy_host`` default sends neither: add ``proxy_set_header X-Forwarded-Host $host``). The dashboard (same
origin) passes, and so do clients outside a browser (the library's client, the CLI, curl,
another service), which send neither header. Reads are left alone: what they answer is not
readable across origins.

**A page whose name was rebound to the service's address** (DNS rebinding) is same-origin with it,
so the rules above let it through: its requests carry ``Host: evil.example:8000`` and a matching
``Origin`` (a hostile test, session 50, created and deleted models so, and such a page can read every
answer). So a request a browser sends (it carries ``Sec-Fetch-Site`` or ``Origin``), whatever its
method, is refused unless its ``Host`` names a loopback address (``localhost``, ``*.localhost``,
``127.x.y.z``, ``::1``) or one of ``allowed_hosts`` (``TBPTT_ALLOWED_HOSTS``, and ``TBPTT_HOST`` when it
names one address; ``*``: any), as Jupyter does. Only ``Host`` is read there: a rebound page may set
``X-Forwarded-Host`` itself. Clients outside a browser are not concerned.

**In a cluster** a shard's app checks each request a front forwards against *that front's* names
(:data:`FRONT_HOSTS`, set by the shard around the request: the front's ``TBPTT_HOST`` and the cluster's
``TBPTT_ALLOWED_HOSTS``), not its own: the shards took the ``TBPTT_HOST`` of the front that created them, so
a browser reaching a front on another node by that node's name was refused (``host`` may differ between fronts:
each listens on its own node; the review of session 58).
"""

from __future__ import annotations

from contextvars import ContextVar
from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PROXY_HEADERS = (b"x-forwarded-host", b"forwarded")
# The names the front that forwarded the request being handled answers browsers at, as ``host_name`` writes them
# (a shard sets it around each forwarded request, ShardApp); None: the app's own ``allowed_hosts``. Not settable
# from a request.
FRONT_HOSTS: ContextVar[frozenset[str] | None] = ContextVar("front_browser_hosts", default=None)


def _forwarded_hosts(name: bytes, value: str) -> list[str]:
    """The hosts a proxy header names: ``X-Forwarded-Host: a, b`` (one per proxy), or each
    ``host=`` of ``Forwarded: for=...;host=a, host="b"`` (RFC 7239).

    >>> _forwarded_hosts(b"forwarded", 'for=1.2.3.4;host="Pub.example";proto=https, host=inner:8000')
    ['pub.example', 'inner:8000']
    """
    if name == b"x-forwarded-host":
        return [part.strip().lower() for part in value.split(",") if part.strip()]
    found = []
    for element in value.split(","):
        for pair in element.split(";"):
            key, _, item = pair.partition("=")
            if key.strip().lower() == "host" and item.strip():
                found.append(item.strip().strip('"').lower())
    return found


OWN_SITE = frozenset({b"same-origin", b"none"})  # Sec-Fetch-Site values of the service's own pages, or typed


def foreign_origin(scope: Scope) -> str | None:
    """Why a request that changes something comes from another origin's page, or None.

    >>> foreign_origin({"method": "POST", "headers": [(b"host", b"a:1"), (b"origin", b"http://a:1")]}) is None
    True
    >>> foreign_origin({"method": "POST", "headers": [(b"host", b"a:1"), (b"origin", b"https://evil.example")]})
    "Origin 'https://evil.example' is not this service's host 'a:1'"
    >>> foreign_origin({"method": "POST", "headers": [(b"sec-fetch-site", b"cross-site")]})
    "Sec-Fetch-Site is 'cross-site'"
    """
    if scope["method"] in SAFE_METHODS:
        return None
    origin = site = None
    hosts: list[str] = []  # the request's own host, and the hosts proxies say it was sent to
    for name, value in scope["headers"]:
        if name == b"host":
            hosts.insert(0, value.decode("latin-1").strip().lower())
        elif name in PROXY_HEADERS:  # a proxy's (a page cannot set them without a preflight, refused)
            hosts += _forwarded_hosts(name, value.decode("latin-1"))
        elif name == b"origin":
            origin = value
        elif name == b"sec-fetch-site":
            site = value
    if site is not None and site.lower() not in OWN_SITE:
        return f"Sec-Fetch-Site is {site.decode('latin-1')!r}"
    if origin is None:
        return None  # not sent by a browser across origins
    text = origin.decode("latin-1")
    try:
        parsed = urlsplit(text)
        netloc = parsed.netloc.lower()
        if parsed.port is None and parsed.scheme in ("http", "https"):  # the default port, as Host leaves it out
            default = ":443" if parsed.scheme == "https" else ":80"
            hosts = [h.removesuffix(default) for h in hosts]
    except ValueError:
        netloc = ""
    if not netloc or netloc not in hosts:
        return f"Origin {text!r} is not this service's host {hosts[0] if hosts else ''!r}"
    return None


def host_name(host: str) -> str:
    """The name of a ``Host`` header or an allowed host, lower case, without its port and a trailing dot
    (``[::1]:8000`` -> ``::1``, ``Tbptt.Example.:8000`` -> ``tbptt.example``; a review's: an entry with a port
    never matched, and a name with its root's dot was refused)."""
    host = host.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return host.removesuffix(".")


def _loopback(name: str) -> bool:
    """``localhost``, a name under it, ``127.x.y.z`` or ``::1``."""
    if name == "localhost" or name.endswith(".localhost") or name == "::1":
        return True
    parts = name.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() and int(p) < 256 for p in parts)


def foreign_host(scope: Scope, allowed: frozenset[str]) -> str | None:
    """Why a browser's request is sent to a name this service does not answer browsers at, or None.

    >>> browser = [(b"sec-fetch-site", b"same-origin")]
    >>> foreign_host({"headers": [(b"host", b"localhost:8000"), *browser]}, frozenset()) is None
    True
    >>> foreign_host({"headers": [(b"host", b"evil.example:8000"), *browser]}, frozenset())
    "Host 'evil.example:8000' is not a name this service answers a browser at"
    >>> foreign_host({"headers": [(b"host", b"evil.example:8000")]}, frozenset()) is None  # no browser's
    True
    >>> foreign_host({"headers": [(b"host", b"Tbptt.Example"), *browser]}, frozenset({"tbptt.example"})) is None
    True
    """
    host, browser = "", False
    for name, value in scope["headers"]:
        if name == b"host":
            host = value.decode("latin-1").strip()
        elif name in (b"sec-fetch-site", b"origin"):
            browser = True
    if not browser or "*" in allowed:
        return None
    name = host_name(host)
    if _loopback(name) or name in allowed:
        return None
    return f"Host {host!r} is not a name this service answers a browser at"


class CrossSiteMiddleware:
    def __init__(self, app: ASGIApp, allowed_hosts: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.allowed_hosts = frozenset(host_name(h) for h in allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        reason = foreign_origin(scope)
        front = FRONT_HOSTS.get()  # (written as ``host_name``s by the front)
        rebound = foreign_host(scope, self.allowed_hosts if front is None else front) if reason is None else None
        if reason is not None:
            detail = (
                f"a change sent from another site's page is refused: {reason}. Send it from this service's own "
                "pages, or from a client outside a browser (which sends no Origin)"
            )
        elif rebound is not None:
            detail = (
                f"a request sent by a browser to this name is refused: {rebound} (a page whose name was made to "
                "point at this service, DNS rebinding, would pass for its own). Reach it by a loopback name, or "
                "name it in TBPTT_ALLOWED_HOSTS"
            )
        else:
            await self.app(scope, receive, send)
            return
        await JSONResponse({"detail": detail}, status_code=403)(scope, receive, send)
