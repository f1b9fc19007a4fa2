"""``serve --ray``'s front refuses a shard count other than the one the cluster was built with, and
hands the shard actors its settings with the state directory made absolute."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tbptt_service.cli.cluster import serve_front, settings_differing, shard_settings_of
from tbptt_service.settings import Settings
from tbptt_service.storage.postgres_log import PostgresLog, claim_shard_count


def test_the_first_shard_count_claimed_is_the_clusters_for_good(postgres_url: str) -> None:
    assert claim_shard_count(postgres_url, 2) == 2
    assert claim_shard_count(postgres_url, 3) == 2  # recorded: not replaced
    assert claim_shard_count(postgres_url, 2) == 2


def test_a_cluster_from_before_the_record_keeps_the_count_its_streams_show(postgres_url: str) -> None:
    # the review of session 36: the first front after an upgrade recorded whatever --shards it had
    for index in range(3):
        with PostgresLog(postgres_url, stream=f"shard-{index}"):
            pass
    assert claim_shard_count(postgres_url, 2) == 3


def test_a_front_with_another_shard_count_is_refused_before_it_joins_the_cluster(postgres_url: str, capsys) -> None:
    # A hostile test (session 36): a front started with --shards 3 beside a cluster of 2 joined it
    # silently, found model 'a0' unknown (sha256 mod 3 is another shard), created a second 'a0' and
    # listed the name twice. Refused before Ray is reached (the address is never used).
    claim_shard_count(postgres_url, 2)
    settings = Settings(log_url=postgres_url)
    assert serve_front(settings, "127.0.0.1:1", 3) == 2
    error = capsys.readouterr().err
    assert "--shards 3 does not match the cluster's 2 shards" in error
    assert "start every front with --shards 2" in error
    assert postgres_url.rsplit("@", 1)[-1] not in error  # the database's address (and password) not shown


def test_a_front_that_cannot_reach_the_database_says_so(capsys) -> None:
    settings = Settings(log_url="postgresql://nobody@127.0.0.1:1/none")
    assert serve_front(settings, "127.0.0.1:1", 2) == 1
    assert "cannot read the cluster's shard count from the log's database" in capsys.readouterr().err


class Stop(Exception):
    """Ends ``serve_front`` where the test has seen what it needs."""


def fake_ray(
    monkeypatch: pytest.MonkeyPatch, held: dict[str, Any] | None = None, running: tuple[bool, bool] = (True, True)
) -> list[dict[str, Any]]:
    """Ray's ``init`` a no-op and ``shard_actors`` one that raises :class:`Stop` (with ``held``: returns
    actors that were created with ``held``, and ``running_actors`` finds those of each pair that ``running``
    says, created with ``held``): the settings ``shard_actors`` was handed come back in the list returned."""
    ray = pytest.importorskip("ray", reason="the cluster extra is not installed")
    from tbptt_service.host import ray_shards

    given: list[dict[str, Any]] = []

    def shard_actors(shards: int, settings: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        given.append(settings)
        if held is None:
            raise Stop
        return [(object(), object()) for _ in range(shards)]

    def running_actors(shards: int) -> list[tuple[Any, Any]]:
        return [tuple(object() if held is not None and up else None for up in running) for _ in range(shards)]

    if held is not None:
        monkeypatch.setattr(
            ray_shards, "held_settings", lambda pairs: [held for pair in pairs for actor in pair if actor is not None]
        )
    monkeypatch.setattr(ray_shards, "running_actors", running_actors, raising=False)

    monkeypatch.setattr(ray, "init", lambda *args, **kwargs: None)
    monkeypatch.setattr(ray_shards, "shard_actors", shard_actors)
    monkeypatch.setenv("RAY_timeout_ms_task_wait_for_death_info", "100")  # (serve_front sets it by default)
    return given


def settings_given_to_the_shards(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The settings ``serve_front`` hands to ``shard_actors`` (Ray's ``init`` and the actors faked)."""
    given = fake_ray(monkeypatch)
    with pytest.raises(Stop):
        serve_front(settings, "127.0.0.1:1", 2)
    return given[0]


