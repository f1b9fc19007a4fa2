"""``tbptt-online serve --ray ADDRESS --shards N --log postgresql://...``: a front of the cluster.

Connects to the Ray cluster at ``ADDRESS``, finds the shard actors by name, an owner and a warm
standby per shard (creating the missing ones: the first front to start creates them, every later
one finds them), waits until each is constructed, then serves the HTTP API with uvicorn on
``--host``/``--port``. A front refused (another shard count, settings other than the running
shards') has written nothing and created no actor: it reads both before it does either. Fronts
starting at once start one at a time (``postgres_log.one_front_starting``), so the actors never hold
two fronts' settings. Run one per node, or several on one node on different ports: they hold no state.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from tbptt_service.settings import Settings


def shard_settings_of(settings: Settings) -> dict[str, Any]:
    """The settings the front hands to the shard actors (as JSON: they cross process boundaries), with
    ``state_dir`` made absolute against the front's working directory. A relative one (README's
    ``--state-dir ./shared``) was resolved in each Ray worker's working directory instead: the shards
    wrote their checkpoints under wherever ``ray start`` ran, and after Ray was started again from
    another directory they found none and refused to serve (a hostile test, session 58)."""
    absolute = Path(os.path.abspath(settings.state_dir))
    return settings.model_copy(update={"state_dir": absolute}).model_dump(mode="json")


# Settings that only the front itself uses (where it listens, its HTTP head, body and send deadlines, its
# connections, its log level, how long it waits for another front's start): each front may have its own. Every
# other setting is the shards'. (The connection cap's default follows each node's descriptor limit: a front on a
# node with another ulimit was refused, "TBPTT_MAX_CONNECTIONS differs", until session 61's review of it.)
FRONT_ONLY = frozenset(
    {
        "host",
        "port",
        "log_level",
        "header_timeout_s",
        "max_header_bytes",
        "body_timeout_s",
        "send_timeout_s",
        "max_connections",
        "front_start_wait_s",
    }
)
OPTIONS = {"log_url": " (--log)", "state_dir": " (--state-dir)"}


def settings_differing(ours: dict[str, Any], held: list[dict[str, Any] | None]) -> list[str]:
    """What differs between the settings this front would give the shards (``ours``) and those each
    running shard actor ``held`` (None: one that cannot say): the names only, never a value (a key, a
    password in the URL), FRONT_ONLY left out.

    >>> ours = {"port": 1, "api_key": "secret", "max_horizon": 5, "log_url": "postgresql://a"}
    >>> settings_differing(ours, [{**ours, "port": 2, "api_key": None, "log_url": "postgresql://b"}])
    ['TBPTT_API_KEY differs', 'TBPTT_LOG_URL (--log) differs']
    >>> settings_differing(ours, [ours, None])
    ['the running shards cannot report their settings (started by an older version)']
    """
    if any(theirs is None for theirs in held):
        return ["the running shards cannot report their settings (started by an older version)"]
    names = {
        name
        for theirs in held
        for name in ours.keys() | theirs.keys()  # type: ignore[union-attr]
        if name not in FRONT_ONLY and ours.get(name) != theirs.get(name)
    }
    return [f"TBPTT_{name.upper()}{OPTIONS.get(name, '')} differs" for name in sorted(names)]


def serve_front(settings: Settings, address: str, shards: int) -> int:
    if settings.log_url is None:
        print("tbptt-online serve: --ray needs --log postgresql://... (or TBPTT_LOG_URL)", file=sys.stderr)
        return 2
    if not settings.durable:  # a hostile test (session 58): accepted, and a failover lost every acknowledged value
        print(
            "tbptt-online serve: TBPTT_DURABLE=false cannot run a cluster (--ray): its shards would journal nothing, "
            "so a shard's failover would lose every acknowledged value and answer as a fresh state",
            file=sys.stderr,
        )
        return 2
    if shards < 1:
        print(f"tbptt-online serve: --shards {shards} is invalid: must be at least 1", file=sys.stderr)
        return 2
    import psycopg

    from tbptt_service.storage.postgres_log import StartWaitExpired, one_front_starting, recorded_shard_count

    # Nothing is written or created before every check has passed: the shard count and the settings are read
    # first (until session 59 a front refused for its settings, a new --log say, had recorded its shard count in
    # that database and created the shard actors missing, with its refused settings: the review of session 58).
    try:
        recorded = recorded_shard_count(settings.log_url)
    except psycopg.OperationalError as exc:  # the database cannot be reached
        return _unreachable(exc)
    if recorded is not None and recorded != shards:
        return _refuse_shard_count(shards, recorded)
    import ray
    import uvicorn

    from tbptt_service.api.connection_cap import connection_capped_protocol
    from tbptt_service.api.front import create_front
    from tbptt_service.host.ray_shards import NAMESPACE, RETRYABLE, pair_call

    # A call in flight when its shard's process dies fails once Ray has the actor's death info; by default
    # the caller waits up to 1 s for it, before the front can promote the standby.
    os.environ.setdefault("RAY_timeout_ms_task_wait_for_death_info", "100")
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
    ours = shard_settings_of(settings)
    try:
        with one_front_starting(settings.log_url, _wait_for_another_front, settings.front_start_wait_s):
            pairs = _shards_for(settings, shards, ours)  # one front creates, the others compare
    except StartWaitExpired as exc:
        return _gave_up_waiting(exc)
    except psycopg.OperationalError as exc:  # the database cannot be reached
        return _unreachable(exc)
    if isinstance(pairs, int):  # refused
        return pairs
    # Each actor constructed: an owner made its first recovery attempt (one whose attempt failed answers
    # 503 with the reason while it retries), a standby is warming up.
    ray.get([actor.ready.remote() for pair in pairs for actor in pair])
    app = create_front(pair_call(pairs), shards, retryable=RETRYABLE, limits=settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        # a connection's head has a deadline and a size limit,
        http=connection_capped_protocol(
            settings.header_timeout_s, settings.max_header_bytes, settings.max_connections, settings.send_timeout_s
        ),  # answers taken within send_timeout_s, at most max_connections connections served at once
    )
    return 0


def _shards_for(settings: Settings, shards: int, ours: dict[str, Any]) -> list[tuple[Any, Any]] | int:
    """The shard actors' pairs, the missing ones created with ``ours``; or the exit code of a refusal: the running
    shards' settings differ from ours, or another shard count was claimed. Under ``one_front_starting``."""
    from tbptt_service.host.ray_shards import held_settings, running_actors, shard_actors
    from tbptt_service.storage.postgres_log import claim_shard_count

    # The actors are detached and found by name: running ones keep the settings of the front that created
    # them, and a later front's were ignored without a word (a hostile test, session 58: a front restarted
    # with TBPTT_API_KEY served everyone without a key; a new --log and --state-dir were never used).
    differing = settings_differing(ours, held_settings(running_actors(shards)))
    if differing:
        return _refuse_settings(differing)
    recorded = claim_shard_count(settings.log_url, shards)  # recorded now, where this is the first front
    if recorded != shards:  # a front with another count claimed it just before this one
        return _refuse_shard_count(shards, recorded)
    pairs = shard_actors(shards, ours)  # the missing ones created, with settings equal to the running ones'
    differing = settings_differing(ours, held_settings(pairs))  # (a check: no other front created any meanwhile)
    if differing:
        return _refuse_settings(differing)
    return pairs


