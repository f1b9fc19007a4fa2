"""The shards as Ray actors: per shard an owner and a warm standby, named and detached.

``tbptt-shard-{i}`` and ``tbptt-shard-{i}-standby`` in the namespace ``tbptt`` each hold a
:class:`~tbptt_service.host.shard.ShardHost` of shard ``i``: the first starts as the owner (its
constructor takes a new epoch of the shard's log stream and recovers), the second as a warm
standby (imports done, kernels loaded, no model, no epoch). ``max_restarts=-1``: Ray restarts
either after its process or node is lost, and a restarted actor always comes back as a standby
(the one that died may have been the owner; if so its partner has been promoted, or will be by
the next call). A front (:func:`pair_call`) sends a shard's calls to the actor it believes owns
it; when that actor is lost (a Ray actor error) or answers as a standby, the front promotes the
partner (idempotent: a no-op on an owner), which takes the next epoch, fencing the old owner,
and recovers in about a second (a fresh process takes five to seven), then sends the call again
with the same key. Two fronts that promote different actors at once settle it through the epochs:
the later epoch owns the stream, the other steps down at its first refused append.

Detached: the actors outlive the front that created them, and every front (several uvicorn
processes, one per node) finds the same actors by name, so each model has exactly one writer at a
time. ``max_concurrency`` lets calls from several fronts run at once (the shard's app micro-batches
them together); ``max_task_retries=-1`` makes Ray re-send a call that was in flight when the actor
died, which the call's idempotency key makes harmless (also to a restarted actor: the keys are
journaled); the front's own calls are not re-sent by Ray (``max_task_retries=0`` on each): one in
flight when its owner dies fails at once, and the front sends it to the partner it promotes. Each
actor of a pair asks half the shard's CPUs of Ray's scheduler (the roles swap; Ray fixes an actor's
resources when it is created).
"""

from __future__ import annotations

import warnings
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from tbptt_service.host import shard_pairs
from tbptt_service.host.shard import ShardHost
from tbptt_service.host.shard_pairs import NotOwner, ShardCall, actor_name

NAMESPACE = "tbptt"
LOST = (RayActorError, ActorDiedError, ActorUnavailableError)  # the actor's process or node is gone
RETRYABLE = (*LOST, NotOwner)  # the front sends the call again, with its key


def pair_call(pairs: list[tuple[Any, Any]]) -> ShardCall:
    """The front's transport over Ray (:func:`tbptt_service.host.shard_pairs.pair_call`)."""
    return shard_pairs.pair_call(pairs, lost=LOST)


class RayShardHost(ShardHost):
    """A shard in a Ray actor: a restarted actor comes back as a standby, whatever it was."""

    def __init__(self, index: int, shards: int, settings: dict[str, Any], standby: bool = False) -> None:
        with warnings.catch_warnings():  # Ray's own property reads its deprecated actor_id (a warning per start)
            warnings.simplefilter("ignore", DeprecationWarning)
            restarted = ray.get_runtime_context().was_current_actor_reconstructed
        super().__init__(index, shards, settings, standby=standby or restarted)

    def node_id(self) -> str:
        """The Ray node this actor runs on."""
        return ray.get_runtime_context().get_node_id()


def running_actors(shards: int) -> list[tuple[Any, Any]]:
    """The shard actors that exist now, (owner, standby) of shards ``0 .. shards-1``, None for a missing one:
    found by name, none created (``ray.init`` first). A front compares its settings with theirs before it
    creates any (:func:`shard_actors`): until session 59 it created the missing ones first, with the settings it
    was then refused for (the review of session 58)."""

    def found(index: int, standby: bool) -> Any:
        try:
            return ray.get_actor(actor_name(index, standby), namespace=NAMESPACE)
        except ValueError:  # no actor of that name
            return None

    return [(found(i, False), found(i, True)) for i in range(shards)]


def held_settings(pairs: list[tuple[Any, Any]]) -> list[dict[str, Any] | None]:
    """The settings each actor of ``pairs`` (None: a missing one, left out) was created with (None: an actor
    of an older version, which cannot say)."""
    calls = []
    for pair in pairs:
        for actor in (a for a in pair if a is not None):
            try:
                calls.append(actor.settings_given.remote())
            except AttributeError:  # a handle knows the running actor's methods
                calls.append(None)
    return [None if call is None else ray.get(call) for call in calls]


def shard_actors(
    shards: int, settings: dict[str, Any], num_cpus: float = 1.0, max_concurrency: int = 64
) -> list[tuple[Any, Any]]:
    """The handles of shards ``0 .. shards-1``, each (the first owner, its standby), created where
    missing (``ray.init`` first). A new standby is placed on another node than its owner where there is
    one (a soft affinity: a node lost takes one of the two), the owners spread over the nodes."""
    actor = ray.remote(RayShardHost)

    def start(index: int, standby: bool, strategy: Any) -> Any:
        return actor.options(
            name=actor_name(index, standby),
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            max_restarts=-1,
            max_task_retries=-1,
            max_concurrency=max_concurrency,
            # Each of the pair asks half the shard's CPUs: together what one shard asked before, and a
            # restarted actor (either role) fits where a shard did; none lands on a head started with
            # --num-cpus=0 (a standby with no CPU asked could, once its own node was lost).
            num_cpus=num_cpus / 2,
            scheduling_strategy=strategy,
        ).remote(index, shards, settings, standby)

    owners = [start(i, False, "SPREAD") for i in range(shards)]  # over the nodes: a node lost takes few shards
    where = ray.get([owner.node_id.remote() for owner in owners])  # (waits for each owner's recovery)
    nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"] and n.get("Resources", {}).get("CPU", 0) > 0)
    pairs = []
    for i, owner in enumerate(owners):
        others = [node for node in nodes if node != where[i]]
        strategy = NodeAffinitySchedulingStrategy(others[i % len(others)], soft=True) if others else "SPREAD"
        pairs.append((owner, start(i, True, strategy)))
    return pairs
