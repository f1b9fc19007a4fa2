"""RetryPolicy: when an idempotent call is sent again, and how long to wait first.

Retried: a request that got no answer (connection refused or reset, timeout) and
answers 500, 502, 503 and 504 (a server restarting, a proxy in between, readiness).
Never retried: 4xx (the request itself is wrong; sending it again cannot help), 507
(storage full), and any call that is not idempotent. The wait doubles each attempt
from ``backoff`` up to ``max_backoff``, with jitter so that many clients do not
come back in step; a ``Retry-After`` header in seconds is honoured (capped the same).

>>> policy = RetryPolicy(retries=3, backoff=0.5, max_backoff=4.0, jitter=0.0)
>>> [policy.delay(attempt) for attempt in range(4)]
[0.5, 1.0, 2.0, 4.0]
>>> policy.delay(0, retry_after="3"), policy.should_retry_status(503), policy.should_retry_status(409)
(3.0, True, False)
"""

from __future__ import annotations

import random
from dataclasses import dataclass

RETRY_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3  # extra attempts after the first
    backoff: float = 0.2  # seconds before the first retry
    max_backoff: float = 5.0
    jitter: float = 0.5  # each wait is scaled by a factor drawn from [1 - jitter, 1]

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"retries={self.retries!r} is invalid: must be an integer >= 0")
        for name in ("backoff", "max_backoff"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid: must be >= 0")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter={self.jitter!r} is invalid: must be in [0, 1]")

    def should_retry_status(self, status_code: int) -> bool:
        return status_code in RETRY_STATUSES

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (attempt counts from 0)."""
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), self.max_backoff)
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        wait = min(self.backoff * 2**attempt, self.max_backoff)
        return wait * (1.0 - self.jitter * random.random())
