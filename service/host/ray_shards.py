"""The shards as Ray actors: one named, detached actor per shard, restarted forever by Ray.

``tbptt-shard-{i}`` in the namespace ``tbptt`` holds a :class:`~tbptt_service.host.shard.ShardHost`
(``max_restarts=-1``: Ray restarts it on any node after its process or node is lost; its
constructor takes a new epoch of the shard's log stream, which fences the lost incarnation,
and recovers; a recovery that fails is retried by the shard itself, in the background, since
Ray restarts a process that dies but not a constructor that fails). Detached: it outlives the
front that created it, and every front (several uvicorn processes, one per node) finds the same
actor by name, so each model has exactly one writer in the cluster. ``max_concurrency`` lets
calls from several fronts run at once (the shard's app micro-batches them together);
``max_task_retries=-1`` makes Ray re-send a call that was in flight when the actor died, which
the call's idempotency key makes harmless (also to a restarted actor: the keys are journaled).
"""

from __future__ import annotations

from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from tbptt_service.host.shard import ForwardedRequest, ForwardedResponse, ShardHost

NAMESPACE = "tbptt"
RETRYABLE = (RayActorError, ActorDiedError, ActorUnavailableError)


def actor_name(index: int) -> str:
    return f"tbptt-shard-{index}"


def shard_actors(shards: int, settings: dict[str, Any], num_cpus: float = 1.0, max_concurrency: int = 64) -> list[Any]:
    """The handles of shards ``0 .. shards-1``, created where missing (``ray.init`` first)."""
    actor = ray.remote(ShardHost)
    return [
        actor.options(
            name=actor_name(i),
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            max_restarts=-1,
            max_task_retries=-1,
            max_concurrency=max_concurrency,
            num_cpus=num_cpus,
            scheduling_strategy="SPREAD",  # over the nodes: a node lost takes as few shards as it can
        ).remote(i, shards, settings)
        for i in range(shards)
    ]


def ray_call(handles: list[Any]):
    """The front's transport: ``handle`` on shard ``index``'s actor, awaited without blocking the loop."""

    async def call(index: int, key: str, requests: list[ForwardedRequest]) -> list[ForwardedResponse]:
        return await handles[index].handle.remote(key, requests)

    return call