def _wait_for_another_front() -> None:
    print(
        "tbptt-online serve: another front is starting the cluster (creating its shards, which recover first): "
        "waiting for it, then this front compares its settings with the shards'",
        file=sys.stderr,
    )


def _gave_up_waiting(exc: Exception) -> int:
    print(
        f"tbptt-online serve: {exc} (TBPTT_FRONT_START_WAIT_S): it may be stuck (its shards not placed?); stop it or "
        "let it finish, then start this front again",
        file=sys.stderr,
    )
    return 2


def _unreachable(exc: Exception) -> int:
    print(f"tbptt-online serve: cannot read the cluster's shard count from the log's database: {exc}", file=sys.stderr)
    return 1


def _refuse_shard_count(shards: int, recorded: int) -> int:
    print(
        f"tbptt-online serve: --shards {shards} does not match the cluster's {recorded} shards, recorded in "
        f"the log's database by the first front: a model belongs to shard sha256(name) mod N, so another N "
        f"would look for models on other shards (and could create a second model under a name that exists); "
        f"start every front with --shards {recorded} (models do not move between shard counts)",
        file=sys.stderr,
    )
    return 2


def _refuse_settings(differing: list[str]) -> int:
    print(
        f"tbptt-online serve: the running shards were created with other settings than this front's "
        f"({'; '.join(differing)}), and they keep theirs: start the front with the shards' settings, or, to "
        f"apply new ones, stop the shards first (stop the Ray cluster: `ray stop` on every node; what was "
        f"acknowledged stays in the log and the checkpoints) and start the front again: it creates the shards "
        f"with its settings, and they recover",
        file=sys.stderr,
    )
    return 2
