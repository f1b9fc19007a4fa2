"""The file descriptors the process may open (``RLIMIT_NOFILE``) and the connections they can hold.

Each connection holds a descriptor; the process needs its own besides (the event log, checkpoints,
the libraries' files: 22 open at start). 21,000 idle connections took them all and checkpoints failed
with ``EMFILE`` while they lasted (a hostile test, session 60: F7). ``TBPTT_MAX_CONNECTIONS``' default
leaves room for twice the cap (connections past it wait a moment to be answered 503) plus the process's
own (:func:`reserved`). ``serve`` first raises the soft limit to the hard one (at most
``RAISED_LIMIT``), as servers commonly do: a soft limit of 256 (macOS's) or 1,024 (many Linux shells')
would otherwise leave few connections.

>>> reserved(20_000), reserved(256), descriptors_needed(512, 20_000), descriptors_needed(96, 256)
(256, 64, 1280, 256)
"""

from __future__ import annotations

import resource

RESERVED_DESCRIPTORS = 256  # what the process keeps for itself (a quarter of a limit below 1,024)
DEFAULT_MAX_CONNECTIONS = 512
RAISED_LIMIT = 65_536  # serve raises the soft limit toward the hard one, this far at most


def descriptor_limit() -> int | None:
    """The descriptors the process may open now (the soft ``RLIMIT_NOFILE``; None: no limit)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def raise_descriptor_limit() -> None:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard one, ``RAISED_LIMIT`` at most (never lower it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = RAISED_LIMIT if hard == resource.RLIM_INFINITY else min(hard, RAISED_LIMIT)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # (a system that caps it lower, macOS's OPEN_MAX: the soft limit stays)
            return


def reserved(limit: int) -> int:
    """The descriptors the process keeps for itself under a limit of ``limit``."""
    return min(RESERVED_DESCRIPTORS, limit // 4)


def descriptors_needed(max_connections: int, limit: int) -> int:
    """The descriptors a server capped at ``max_connections`` may hold under a limit of ``limit``: connections
    past the cap, up to as many again, are open until they are answered 503 or closed, and the process keeps
    :func:`reserved`."""
    return 2 * max_connections + reserved(limit)


def default_max_connections() -> int:
    """``TBPTT_MAX_CONNECTIONS``' default: ``DEFAULT_MAX_CONNECTIONS``, fewer (16 at least) where the descriptor
    limit cannot hold twice as many plus :func:`reserved` (a soft limit of 1,024: 384; of 256: 96)."""
    limit = descriptor_limit()
    if limit is None:
        return DEFAULT_MAX_CONNECTIONS
    return max(16, min(DEFAULT_MAX_CONNECTIONS, (limit - reserved(limit)) // 2))
