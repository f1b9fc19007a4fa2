"""The file descriptors the process may open (``RLIMIT_NOFILE``) and the connections they can hold.

Each connection holds a descriptor; the process needs its own besides (the event log, checkpoints,
the libraries' files). 21,000 idle connections took them all and checkpoints failed with ``EMFILE``
while they lasted (a hostile test, session 60: F7). ``TBPTT_MAX_CONNECTIONS``' default leaves room
for twice the cap (connections past it wait a moment to be answered 503) plus ``RESERVED_DESCRIPTORS``.

>>> descriptors_needed(512)
1280
"""

from __future__ import annotations

import resource

RESERVED_DESCRIPTORS = 256  # what the process keeps for itself: the event log, checkpoints, libraries
DEFAULT_MAX_CONNECTIONS = 512


def descriptor_limit() -> int | None:
    """The descriptors the process may open now (the soft ``RLIMIT_NOFILE``; None: no limit)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def descriptors_needed(max_connections: int) -> int:
    """The descriptors a server capped at ``max_connections`` may hold: connections past the cap, up to as many
    again, are open until they are answered 503 or closed, and the process keeps ``RESERVED_DESCRIPTORS``."""
    return 2 * max_connections + RESERVED_DESCRIPTORS


def default_max_connections() -> int:
    """``TBPTT_MAX_CONNECTIONS``' default: ``DEFAULT_MAX_CONNECTIONS``, fewer (16 at least) where the descriptor
    limit cannot hold twice as many plus ``RESERVED_DESCRIPTORS`` (a soft limit of 1,024: 384)."""
    limit = descriptor_limit()
    if limit is None:
        return DEFAULT_MAX_CONNECTIONS
    return max(16, min(DEFAULT_MAX_CONNECTIONS, (limit - RESERVED_DESCRIPTORS) // 2))
