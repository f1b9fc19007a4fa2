"""The jobs in a ModelWorker's queue, and how their futures are settled.

An observation request becomes an :class:`ObserveJob`, any other change (or a checkpoint's
capture) a :class:`CallJob`; each awaits an asyncio future on its event loop, which the worker's
thread settles with :func:`settle_all`. ``STOP`` ends the thread once the jobs before it are done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tbptt_service.storage.observation import Observation


@dataclass
class Job:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


@dataclass
class ObserveJob(Job):
    observations: list[Observation]
    key: str | None = None  # the request's Idempotency-Key (tbptt_service.host.keyed_requests)
    digest: str = ""  # its content, as the key is tied to it (set on the worker thread)


@dataclass
class CallJob(Job):
    run: Callable[[], Any]  # runs on the worker thread between two batches
    ends_thread: bool = False  # the model's last job (deletion): the thread ends once it succeeds
    # What a long batch's gaps hold behind it while it waits for that batch (long_batches): the series whose
    # later values must come after it (a forget's), none (a capture, a learning-rate reset), or None: every
    # later request (an import, a deletion: they change every series)
    holds: frozenset[str] | None = None


STOP = object()


def settle_all(settlements: list[tuple[Job, Any, BaseException | None]]) -> None:
    """Settle the jobs' futures on their loops: one wake-up of each loop for them all (each
    wake-up is a write to the loop's self-pipe, and a GIL hand-over to a busy loop)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Job, Any, BaseException | None]]] = {}
    for settlement in settlements:
        by_loop.setdefault(settlement[0].loop, []).append(settlement)

    def settle(group: list[tuple[Job, Any, BaseException | None]]) -> None:
        for job, result, error in group:
            if job.future.done():  # the requester went away (cancelled); the batch still counts
                continue
            if error is None:
                job.future.set_result(result)
            else:
                job.future.set_exception(error)

    for loop, group in by_loop.items():
        if not loop.is_closed():
            loop.call_soon_threadsafe(settle, group)
