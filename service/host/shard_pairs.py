"""A shard's pair of actors seen from a front: which one owns the shard, and when to promote the other.

Each shard runs twice (:mod:`tbptt_service.host.shard`): the owner of its log stream and a warm
standby. A front keeps, per shard, which of the two it believes owns it, and calls that one. When
the call fails because the actor is lost (its process or node gone: Ray's actor errors), or the
actor answers as a standby (503 with ``x-tbptt-role: standby``: Ray restarted it as one, or it
stepped down), or it answers nothing within ``CALL_TIMEOUT_S`` (a frozen process), the front
promotes the partner (idempotent: a no-op on an owner) and raises
:class:`NotOwner` or the loss, which the front's retry loop answers by sending the call again with
the same key, now to the partner. Nothing here knows Ray: the handles are anything whose methods
have ``.remote(...)`` returning an awaitable (Ray's actor handles in the cluster,
:mod:`tbptt_service.host.ray_shards`; in-process stand-ins in the tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from tbptt_service.host.shard import ROLE_HEADER, ForwardedRequest, ForwardedResponse

PROMOTE_TIMEOUT_S = 30.0  # a promotion that takes longer (its actor not placed yet) is retried
# An owner that answers nothing for this long is taken over by its partner, as a lost one is: a frozen
# process (SIGSTOP, a hung host) is not lost to Ray, and every request of its shard waited for good.
CALL_TIMEOUT_S = 60.0
ShardCall = Callable[[int, str, list[ForwardedRequest]], Awaitable[list[ForwardedResponse]]]


class NotOwner(Exception):
    """The actor called does not own its shard's stream (a standby, or one being promoted): the
    call goes to the owner, with the same key."""


def actor_name(index: int, standby: bool = False) -> str:
    """The Ray actor names of shard ``index``'s pair (the one that started as its owner, its standby)."""
    return f"tbptt-shard-{index}" + ("-standby" if standby else "")


def role_of(responses: list[ForwardedResponse]) -> str | None:
    """ "standby" or "promoting" when a shard answered as one that does not own its stream, else None."""
    if not responses or responses[0].status != 503:
        return None
    return next((value for key, value in responses[0].headers if key == ROLE_HEADER), None)


def pair_call(pairs: list[tuple[Any, Any]], lost: tuple[type[BaseException], ...]) -> ShardCall:
    """The front's transport: ``handle`` on the actor of shard ``index`` that owns it, awaited
    without blocking the loop; the partner promoted when the one called is ``lost`` (the
    transport's errors for an actor whose process or node is gone) or answers as a standby."""
    owners = [0] * len(pairs)  # which of each pair this front calls

    async def promote(index: int, which: int) -> None:
        try:  # a partner that cannot be placed (no node with room) would hold the call forever
            await asyncio.wait_for(pairs[index][which].promote.remote(), PROMOTE_TIMEOUT_S)
        except TimeoutError:
            raise NotOwner(
                f"shard {index}: {actor_name(index, which == 1)} did not take over within {PROMOTE_TIMEOUT_S} s"
            ) from None
        owners[index] = which

    async def call(index: int, key: str, requests: list[ForwardedRequest]) -> list[ForwardedResponse]:
        which = owners[index]
        try:
            # Not re-sent by Ray (max_task_retries=0): a call in flight when the owner dies fails at once,
            # and the front sends it again, with its key, to the partner it promotes.
            handle = pairs[index][which].handle.options(max_task_retries=0)
            responses = await asyncio.wait_for(handle.remote(key, requests), CALL_TIMEOUT_S)
        except lost:
            await promote(index, 1 - which)  # raises in turn when the partner is lost too: retried
            raise
        except TimeoutError:  # its promotion fences the silent one (its next append is refused)
            await promote(index, 1 - which)
            raise NotOwner(
                f"shard {index}: {actor_name(index, which == 1)} answered nothing within {CALL_TIMEOUT_S} s"
            ) from None
        role = role_of(responses)
        if role == "standby":
            try:
                await promote(index, 1 - which)
            except lost:
                await promote(index, which)  # the partner is lost: this one takes the stream
            raise NotOwner(f"shard {index}: {actor_name(index, which == 1)} is a standby")
        if role == "promoting":
            raise NotOwner(f"shard {index}: {actor_name(index, which == 1)} is being promoted")
        return responses

    return call