def test_the_shards_get_a_relative_state_dir_resolved_against_the_fronts_working_directory(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hostile test (session 58): README's `--state-dir ./shared` reached the shard actors as is and
    # was resolved in the Ray worker's working directory (where `ray start` ran); after Ray was started
    # again from another directory the shards found no checkpoint and answered 503 for good.
    front_cwd = tmp_path / "front"
    front_cwd.mkdir()
    monkeypatch.chdir(front_cwd)
    given = settings_given_to_the_shards(Settings(log_url=postgres_url, state_dir="./shared"), monkeypatch)
    assert given["state_dir"] == str(front_cwd / "shared")
    assert Settings(**given).log_url == postgres_url  # the rest as the front has it


def test_a_cluster_without_durability_is_refused_at_start(
    postgres_url: str, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hostile test (session 58): a front with TBPTT_DURABLE=false started, its shards journaled nothing,
    # and once their processes were lost every acknowledged value was gone: the service answered as a
    # fresh state (200 and 404), with no error anywhere. Refused before the database or Ray is reached.
    settings = Settings(log_url=postgres_url, durable=False)
    fake_ray(monkeypatch)  # (before the fix it went on to create the shards: Stop)
    assert serve_front(settings, "127.0.0.1:1", 2) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "TBPTT_DURABLE=false cannot run a cluster (--ray)" in lines[0]
    assert "lose every acknowledged value" in lines[0]
    with psycopg.connect(postgres_url) as connection:  # no shard count claimed: the database untouched
        tables = connection.execute("select count(*) from pg_tables where tablename = 'cluster_shards'").fetchone()
    assert tables == (0,)


def test_a_front_whose_settings_differ_from_the_running_shards_is_refused_naming_them(
    postgres_url: str, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hostile test (session 58): the shard actors are detached and found by name, so they kept the
    # settings of the front that created them; a front restarted with TBPTT_API_KEY served everyone
    # without a key, its TBPTT_MAX_HORIZON was not applied, a new --log was never used. Each setting the
    # shards use that differs is named (never its value); the front's own (its port) may differ.
    first = Settings(log_url=postgres_url, state_dir=tmp_path / "shared", port=8001)
    monkeypatch.chdir(tmp_path)
    fake_ray(monkeypatch, held=shard_settings_of(first))
    later = first.model_copy(update={"api_key": "s3cret-key", "max_horizon": 5, "port": 8002})
    assert serve_front(later, "127.0.0.1:1", 2) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert "(TBPTT_API_KEY differs; TBPTT_MAX_HORIZON differs)" in lines[0]
    assert "s3cret-key" not in lines[0] and "TBPTT_PORT" not in lines[0]
    assert "stop the shards first (stop the Ray cluster: `ray stop` on every node" in lines[0]
    # the same settings, a relative --state-dir naming the same directory, another port, and another connection
    # cap, send deadline and start wait (the front's own; the cap's default follows the node's descriptor limit):
    # nothing differs (the cap differed, session 61's review)
    same = first.model_copy(
        update={"state_dir": Path("shared"), "port": 8002, "max_connections": first.max_connections // 2 + 1}
    )
    same = same.model_copy(update={"send_timeout_s": 5.0, "front_start_wait_s": 30.0})
    assert settings_differing(shard_settings_of(same), [shard_settings_of(first)] * 4) == []


def test_a_front_refused_for_a_new_log_leaves_that_database_as_it_was(
    postgres_url: str, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The review of session 58: the shard count was claimed before the settings were compared, so a front
    # refused for a new --log had created cluster_shards in the new database and fixed its shard count there.
    running = Settings(log_url="postgresql://tbptt@db.example/old", state_dir=tmp_path / "shared")
    monkeypatch.chdir(tmp_path)
    given = fake_ray(monkeypatch, held=shard_settings_of(running))
    assert serve_front(running.model_copy(update={"log_url": postgres_url}), "127.0.0.1:1", 2) == 2
    assert "(TBPTT_LOG_URL (--log) differs)" in capsys.readouterr().err
    with psycopg.connect(postgres_url) as connection:  # no shard count claimed: the database untouched
        tables = connection.execute("select count(*) from pg_tables where schemaname = 'public'").fetchone()
    assert tables == (0,)
    assert given == []  # no actor created


@pytest.mark.parametrize("running", [(True, False), (False, True)], ids=["standbys-missing", "owners-missing"])
def test_a_front_refused_for_its_settings_creates_none_of_the_missing_actors(
    postgres_url: str, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, running: tuple[bool, bool]
) -> None:
    # The review of session 58: the settings were compared after shard_actors, which created the actors missing
    # from a pair with the settings the front was then refused for; the shards' own kept running beside them.
    first = Settings(log_url=postgres_url, state_dir=tmp_path / "shared")
    monkeypatch.chdir(tmp_path)
    given = fake_ray(monkeypatch, held=shard_settings_of(first), running=running)
    assert serve_front(first.model_copy(update={"max_horizon": 5}), "127.0.0.1:1", 2) == 2
    assert "(TBPTT_MAX_HORIZON differs)" in capsys.readouterr().err
    assert given == []  # shard_actors, which creates the missing ones, was never called


class Handle:
    """A fake shard actor: its name, and a ``ready`` call that answers at once."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ready = self  # (actor.ready.remote())

    def remote(self) -> None:
        return None


def test_two_fronts_starting_at_once_with_different_settings_leave_the_shards_one_fronts(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The review of session 60: each front compared its settings with the running shards' (none yet) and then
    # created the missing ones by name (the first of a name wins). Front a creates the owners; front b, past its
    # comparison as well, creates the standbys with its own settings before a does: both were refused and the
    # shards held two sets of settings. Here the two fronts' steps meet as they can: b starts once a looks at the
    # running shards, a creates the owners once b has compared (or after 2 s: b waits for a's start to end) and
    # the standbys after b's (b waits for a's owners).
    ray = pytest.importorskip("ray", reason="the cluster extra is not installed")
    import uvicorn

    from tbptt_service.api import front
    from tbptt_service.host import ray_shards

    created: dict[str, dict[str, Any]] = {}  # the actors by name: the settings each was created with
    lock = threading.Lock()
    b_compared, a_owners, b_standbys = threading.Event(), threading.Event(), threading.Event()

    def running_actors(shards: int) -> list[tuple[Any, Any]]:
        with lock:
            found = [tuple(Handle(n) if n in created else None for n in (f"o{i}", f"s{i}")) for i in range(shards)]
        if threading.current_thread().name == "b":
            b_compared.set()
        elif not fronts[1].is_alive() and "b" not in answers:  # b starts once a has begun its start
            fronts[1].start()
        return found

    def held_settings(pairs: list[tuple[Any, Any]]) -> list[dict[str, Any] | None]:
        with lock:
            return [created[actor.name] for pair in pairs for actor in pair if actor is not None]

    def create(role: str, shards: int, settings: dict[str, Any]) -> None:
        with lock:
            for i in range(shards):
                created.setdefault(f"{role}{i}", settings)  # the first of a name wins (get_if_exists)

    def shard_actors(shards: int, settings: dict[str, Any], *args: Any, **kwargs: Any) -> list[tuple[Any, Any]]:
        me = threading.current_thread().name
        if me == "a":
            b_compared.wait(2.0)  # (b, past its comparison unless a holds the start)
        else:
            a_owners.wait(30.0)
        create("o", shards, settings)
        if me == "a":
            a_owners.set()
            if b_compared.is_set():  # b's standbys come first
                b_standbys.wait(30.0)
        create("s", shards, settings)
        if me == "b":
            b_standbys.set()
        return [(Handle(f"o{i}"), Handle(f"s{i}")) for i in range(shards)]

    monkeypatch.setattr(ray_shards, "running_actors", running_actors)
    monkeypatch.setattr(ray_shards, "held_settings", held_settings)
    monkeypatch.setattr(ray_shards, "shard_actors", shard_actors)
    monkeypatch.setattr(ray_shards, "pair_call", lambda pairs: None)
    monkeypatch.setattr(ray, "init", lambda *args, **kwargs: None)
    monkeypatch.setattr(ray, "get", lambda calls: calls)
    monkeypatch.setattr(front, "create_front", lambda *args, **kwargs: None)
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)  # (serve_front answers 0: it served)
    monkeypatch.setenv("RAY_timeout_ms_task_wait_for_death_info", "100")
    monkeypatch.chdir(tmp_path)
    first = Settings(log_url=postgres_url, state_dir=tmp_path / "shared")
    settings = {"a": first, "b": first.model_copy(update={"max_horizon": 5})}
    answers: dict[str, int] = {}

    def start(name: str) -> None:
        answers[name] = serve_front(settings[name], "127.0.0.1:1", 2)

    fronts = [threading.Thread(target=start, args=(name,), name=name) for name in ("a", "b")]
    fronts[0].start()
    fronts[0].join(120)
    fronts[1].join(120)
    assert answers == {"a": 0, "b": 2}  # a started; b was refused for its settings
    assert list(created.values()) == [shard_settings_of(settings["a"])] * 4  # every shard a's


def test_a_front_waiting_for_another_fronts_start_says_so_and_starts_once_it_ends(postgres_url: str) -> None:
    # The review of session 60: a front waiting for another's start (its shards' recoveries: minutes) said nothing
    from tbptt_service.storage.postgres_log import one_front_starting

    waiting, entered = threading.Event(), threading.Event()

    def second() -> None:
        with one_front_starting(postgres_url, waiting.set):
            entered.set()

    with one_front_starting(postgres_url):
        front = threading.Thread(target=second)
        front.start()
        assert waiting.wait(60)  # told before it waits
        assert not entered.is_set()  # (and waits: this start holds the lock)
    front.join(60)
    assert entered.is_set()
    with one_front_starting(postgres_url, lambda: pytest.fail("nobody holds it: no wait")):
        pass


def test_a_front_waits_for_another_fronts_start_only_as_long_as_it_is_told(postgres_url: str) -> None:
    # The review of session 60: the wait had no end, so a front stuck in its start (its actors never placed)
    # held every other front for good. Now it waits front_start_wait_s, then gives up saying so.
    from tbptt_service.storage.postgres_log import StartWaitExpired, one_front_starting

    told: list[bool] = []
    with one_front_starting(postgres_url):  # a front that does not finish its start
        expired = pytest.raises(StartWaitExpired, match=r"another front has been starting the cluster for over 0\.3 s")
        with expired, one_front_starting(postgres_url, lambda: told.append(True), wait_s=0.3):
            pytest.fail("entered while another front held the start")
        assert told == [True]
    with one_front_starting(postgres_url, lambda: pytest.fail("nobody holds it: no wait"), wait_s=0.3):
        pass  # the lock was not left held by the front that gave up


def test_a_front_that_gave_up_waiting_exits_naming_the_setting(
    postgres_url: str, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tbptt_service.storage.postgres_log import one_front_starting

    given = fake_ray(monkeypatch)
    with one_front_starting(postgres_url):
        assert serve_front(Settings(log_url=postgres_url, front_start_wait_s=0.3), "127.0.0.1:1", 2) == 2
    assert given == []  # no shard created
    error = capsys.readouterr().err
    assert "another front is starting the cluster" in error  # told before it waited
    assert "another front has been starting the cluster for over 0.3 s (TBPTT_FRONT_START_WAIT_S)" in error
